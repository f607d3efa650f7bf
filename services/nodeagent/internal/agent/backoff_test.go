package agent

import (
	"testing"
	"time"
)

func TestBackoffDoublesToCapAndResets(t *testing.T) {
	b := Backoff{Base: 10 * time.Second, Cap: 5 * time.Minute, ResetAfter: 10 * time.Minute}
	var c crashLoop
	t0 := time.Unix(1_800_000_000, 0)
	var got []time.Duration
	now := t0
	for i := 0; i < 8; i++ {
		until := b.exited(&c, now, now.Add(time.Second))
		got = append(got, until.Sub(now.Add(time.Second)))
		now = until
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second, 300 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
	// Ten minutes of running resets the back-off.
	until := b.exited(&c, now, now.Add(10*time.Minute))
	if d := until.Sub(now.Add(10 * time.Minute)); d != 10*time.Second {
		t.Fatalf("after a long run the delay is %v, want the base 10s", d)
	}
}
