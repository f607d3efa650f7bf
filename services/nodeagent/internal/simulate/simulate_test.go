package simulate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type harness struct {
	t    *testing.T
	ctx  context.Context
	log  *store.Store
	proj *live.Projection
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, _, _ := eventstest.NewStore(t)
	return &harness{t: t, ctx: t.Context(), log: st, proj: eventstest.Follow(t, st)}
}

// start runs the simulator until stop is called or the test ends, and waits until it is ready.
func (h *harness) start(count int) (stop func()) {
	h.t.Helper()
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := Run(ctx, Config{Store: h.log, Count: count, LeaseInterval: time.Hour, Clock: func() time.Time { return t0 },
			Ready: func([]string) { close(ready) }})
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	stop = func() { cancel(); wg.Wait() }
	h.t.Cleanup(stop)
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		h.t.Fatal("simulator not ready")
	}
	// The simulator is ready once its writes are acknowledged; the test's own projection sees
	// them a moment later.
	head, err := h.log.Head(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.proj.WaitSeq(h.ctx, head); err != nil {
		h.t.Fatal(err)
	}
	return stop
}

// append writes ev conditional on the projection's view of its subject and waits for it.
func (h *harness) append(ev *events.Event) {
	h.t.Helper()
	if _, err := eventstest.Append(h.ctx, h.log, h.proj, ev); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) event(obj events.ObjectRef, node string, p events.Payload) *events.Event {
	h.t.Helper()
	ev, err := events.New(t0, events.Meta{Actor: "test"}, obj, node, p)
	if err != nil {
		h.t.Fatal(err)
	}
	return ev
}

// bind creates a pod and binds it to node, as the scheduler would.
func (h *harness) bind(name, node string) {
	h.t.Helper()
	ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: "uid-" + name}
	pod := events.Pod{
		Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: ref.UID},
		Spec:     events.PodSpec{Containers: []events.Container{{Name: "app", Image: "demo:1"}, {Name: "sidecar", Image: "proxy:2"}}},
	}
	h.append(h.event(ref, "", &events.PodCreated{Pod: pod}))
	h.append(h.event(ref, "", &events.PodScheduled{UID: ref.UID, Node: node}))
	pod.Spec.NodeName = node
	h.append(h.event(ref, node, &events.PodBound{Pod: pod}))
}

func (h *harness) waitFor(what string, cond func(st *state.State) bool) {
	h.t.Helper()
	eventstest.WaitState(h.t, h.proj, eventstest.Timeout, what, cond)
}

func (h *harness) history(subject string) []string {
	h.t.Helper()
	evs, err := h.log.History(h.ctx, subject)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func (h *harness) pod(name string) *state.Pod {
	var p state.Pod
	h.proj.View(func(st *state.State) {
		if sp := st.Pods[state.Key{Namespace: "default", Name: name}]; sp != nil {
			p = *sp
		}
	})
	return &p
}

func running(name string) func(st *state.State) bool {
	return func(st *state.State) bool {
		p := st.Pods[state.Key{Namespace: "default", Name: name}]
		return p != nil && p.Status.Phase == events.PodRunning
	}
}

func TestNodeNames(t *testing.T) {
	if diff := cmp.Diff([]string{"sim-0", "sim-1", "sim-2"}, NodeNames("sim-", 3)); diff != "" {
		t.Error(diff)
	}
	got := NodeNames("x", 1000)
	if got[0] != "x000" || got[999] != "x999" {
		t.Errorf("NodeNames(x, 1000) = %s ... %s, want x000 ... x999", got[0], got[999])
	}
}

func TestSimulatedNodes(t *testing.T) {
	h := newHarness(t)
	h.start(3)

	// Registered, Ready, labelled, with the default capacity.
	var nodes []string
	h.proj.View(func(st *state.State) {
		for name, n := range st.Nodes {
			nodes = append(nodes, name)
			want := map[string]string{LabelSimulated: "true", LabelHostname: name}
			if !n.Ready || !cmp.Equal(want, n.Metadata.Labels) || n.MilliCPU != 32000 || n.Memory != 256<<30 || n.MaxPods != 110 {
				t.Errorf("node %s: ready=%v labels=%v cpu=%d memory=%d pods=%d", name, n.Ready, n.Metadata.Labels, n.MilliCPU, n.Memory, n.MaxPods)
			}
		}
	})
	if diff := cmp.Diff([]string{"sim-0", "sim-1", "sim-2"}, nodes, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}

	// Leases of every node.
	kv, err := h.log.JetStream().KeyValue(h.ctx, api.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	leases := map[string]bool{}
	for len(leases) < 3 {
		select {
		case e := <-w.Updates():
			if e != nil {
				leases[e.Key()] = true
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("leases seen: %v, want sim-0, sim-1, sim-2", leases)
		}
	}

	// A bound pod runs, with an address from the node's pod CIDR.
	h.append(h.event(events.ObjectRef{Kind: events.KindNode, Name: "sim-1"}, "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.1.0/24"}))
	h.bind("web", "sim-1")
	h.waitFor("web running", running("web"))
	started := t0
	want := events.PodStatus{
		Phase:     events.PodRunning,
		PodIP:     "10.88.1.2",
		StartTime: &started,
		ContainerStatuses: []events.ContainerStatus{
			{Name: "app", Image: "demo:1", Ready: true, ContainerID: "sim://uid-web/0", State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: &started}}},
			{Name: "sidecar", Image: "proxy:2", Ready: true, ContainerID: "sim://uid-web/1", State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: &started}}},
		},
	}
	got := h.pod("web").Status
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(events.PodStatus{}, "Conditions")); diff != "" {
		t.Errorf("status of web (-want +got):\n%s", diff)
	}
	if !h.pod("web").Ready() {
		t.Error("web is not Ready")
	}

	// A second pod on the same node gets the next address; one without a CIDR gets none.
	h.bind("api", "sim-1")
	h.bind("db", "sim-2")
	h.waitFor("api and db running", func(st *state.State) bool { return running("api")(st) && running("db")(st) })
	if ip := h.pod("api").Status.PodIP; ip != "10.88.1.3" {
		t.Errorf("api's IP = %q, want 10.88.1.3", ip)
	}
	if ip := h.pod("db").Status.PodIP; ip != "" {
		t.Errorf("db's IP = %q, want none (sim-2 has no pod CIDR)", ip)
	}

	// Stop → terminated.
	h.append(h.event(events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "web", UID: "uid-web"}, "sim-1",
		&events.PodStopRequested{UID: "uid-web", GracePeriodSeconds: 30}))
	h.waitFor("web terminated", func(st *state.State) bool {
		return st.Pods[state.Key{Namespace: "default", Name: "web"}].Terminated
	})
	if diff := cmp.Diff([]string{"PodStatusReported", "PodTerminated"}, h.history(events.StatusSubject("sim-1", "default", "web"))); diff != "" {
		t.Errorf("web's status history (-want +got):\n%s", diff)
	}
}

func TestSimulatorIgnoresOtherNodes(t *testing.T) {
	h := newHarness(t)
	h.append(h.event(events.ObjectRef{Kind: events.KindNode, Name: "real-1"}, "", &events.NodeRegistered{MilliCPU: 1000, Memory: 1 << 30, MaxPods: 10}))
	h.start(1)
	h.bind("theirs", "real-1")
	h.bind("ours", "sim-0")
	h.waitFor("ours running", running("ours"))
	if got := h.history(events.StatusSubject("real-1", "default", "theirs")); len(got) != 0 {
		t.Errorf("the simulator reported %v for a pod on a node it does not own", got)
	}
}

// TestSimulatorRestart: a restarted simulator registers nothing again, reports nothing twice,
// and reports what was bound while it was down.
func TestSimulatorRestart(t *testing.T) {
	h := newHarness(t)
	stop := h.start(2)
	h.bind("before", "sim-0")
	h.waitFor("before running", running("before"))
	stop()

	h.bind("while-down", "sim-1")
	h.start(2)
	h.waitFor("while-down running", running("while-down"))
	h.bind("after", "sim-0")
	h.waitFor("after running", running("after"))

	for _, node := range []string{"sim-0", "sim-1"} {
		if got := h.history(events.NodeRegistrationSubject(node)); !cmp.Equal(got, []string{"NodeRegistered"}) {
			t.Errorf("%s history = %v, want one NodeRegistered", node, got)
		}
	}
	if got := h.history(events.StatusSubject("sim-0", "default", "before")); !cmp.Equal(got, []string{"PodStatusReported"}) {
		t.Errorf("before's status history = %v, want one report", got)
	}
}
