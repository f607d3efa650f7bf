package live_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// The state a live projection builds while events arrive equals the state of a replay from
// sequence 1, and equals a replay that starts from a copy of the state at some point plus the
// tail (a snapshot).
func TestReplayEqualsLive(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	proj := eventstest.Follow(t, st)

	rng := rand.New(rand.NewPCG(1, 2))
	w := &writer{t: t, st: st, proj: proj}
	for i := 0; i < 5; i++ {
		w.append(ctx, events.ObjectRef{Kind: events.KindNode, Name: fmt.Sprintf("n%d", i)}, "",
			&events.NodeRegistered{MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110, Address: fmt.Sprintf("10.0.0.%d", i+1)})
	}
	for i := 0; i < 200; i++ {
		name := fmt.Sprintf("p%d", i)
		ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: "u" + name}
		w.append(ctx, ref, "", &events.PodCreated{Pod: events.Pod{Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: ref.UID},
			Spec: events.PodSpec{Containers: []events.Container{{Name: "c", Image: "i", Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "100m"}}}}}}})
		if rng.IntN(4) == 0 {
			continue // stays pending
		}
		node := fmt.Sprintf("n%d", rng.IntN(5))
		w.append(ctx, ref, "", &events.PodScheduled{UID: ref.UID, Node: node})
		w.append(ctx, ref, node, &events.PodBound{Pod: events.Pod{Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: ref.UID}}})
		w.append(ctx, ref, node, &events.PodStatusReported{UID: ref.UID, Status: events.PodStatus{Phase: events.PodRunning, PodIP: fmt.Sprintf("10.88.0.%d", i%250)}})
		if rng.IntN(3) == 0 {
			w.append(ctx, ref, "", &events.PodDeletionRequested{UID: ref.UID, GracePeriodSeconds: 1})
			w.append(ctx, ref, node, &events.PodTerminated{UID: ref.UID})
			w.append(ctx, ref, "", &events.PodDeleted{UID: ref.UID})
		}
	}
	head, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := proj.WaitSeq(ctx, head); err != nil {
		t.Fatal(err)
	}

	replayed := state.New()
	if err := st.Read(ctx, store.ReadOptions{}, func(ev *events.Event) error { return replayed.Apply(ev) }); err != nil {
		t.Fatalf("replay: %v", err)
	}
	// Snapshot at the half-way point, then the tail.
	half := state.New()
	if err := st.Read(ctx, store.ReadOptions{To: head / 2}, func(ev *events.Event) error { return half.Apply(ev) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Read(ctx, store.ReadOptions{From: head/2 + 1}, func(ev *events.Event) error { return half.Apply(ev) }); err != nil {
		t.Fatal(err)
	}

	allFields := cmp.Exporter(func(reflect.Type) bool { return true })
	proj.View(func(liveState *state.State) {
		if liveState.Seq != head || len(liveState.Pods) == 0 {
			t.Fatalf("live state at %d with %d pods", liveState.Seq, len(liveState.Pods))
		}
		if diff := cmp.Diff(liveState, replayed, allFields); diff != "" {
			t.Errorf("replay from 1 differs from live state:\n%s", diff)
		}
		if diff := cmp.Diff(liveState, half, allFields); diff != "" {
			t.Errorf("half + tail differs from live state:\n%s", diff)
		}
	})
}

type writer struct {
	t    *testing.T
	st   *store.Store
	proj *live.Projection
}

// append writes conditionally on the projection's view of the subject, as every writer does.
func (w *writer) append(ctx context.Context, ref events.ObjectRef, node string, p events.Payload) {
	w.t.Helper()
	ev, err := events.New(time.Unix(1_800_000_000, 0), events.Meta{Actor: "test"}, ref, node, p)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := eventstest.Append(ctx, w.st, w.proj, ev); err != nil {
		w.t.Fatal(err)
	}
}

// With several filters each has its own consumer; Complete says how far every one of them has
// folded the log: to the head once all have caught up, even past events no filter matches.
func TestCompleteWithSeveralFilters(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}
	ep := events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}
	ns := events.ObjectRef{Kind: events.KindNamespace, Name: "shop"}
	for _, e := range []struct {
		ref events.ObjectRef
		p   events.Payload
	}{{svc, &events.ServiceApplied{}}, {ep, &events.EndpointsUpdated{}}, {ns, &events.NamespaceApplied{}}} {
		ev, err := events.New(time.Unix(1_800_000_000, 0), events.Meta{Actor: "test"}, e.ref, "", e.p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, ev, 0); err != nil {
			t.Fatal(err)
		}
	}
	proj := eventstest.Follow(t, st, events.KindFilter(events.KindService), events.KindFilter(events.KindEndpoints))
	if got := proj.Seq(); got != 2 {
		t.Fatalf("Seq = %d, want 2 (the namespace event matches no filter)", got)
	}
	got, err := proj.Complete(ctx)
	if err != nil || got != 3 {
		t.Fatalf("Complete = %d, %v; want 3: both consumers have everything up to the head", got, err)
	}
}

// A Watch asks for everything first, then hands each change once, with the pod a pod event is
// about even when the event deleted it; after Redo it asks for everything again.
func TestWatchCollectsChanges(t *testing.T) {
	p := live.New(state.New(), nil)
	w := p.Watch()
	defer p.Unwatch(w)
	if changes, all := w.Take(); !all || len(changes) != 0 {
		t.Fatalf("first Take: %d changes, all %v; want all", len(changes), all)
	}
	ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "p", UID: "u1"}
	owner := []events.OwnerReference{{Kind: "Deployment", Name: "web", UID: "d1", Controller: true}}
	seq := uint64(0)
	apply := func(pl events.Payload) {
		t.Helper()
		ev, err := events.New(time.Unix(1_800_000_000, 0), events.Meta{Actor: "test"}, ref, "", pl)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		ev.Seq = seq
		p.Apply(ev)
	}
	apply(&events.PodCreated{Pod: events.Pod{Metadata: events.ObjectMeta{Name: "p", Namespace: "default", UID: "u1", OwnerReferences: owner},
		Spec: events.PodSpec{Containers: []events.Container{{Name: "c", Image: "i"}}}}})
	apply(&events.PodDeleted{UID: "u1"})
	changes, all := w.Take()
	if all || len(changes) != 2 {
		t.Fatalf("Take: %d changes, all %v; want 2", len(changes), all)
	}
	for i, ch := range changes {
		if ch.Seq != uint64(i+1) || ch.Pod == nil || ch.Pod.OwnerUID != "d1" {
			t.Errorf("change %d: seq %d, pod %+v; want the pod owned by d1", i, ch.Seq, ch.Pod)
		}
	}
	if changes, all := w.Take(); all || len(changes) != 0 {
		t.Errorf("Take with nothing new: %d changes, all %v", len(changes), all)
	}
	w.Redo()
	if _, all := w.Take(); !all {
		t.Error("Take after Redo: want all")
	}
}
