package podlifecycle

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
	"skiff.dev/services/scheduler/internal/controllers/endpoints"
)

// newController returns a controller whose passes look only at what changed, as under Run (the
// tests take the passes one at a time).
func newController(c *ct.Cluster, cfg Config) *Controller {
	cfg.Log, cfg.Projection, cfg.Clock, cfg.Logger = c.Store, c.Projection, c.Clock.Now, c.Logger
	ctl := New(cfg)
	c.T.Cleanup(ctl.Watch())
	return ctl
}

const (
	podSubject  = "skiff.ev.pod.default.a"
	bindSubject = "skiff.ev.bind.n1.default.a"
)

// expectStep runs one pass and compares what it wrote with want ("Type subject").
func expectStep(t *testing.T, c *ct.Cluster, ctl *Controller, what string, want ...string) {
	t.Helper()
	_, evs := c.Step(ctl.Sync)
	if diff := cmp.Diff(want, ct.Describe(evs)); diff != "" {
		t.Fatalf("%s: pass wrote (-want +got):\n%s", what, diff)
	}
}

func TestGracefulDeletion(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := newController(c, Config{})
	a := c.CreatePod("default", "a", map[string]string{"app": "web"})
	c.RunPod(a, "n1", "10.88.0.2")
	// The endpoints controller listed the pod behind a Service.
	svc := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}
	c.Append(svc, "", &events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: events.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []events.ServicePort{{Port: 80}}}}})
	eps := events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}
	c.Append(eps, "", &events.EndpointsUpdated{Addresses: []events.EndpointAddress{{IP: "10.88.0.2", PodName: "a"}}})
	expectStep(t, c, ctl, "a running pod is left alone")

	c.Append(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 10})
	res, evs := c.Step(ctl.Sync)
	if len(evs) != 0 {
		t.Fatalf("wrote %v while the endpoints still listed the pod", ct.Describe(evs))
	}
	if want := ct.T0.Add(DefaultDrainTimeout); !res.RequeueAt.Equal(want) {
		t.Errorf("RequeueAt = %v, want the drain timeout %v", res.RequeueAt, want)
	}

	c.Append(eps, "", &events.EndpointsUpdated{Addresses: []events.EndpointAddress{}})
	_, evs = c.Step(ctl.Sync)
	if diff := cmp.Diff([]string{"PodStopRequested " + bindSubject}, ct.Describe(evs)); diff != "" {
		t.Fatalf("once drained, pass wrote (-want +got):\n%s", diff)
	}
	if got := evs[0].Data.(*events.PodStopRequested).GracePeriodSeconds; got != 10 {
		t.Errorf("stop grace = %d, want the deletion's 10", got)
	}
	expectStep(t, c, ctl, "waiting for the node")
	c.Append(a, "n1", &events.PodTerminated{UID: a.UID})
	expectStep(t, c, ctl, "terminated", "PodDeleted "+podSubject)
	if c.Pod(state.Key{Namespace: "default", Name: "a"}) != nil {
		t.Error("pod still there after PodDeleted")
	}
}

func TestDrainTimeout(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := newController(c, Config{DrainTimeout: time.Minute})
	a := c.CreatePod("default", "a", nil)
	c.RunPod(a, "n1", "10.88.0.2")
	c.Append(events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}, "",
		&events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: "web", Namespace: "default"}}})
	c.Append(events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}, "",
		&events.EndpointsUpdated{Addresses: []events.EndpointAddress{{IP: "10.88.0.2", PodName: "a"}}})
	c.Append(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 10})
	c.Clock.Advance(59 * time.Second)
	expectStep(t, c, ctl, "within the drain timeout")
	c.Clock.Advance(time.Second)
	expectStep(t, c, ctl, "past the drain timeout", "PodStopRequested "+bindSubject)
}

func TestDeletionBeforeBinding(t *testing.T) {
	t.Run("never scheduled", func(t *testing.T) {
		c := ct.NewCluster(t)
		ctl := newController(c, Config{})
		a := c.CreatePod("default", "a", nil)
		c.Append(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 30})
		expectStep(t, c, ctl, "deleted at once", "PodDeleted "+podSubject)
	})
	t.Run("scheduled, not bound", func(t *testing.T) {
		c := ct.NewCluster(t)
		c.RegisterNode("n1", "192.168.0.1")
		ctl := newController(c, Config{})
		a := c.CreatePod("default", "a", nil)
		c.Append(a, "", &events.PodScheduled{UID: a.UID, Node: "n1"})
		c.Append(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 30})
		expectStep(t, c, ctl, "claims the bind subject", "PodStopRequested "+bindSubject)
		// A scheduler that binds now, having seen an empty bind subject, is refused.
		ev, _ := events.New(c.Clock.Now(), events.Meta{Actor: "scheduler"}, a, "n1", &events.PodBound{Pod: c.Pod(state.Key{Namespace: "default", Name: "a"}).Pod})
		if _, err := c.Store.Append(c.Context(), ev, 0); !errors.Is(err, events.ErrConflict) {
			t.Errorf("late PodBound = %v, want a conflict", err)
		}
		expectStep(t, c, ctl, "then deletes", "PodDeleted "+podSubject)
	})
	t.Run("terminated by its node", func(t *testing.T) {
		c := ct.NewCluster(t)
		c.RegisterNode("n1", "192.168.0.1")
		ctl := newController(c, Config{})
		a := c.CreatePod("default", "a", nil)
		c.RunPod(a, "n1", "10.88.0.2")
		c.Append(a, "n1", &events.PodTerminated{UID: a.UID})
		expectStep(t, c, ctl, "not deleting: left alone")
		c.Append(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 30})
		expectStep(t, c, ctl, "nothing left to stop", "PodDeleted "+podSubject)
	})
}

func TestEvictionFromNotReadyNode(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := newController(c, Config{})
	seconds := func(n int64) *int64 { return &n }
	pods := map[string][]events.Toleration{
		"a": nil, // the default 5 minutes
		"b": {{Key: TaintUnreachable, Operator: "Exists", Effect: "NoExecute", TolerationSeconds: seconds(60)}},
		"c": {{Key: TaintUnreachable, Operator: "Exists", Effect: "NoExecute"}},           // forever
		"d": {{Key: TaintNotReady, Operator: "Exists", Effect: "NoExecute"}},              // another taint: default
		"e": {{Operator: "Exists"}},                                                       // everything, forever
		"f": {{Key: TaintUnreachable, Operator: "Exists", Effect: "NoSchedule"}},          // another effect: default
		"g": {{Key: TaintUnreachable, Operator: "Exists", TolerationSeconds: seconds(0)}}, // at once
	}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		ref := ct.PodRef("default", name, "uid-"+name)
		c.Append(ref, "", &events.PodCreated{Pod: events.Pod{
			Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: ref.UID},
			Spec:     events.PodSpec{Tolerations: pods[name], Containers: []events.Container{{Name: "main", Image: "demo"}}},
		}})
		c.RunPod(ref, "n1", "")
	}
	c.Clock.Advance(time.Minute)
	c.Append(ct.NodeRef("n1"), "", &events.NodeNotReady{Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."})
	notReadyAt := c.Clock.Now()

	stop := func(name string) string { return "PodStopRequested skiff.ev.bind.n1.default." + name }
	deleted := func(name string) string { return "PodDeleted skiff.ev.pod.default." + name }
	res, evs := c.Step(ctl.Sync)
	if diff := cmp.Diff([]string{stop("g")}, ct.Describe(evs)); diff != "" {
		t.Fatalf("at once (-want +got):\n%s", diff)
	}
	expectStep(t, c, ctl, "g goes", deleted("g"))
	res, _ = c.Step(ctl.Sync)
	if want := notReadyAt.Add(time.Minute); !res.RequeueAt.Equal(want) {
		t.Errorf("RequeueAt = %v, want b's deadline %v", res.RequeueAt, want)
	}
	c.Clock.Advance(time.Minute)
	expectStep(t, c, ctl, "after a minute", stop("b"))
	expectStep(t, c, ctl, "b goes", deleted("b"))
	c.Clock.Advance(4*time.Minute - time.Second)
	expectStep(t, c, ctl, "a second before the default")
	c.Clock.Advance(time.Second)
	expectStep(t, c, ctl, "after 5 minutes", stop("a"), stop("d"), stop("f"))
	expectStep(t, c, ctl, "they go", deleted("a"), deleted("d"), deleted("f"))
	c.Clock.Advance(24 * time.Hour)
	expectStep(t, c, ctl, "c and e tolerate forever")
}

func TestNodeBackInTimeKeepsPods(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := newController(c, Config{})
	a := c.CreatePod("default", "a", nil)
	c.RunPod(a, "n1", "10.88.0.2")
	c.Append(ct.NodeRef("n1"), "", &events.NodeNotReady{Reason: "NodeStatusUnknown"})
	c.Clock.Advance(4 * time.Minute)
	c.Append(ct.NodeRef("n1"), "", &events.NodeReady{})
	c.Clock.Advance(time.Hour)
	res, evs := c.Step(ctl.Sync)
	if len(evs) != 0 || !res.RequeueAt.IsZero() {
		t.Errorf("node Ready again: pass wrote %v, requeue %v; want nothing", ct.Describe(evs), res.RequeueAt)
	}
}

func TestEvictionFromDeletedNode(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := newController(c, Config{})
	a := c.CreatePod("default", "a", nil)
	c.RunPod(a, "n1", "10.88.0.2")
	b := c.CreatePod("default", "b", nil)
	c.Append(b, "", &events.PodScheduled{UID: b.UID, Node: "n1"})
	c.Append(ct.NodeRef("n1"), "", &events.NodeDeleted{})
	expectStep(t, c, ctl, "stop requests first", stop("a"), stop("b"))
	expectStep(t, c, ctl, "then gone", "PodDeleted skiff.ev.pod.default.a", "PodDeleted skiff.ev.pod.default.b")
}

func stop(name string) string { return "PodStopRequested skiff.ev.bind.n1.default." + name }

func TestPodsOfDeletedNamespace(t *testing.T) {
	c := ct.NewCluster(t)
	ctl := newController(c, Config{})
	c.Append(events.ObjectRef{Kind: events.KindNamespace, Name: "team"}, "", &events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "team"}}})
	grace := int64(7)
	ref := ct.PodRef("team", "a", "uid-a")
	c.Append(ref, "", &events.PodCreated{Pod: events.Pod{Metadata: events.ObjectMeta{Name: "a", Namespace: "team", UID: "uid-a"},
		Spec: events.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []events.Container{{Name: "main", Image: "demo"}}}}})
	expectStep(t, c, ctl, "namespace exists")
	c.Append(events.ObjectRef{Kind: events.KindNamespace, Name: "team"}, "", &events.NamespaceDeleted{})
	_, evs := c.Step(ctl.Sync)
	if diff := cmp.Diff([]string{"PodDeletionRequested skiff.ev.pod.team.a"}, ct.Describe(evs)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if got := evs[0].Data.(*events.PodDeletionRequested).GracePeriodSeconds; got != 7 {
		t.Errorf("grace = %d, want the pod's 7", got)
	}
	expectStep(t, c, ctl, "then the usual path", "PodDeleted skiff.ev.pod.team.a")
}

// TestDeletionOrderOnTheLog runs the pod lifecycle and endpoints controllers with fake nodes and
// checks the order of the whole deletion on the log.
func TestDeletionOrderOnTheLog(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1"}})
	c.Go(newController(c, Config{}).Run)
	c.Go(endpoints.New(endpoints.Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger}).Run)
	c.Append(events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}, "",
		&events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []events.ServicePort{{Port: 80}}}}})
	a := c.CreatePod("default", "a", map[string]string{"app": "web"})
	var ip string
	c.Eventually("pod a in the endpoints", func(s *state.State) bool {
		e := s.Endpoints[state.Key{Namespace: "default", Name: "web"}]
		if e == nil || len(e.Addresses) != 1 {
			return false
		}
		ip = e.Addresses[0].IP
		return true
	})
	requested := c.Append(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 30})
	c.Eventually("pod a gone", func(s *state.State) bool { return s.Pods[state.Key{Namespace: "default", Name: "a"}] == nil })

	var dropped, stopped, terminated, deleted uint64
	for _, ev := range c.History() {
		switch p := ev.Data.(type) {
		case *events.EndpointsUpdated:
			if ev.Seq > requested && len(p.Addresses) == 0 && dropped == 0 {
				dropped = ev.Seq
			}
		case *events.PodStopRequested:
			stopped = ev.Seq
		case *events.PodTerminated:
			terminated = ev.Seq
		case *events.PodDeleted:
			deleted = ev.Seq
		}
	}
	t.Logf("ip %s: deletion requested at %d, endpoints dropped at %d, stop at %d, terminated at %d, deleted at %d",
		ip, requested, dropped, stopped, terminated, deleted)
	if !(requested < dropped && dropped < stopped && stopped < terminated && terminated < deleted) {
		t.Errorf("want deletion requested < endpoints dropped < stop requested < terminated < deleted")
	}
}

// TestEvictionRunsOnTheClock checks that Run notices an eviction falling due when only the clock
// moves (no event arrives).
func TestEvictionRunsOnTheClock(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	a := c.CreatePod("default", "a", nil)
	c.RunPod(a, "n1", "10.88.0.2")
	c.Append(ct.NodeRef("n1"), "", &events.NodeNotReady{Reason: "NodeStatusUnknown"})
	c.Go(newController(c, Config{Resync: 10 * time.Millisecond}).Run)
	c.Clock.Advance(DefaultEvictionTimeout)
	c.Eventually("pod a evicted", func(s *state.State) bool { return s.Pods[state.Key{Namespace: "default", Name: "a"}] == nil })
}
