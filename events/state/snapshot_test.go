package state_test

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unsafe"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/state"
)

// foldTo folds evs[:k] into a new state.
func foldTo(evs []*events.Event, k int) *state.State {
	st := state.New()
	for _, ev := range evs[:k] {
		_ = st.Apply(ev) // refusals are part of the history
	}
	return st
}

func roundTrip(t *testing.T, st *state.State, kinds []string) *state.State {
	t.Helper()
	body, err := st.MarshalSnapshot(nil, kinds)
	if err != nil {
		t.Fatal(err)
	}
	got, err := state.UnmarshalSnapshot(body)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// At every point of a history with every event type, the snapshot decodes to the very state it
// was made of, and folding the rest of the log onto it gives what folding the whole log gives.
func TestSnapshotRoundTripAtEveryPoint(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	full := foldTo(evs, len(evs))
	for k := 0; k <= len(evs); k++ {
		st := foldTo(evs, k)
		got := roundTrip(t, st, nil)
		if d := eventstest.DiffStates(st, got); d != "" {
			t.Fatalf("snapshot at %d decodes to another state (-made +decoded):\n%s", k, d)
		}
		for _, ev := range evs[k:] {
			_ = got.Apply(ev)
		}
		if d := eventstest.DiffStates(full, got); d != "" {
			t.Fatalf("snapshot at %d + the tail differs from the whole replay (-replay +snapshot):\n%s", k, d)
		}
	}
}

// A frozen state is the state when it was frozen, whatever is applied to the original after:
// a writer writes it without the projection's lock while the fold goes on (go test -race checks
// that they share nothing the fold writes).
func TestFreeze(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	for k := 0; k <= len(evs); k++ {
		st := foldTo(evs, k)
		frozen := st.Freeze()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, ev := range evs[k:] {
				_ = st.Apply(ev)
			}
		}()
		body, err := frozen.MarshalSnapshot(nil, nil)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		got, err := state.UnmarshalSnapshot(body)
		if err != nil {
			t.Fatal(err)
		}
		if d := eventstest.DiffStates(foldTo(evs, k), got); d != "" {
			t.Fatalf("frozen at %d, written while the rest was applied (-fold +frozen):\n%s", k, d)
		}
	}
}

func containers(p *state.Pod) *events.Container { return unsafe.SliceData(p.Spec.Containers) }

// Pods that share their owner's template in the fold share it after decoding, and a pod
// created afterwards joins them, as it would have in the live state.
func TestSnapshotKeepsTemplateSharing(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	var cut int // just before web-e, the second template's pod, is created
	for i, ev := range evs {
		if ev.Type == "PodCreated" && ev.Object.Name == "web-e" {
			cut = i
		}
	}
	st := foldTo(evs, cut)
	got := roundTrip(t, st, nil)
	key := func(name string) state.Key { return state.Key{Namespace: "default", Name: name} }
	b, c := got.Pods[key("web-b")], got.Pods[key("web-c")]
	switch {
	case containers(st.Pods[key("web-b")]) != containers(st.Pods[key("web-c")]):
		t.Fatal("the fold itself does not share web-b's and web-c's spec")
	case containers(b) != containers(c):
		t.Error("decoded, web-b and web-c no longer share their spec")
	case reflect.ValueOf(b.Metadata.Labels).Pointer() != reflect.ValueOf(c.Metadata.Labels).Pointer():
		t.Error("decoded, web-b and web-c no longer share their labels")
	case got.Templates() != st.Templates():
		t.Errorf("decoded, %d templates; the fold had %d", got.Templates(), st.Templates())
	}
	// The rest of the log onto both: web-e's template replaces v1 in both alike.
	for _, ev := range evs[cut:] {
		_ = st.Apply(ev)
		_ = got.Apply(ev)
	}
	if d := eventstest.DiffStates(st, got); d != "" {
		t.Fatalf("(-fold +decoded):\n%s", d)
	}
	// A pod without an owner keeps its own spec, though it equals web-b's.
	again := roundTrip(t, st, nil)
	lone, b := again.Pods[state.Key{Namespace: "team", Name: "lone"}], again.Pods[key("web-b")]
	if !reflect.DeepEqual(lone.Spec.Containers, b.Spec.Containers) || containers(lone) == containers(b) {
		t.Error("decoded, a pod without an owner shares another's spec, or the history changed")
	}
}

// A restricted state is what a projection of only those kinds' subjects folds (but for Seq:
// the snapshot's, which such a projection covers).
func TestRestrictIsAFilteredReplay(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	for _, kinds := range [][]string{
		{events.KindNode},
		{events.KindService, events.KindEndpoints},
		{events.KindNode, events.KindService, events.KindEndpoints},
		{events.KindNamespace, events.KindDeployment, events.KindLeader},
	} {
		t.Run(strings.Join(kinds, ","), func(t *testing.T) {
			for k := 0; k <= len(evs); k++ {
				want := state.New()
				for _, ev := range evs[:k] {
					sub, _ := events.ParseSubject(ev.Subject)
					if slicesContains(kinds, sub.Kind) {
						_ = want.Apply(ev)
					}
				}
				want.Seq = uint64(k)
				st := foldTo(evs, k)
				if err := st.Restrict(kinds); err != nil {
					t.Fatal(err)
				}
				if d := eventstest.DiffStates(want, st); d != "" {
					t.Fatalf("at %d (-filtered replay +restricted):\n%s", k, d)
				}
				// Written restricted, it decodes to the same.
				if d := eventstest.DiffStates(want, roundTrip(t, foldTo(evs, k), kinds)); d != "" {
					t.Fatalf("at %d, marshalled restricted (-filtered replay +decoded):\n%s", k, d)
				}
			}
		})
	}
	if err := state.New().Restrict([]string{events.KindPod}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("restrict to pod subjects without bind and status: %v, want InvalidArgument", err)
	}
	if err := state.New().Restrict([]string{"pods"}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("restrict to an unknown kind: %v, want InvalidArgument", err)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Every field the fold keeps, by type. A change here is a change of what a snapshot must hold:
// write it in snapshot.go, raise state.SnapshotLayout, then rewrite this file with -update.
func TestSnapshotFieldInventory(t *testing.T) {
	var lines []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(t.Elem())
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			if t.PkgPath() == "time" {
				return
			}
			for i := range t.NumField() {
				f := t.Field(i)
				lines = append(lines, fmt.Sprintf("%s.%s %s", t, f.Name, f.Type))
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[state.State]())
	sort.Strings(lines)
	eventstest.Golden(t, "testdata/snapshot-fields.golden", fmt.Sprintf("layout %d\n%s\n", state.SnapshotLayout, strings.Join(lines, "\n")))
}

// A body cut anywhere, or with any byte changed, is refused or read: never a panic.
func TestUnmarshalSnapshotDamaged(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	body, err := foldTo(evs, len(evs)).MarshalSnapshot(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(body) {
		if _, err := state.UnmarshalSnapshot(body[:n]); !errors.Is(err, state.ErrSnapshotCorrupt) {
			t.Fatalf("cut to %d of %d bytes: %v, want ErrSnapshotCorrupt", n, len(body), err)
		}
	}
	if _, err := state.UnmarshalSnapshot(append(body, 0)); !errors.Is(err, state.ErrSnapshotCorrupt) {
		t.Fatalf("a byte past the end: %v, want ErrSnapshotCorrupt", err)
	}
	for i := range body {
		b := append([]byte(nil), body...)
		b[i] ^= 0x55
		_, _ = state.UnmarshalSnapshot(b)
	}
}

func FuzzUnmarshalSnapshot(f *testing.F) {
	evs := eventstest.Number(eventstest.History(f))
	for _, k := range []int{0, 5, len(evs) / 2, len(evs)} {
		body, err := foldTo(evs, k).MarshalSnapshot(nil, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := state.UnmarshalSnapshot(body)
		if err != nil {
			if !errors.Is(err, state.ErrSnapshotCorrupt) {
				t.Fatalf("error %v is not ErrSnapshotCorrupt", err)
			}
			return
		}
		// Whatever decodes can be written again and folded onto.
		if _, err := st.MarshalSnapshot(nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			_ = st.Apply(ev)
		}
	})
}
