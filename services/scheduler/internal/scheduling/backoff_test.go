package scheduling

import (
	"testing"
	"time"

	"skiff.dev/events/state"
)

func TestBackoffDelay(t *testing.T) {
	b := newBackoff(time.Second, 10*time.Second, time.Minute)
	var got []time.Duration
	for attempts := 1; attempts <= 6; attempts++ {
		got = append(got, b.delay(attempts))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
}

func TestBackoffEligible(t *testing.T) {
	k := state.Key{Namespace: "default", Name: "p"}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		setup func(b *backoff)
		at    time.Duration
		gen   uint64
		uid   string
		want  bool
	}{
		{name: "unknown pod", setup: func(*backoff) {}, want: true},
		{name: "unplaceable, back-off not over, nothing changed", setup: func(b *backoff) { b.unplaceable(k, "u1", t0, 3) }, at: 999 * time.Millisecond, gen: 3},
		{name: "unplaceable, back-off not over, a node improved", setup: func(b *backoff) { b.unplaceable(k, "u1", t0, 3) }, at: time.Millisecond, gen: 4, want: true},
		{name: "unplaceable, back-off over, nothing changed", setup: func(b *backoff) { b.unplaceable(k, "u1", t0, 3) }, at: 2 * time.Second, gen: 3},
		{name: "unplaceable, back-off over, a node improved", setup: func(b *backoff) { b.unplaceable(k, "u1", t0, 3) }, at: time.Second, gen: 4, want: true},
		{name: "unplaceable, nothing changed for long", setup: func(b *backoff) { b.unplaceable(k, "u1", t0, 3) }, at: time.Minute, gen: 3, want: true},
		{name: "second failure doubles the back-off", setup: func(b *backoff) {
			b.failed(k, "u1", t0)
			b.failed(k, "u1", t0)
		}, at: 1500 * time.Millisecond},
		{name: "second failure, doubled back-off over", setup: func(b *backoff) {
			b.failed(k, "u1", t0)
			b.failed(k, "u1", t0)
		}, at: 2 * time.Second, want: true},
		{name: "write failure waits out the back-off only", setup: func(b *backoff) { b.failed(k, "u1", t0) }, at: time.Second, gen: 0, want: true},
		{name: "write failure, back-off not over", setup: func(b *backoff) { b.failed(k, "u1", t0) }, at: time.Millisecond, gen: 9},
		{name: "a new pod of the same name starts afresh", setup: func(b *backoff) { b.unplaceable(k, "u1", t0, 3) }, uid: "u2", want: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBackoff(time.Second, 10*time.Second, time.Minute)
			b.beginPass()
			c.setup(b)
			uid := c.uid
			if uid == "" {
				uid = "u1"
			}
			if got := b.eligible(k, uid, t0.Add(c.at), c.gen); got != c.want {
				t.Errorf("eligible = %v, want %v", got, c.want)
			}
		})
	}
}

func TestBackoffNextAndSweep(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b2 := state.Key{Name: "a"}, state.Key{Name: "b"}
	b := newBackoff(time.Second, 10*time.Second, time.Minute)
	b.beginPass()
	b.unplaceable(a, "ua", t0, 5) // waits for a change: next is the retry-after safety net
	b.failed(b2, "ub", t0.Add(time.Second))
	if got, want := b.next(5), t0.Add(2*time.Second); !got.Equal(want) {
		t.Errorf("next = %v, want %v (b's back-off)", got, want)
	}
	delete(b.entries, b2)
	if got, want := b.next(5), t0.Add(time.Minute); !got.Equal(want) {
		t.Errorf("next without a change = %v, want %v", got, want)
	}
	if got, want := b.next(6), t0; !got.Equal(want) {
		t.Errorf("next after a change = %v, want %v (at once)", got, want)
	}
	b.beginPass()
	b.sweep()
	if len(b.entries) != 0 {
		t.Errorf("sweep kept %d entries of pods the pass did not see", len(b.entries))
	}
}
