package state_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// log builds a sequence of events as they would come off the stream.
type log struct {
	t   testing.TB
	seq uint64
	evs []*events.Event
}

func (l *log) add(ref events.ObjectRef, node string, p events.Payload) *events.Event {
	l.t.Helper()
	ev, err := events.New(t0.Add(time.Duration(l.seq)*time.Second), events.Meta{Actor: "test"}, ref, node, p)
	if err != nil {
		l.t.Fatal(err)
	}
	l.seq++
	ev.Seq = l.seq
	l.evs = append(l.evs, ev)
	return ev
}

func podRef(name string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: "uid-" + name}
}

func node(name string, cpu, mem int64) (events.ObjectRef, *events.NodeRegistered) {
	return events.ObjectRef{Kind: events.KindNode, Name: name}, &events.NodeRegistered{Address: "10.0.0.1", MilliCPU: cpu, Memory: mem, MaxPods: 110}
}

func pod(name string, cpu string) *events.PodCreated {
	return &events.PodCreated{Pod: events.Pod{
		Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name},
		Spec: events.PodSpec{Containers: []events.Container{{Name: "c", Image: "i",
			Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": cpu, "memory": "1Gi"}}}}},
	}}
}

func fold(t *testing.T, evs []*events.Event) (*state.State, []error) {
	t.Helper()
	st := state.New()
	var errs []error
	for _, ev := range evs {
		if err := st.Apply(ev); err != nil {
			errs = append(errs, err)
		}
	}
	return st, errs
}

func TestPodLifecycle(t *testing.T) {
	l := &log{t: t}
	ref, reg := node("n1", 4000, 8<<30)
	l.add(ref, "", reg)
	l.add(podRef("a"), "", pod("a", "500m"))
	l.add(podRef("a"), "", &events.PodScheduled{UID: "uid-a", Node: "n1"})
	bound := pod("a", "500m").Pod
	bound.Spec.NodeName = "n1"
	l.add(podRef("a"), "n1", &events.PodBound{Pod: bound})
	l.add(podRef("a"), "n1", &events.PodStatusReported{UID: "uid-a", Status: events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.0.2",
		ContainerStatuses: []events.ContainerStatus{{Name: "c", Ready: true}}}})

	st, errs := fold(t, l.evs)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	p := st.Pods[state.Key{Namespace: "default", Name: "a"}]
	switch {
	case p == nil:
		t.Fatal("pod a missing")
	case p.Spec.NodeName != "n1" || !p.Bound || p.Status.Phase != events.PodRunning || p.Status.PodIP != "10.88.0.2" || !p.Ready():
		t.Fatalf("pod a = node %q bound %v phase %s ip %s ready %v", p.Spec.NodeName, p.Bound, p.Status.Phase, p.Status.PodIP, p.Ready())
	case p.Status.HostIP != "10.0.0.1":
		t.Fatalf("hostIP = %q", p.Status.HostIP)
	}
	n := st.Nodes["n1"]
	if n.RequestedCPU != 500 || n.RequestedMemory != 1<<30 || n.PodCount != 1 {
		t.Fatalf("node accounting = %d mCPU %d bytes %d pods", n.RequestedCPU, n.RequestedMemory, n.PodCount)
	}
	if len(st.Pending()) != 0 || len(st.PodsOnNode("n1")) != 1 {
		t.Fatalf("pending %d, on n1 %d", len(st.Pending()), len(st.PodsOnNode("n1")))
	}
	if got := st.SubjectSeq(events.BindSubject("n1", "default", "a")); got != 4 {
		t.Fatalf("bind subject seq = %d, want 4", got)
	}

	l.add(podRef("a"), "", &events.PodDeletionRequested{UID: "uid-a", GracePeriodSeconds: 30})
	l.add(podRef("a"), "n1", &events.PodStopRequested{UID: "uid-a", GracePeriodSeconds: 30})
	l.add(podRef("a"), "n1", &events.PodTerminated{UID: "uid-a"})
	st, errs = fold(t, l.evs)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	p = st.Pods[state.Key{Namespace: "default", Name: "a"}]
	if !p.Deleting() || !p.StopRequested || !p.Terminated || st.Nodes["n1"].RequestedCPU != 0 || st.Nodes["n1"].PodCount != 0 {
		t.Fatalf("after termination: deleting %v stop %v terminated %v node cpu %d", p.Deleting(), p.StopRequested, p.Terminated, st.Nodes["n1"].RequestedCPU)
	}
	l.add(podRef("a"), "", &events.PodDeleted{UID: "uid-a"})
	st, _ = fold(t, l.evs)
	if len(st.Pods) != 0 || len(st.PodsOnNode("n1")) != 0 || st.Nodes["n1"].PodCount != 0 {
		t.Fatalf("after delete: %d pods, %d on node, count %d", len(st.Pods), len(st.PodsOnNode("n1")), st.Nodes["n1"].PodCount)
	}
}

func TestContradictionsAreRejectedAndChangeNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(l *log)
	}{
		{"status from a node the pod is not bound to", func(l *log) {
			l.add(podRef("a"), "n2", &events.PodStatusReported{UID: "uid-a", Status: events.PodStatus{Phase: events.PodFailed}})
		}},
		{"second scheduling decision", func(l *log) {
			l.add(podRef("a"), "", &events.PodScheduled{UID: "uid-a", Node: "n2"})
		}},
		{"event for another incarnation of the pod", func(l *log) {
			l.add(podRef("a"), "", &events.PodDeletionRequested{UID: "old-uid", GracePeriodSeconds: 1})
		}},
		{"event for a pod that never existed", func(l *log) {
			l.add(podRef("ghost"), "", &events.PodDeleted{UID: "uid-ghost"})
		}},
		{"pod created twice", func(l *log) {
			l.add(podRef("a"), "", pod("a", "1"))
		}},
		{"cidr for an unknown node", func(l *log) {
			l.add(events.ObjectRef{Kind: events.KindNode, Name: "zz"}, "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.9.0/24"})
		}},
		{"pod CIDR another node holds", func(l *log) {
			l.add(events.ObjectRef{Kind: events.KindNode, Name: "n2"}, "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.7.0/24"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &log{t: t}
			ref, reg := node("n1", 4000, 8<<30)
			l.add(ref, "", reg)
			l.add(ref, "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.7.0/24"})
			ref2, reg2 := node("n2", 4000, 8<<30)
			l.add(ref2, "", reg2)
			l.add(podRef("a"), "", pod("a", "500m"))
			l.add(podRef("a"), "", &events.PodScheduled{UID: "uid-a", Node: "n1"})
			before, _ := fold(t, l.evs)
			tc.build(l)
			after, errs := fold(t, l.evs)
			if len(errs) != 1 || !errors.Is(errs[0], events.ErrFailedPrecondition) {
				t.Fatalf("errors = %v, want one FailedPrecondition", errs)
			}
			pa, pb := after.Pods[state.Key{Namespace: "default", Name: "a"}], before.Pods[state.Key{Namespace: "default", Name: "a"}]
			if fmt.Sprintf("%+v", pa.Pod) != fmt.Sprintf("%+v", pb.Pod) || len(after.Pods) != len(before.Pods) || len(after.Nodes) != len(before.Nodes) ||
				after.Nodes["n2"].Spec.PodCIDR != before.Nodes["n2"].Spec.PodCIDR {
				t.Fatalf("a rejected event changed the state")
			}
			last := l.evs[len(l.evs)-1]
			if after.SubjectSeq(last.Subject) != last.Seq || after.Seq != last.Seq {
				t.Fatalf("a rejected event must still advance its subject's sequence (for conditional appends)")
			}
		})
	}
}

func TestNodeLifecycle(t *testing.T) {
	l := &log{t: t}
	ref, reg := node("n1", 4000, 8<<30)
	l.add(ref, "", reg)
	l.add(ref, "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.3.0/24"})
	l.add(ref, "", &events.NodeNotReady{Reason: "NodeStatusUnknown"})
	l.add(ref, "", &events.NodeCordoned{})
	st, errs := fold(t, l.evs)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	n := st.Nodes["n1"]
	if n.Ready || !n.Spec.Unschedulable || n.Spec.PodCIDR != "10.88.3.0/24" || n.Status.Conditions[0].Status != "False" {
		t.Fatalf("node = ready %v cordoned %v cidr %s conds %+v", n.Ready, n.Spec.Unschedulable, n.Spec.PodCIDR, n.Status.Conditions)
	}
	if owner, ok := st.PodCIDROwner("10.88.3.0/24"); !ok || owner != "n1" {
		t.Fatalf("cidr owner = %q %v", owner, ok)
	}
	l.add(ref, "", &events.NodeReady{})
	l.add(ref, "", &events.NodeUncordoned{})
	st, _ = fold(t, l.evs)
	if n := st.Nodes["n1"]; !n.Ready || n.Spec.Unschedulable {
		t.Fatalf("node after ready+uncordon = ready %v cordoned %v", n.Ready, n.Spec.Unschedulable)
	}
}

// A term is recorded; a fence event changes nothing but its subject's sequence.
func TestLeaderTerms(t *testing.T) {
	l := &log{t: t}
	l.add(events.TermRef, "", &events.LeaderElected{Replica: "a", Term: 1})
	l.add(events.PassRef("deployments"), "", &events.LeaderWrote{Term: 1, Events: 1})
	l.add(events.ObjectRef{Kind: events.KindNamespace, Name: "team"}, "", &events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "team"}}})
	l.add(events.TermRef, "", &events.LeaderElected{Replica: "b", Term: 2})
	st, errs := fold(t, l.evs)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := state.Leader{Replica: "b", Term: 2, Seq: 4, Since: t0.Add(3 * time.Second)}
	if st.Leader != want {
		t.Fatalf("leader = %+v, want %+v", st.Leader, want)
	}
	if got := st.SubjectSeq(events.TermSubject); got != 4 {
		t.Fatalf("term subject at %d, want 4", got)
	}
	if got := st.SubjectSeq(events.ObjectSubject(events.KindLeader, events.PassNamespace, "deployments")); got != 2 {
		t.Fatalf("fence subject at %d, want 2", got)
	}
	if len(st.Namespaces) != 2 {
		t.Fatalf("namespaces = %d, want default and team", len(st.Namespaces))
	}
}

func TestServicesAndEndpoints(t *testing.T) {
	l := &log{t: t}
	svc := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}
	l.add(svc, "", &events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: "web", Namespace: "default"}, Spec: events.ServiceSpec{ClusterIP: "10.96.0.10"}}})
	l.add(events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}, "", &events.EndpointsUpdated{Addresses: []events.EndpointAddress{{IP: "10.88.0.2", PodName: "a"}}})
	st, errs := fold(t, l.evs)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if k, ok := st.ClusterIPOwner("10.96.0.10"); !ok || k.Name != "web" {
		t.Fatal("cluster IP not indexed")
	}
	if ep := st.Endpoints[state.Key{Namespace: "default", Name: "web"}]; ep == nil || len(ep.Addresses) != 1 {
		t.Fatal("endpoints missing")
	}
	l.add(svc, "", &events.ServiceDeleted{})
	st, _ = fold(t, l.evs)
	if _, ok := st.ClusterIPOwner("10.96.0.10"); ok || len(st.Endpoints) != 0 || len(st.Services) != 0 {
		t.Fatal("service deletion left its cluster IP or endpoints behind")
	}
}

// A reader with one consumer per kind folds Services and Endpoints out of log order: Endpoints
// that come before their Service are kept; those from before a Service's deletion that come
// after it stay deleted.
func TestEndpointsOutOfOrder(t *testing.T) {
	svc := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}
	ep := events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}
	mk := func(seq uint64, ref events.ObjectRef, p events.Payload) *events.Event {
		ev, err := events.New(time.Unix(1_800_000_000, 0), events.Meta{Actor: "test"}, ref, "", p)
		if err != nil {
			t.Fatal(err)
		}
		ev.Seq = seq
		return ev
	}
	addrs := []events.EndpointAddress{{IP: "10.88.0.2"}}
	st := state.New()
	for _, ev := range []*events.Event{
		mk(2, ep, &events.EndpointsUpdated{Addresses: addrs}), // before its Service (seq 1)
		mk(1, svc, &events.ServiceApplied{Service: events.Service{Spec: events.ServiceSpec{ClusterIP: "10.96.0.9"}}}),
	} {
		if err := st.Apply(ev); err != nil {
			t.Fatalf("apply seq %d: %v", ev.Seq, err)
		}
	}
	key := state.Key{Namespace: "default", Name: "web"}
	if e := st.Endpoints[key]; e == nil || len(e.Addresses) != 1 {
		t.Fatalf("endpoints before their service were lost: %+v", e)
	}
	for _, ev := range []*events.Event{
		mk(5, svc, &events.ServiceDeleted{}),
		mk(4, ep, &events.EndpointsUpdated{Addresses: addrs}), // from before the deletion
	} {
		if err := st.Apply(ev); err != nil {
			t.Fatalf("apply seq %d: %v", ev.Seq, err)
		}
	}
	if e, ok := st.Endpoints[key]; ok {
		t.Fatalf("endpoints from before the deletion came back: %+v", e)
	}
	if err := st.Apply(mk(7, ep, &events.EndpointsUpdated{Addresses: addrs})); err != nil || st.Endpoints[key] == nil {
		t.Fatalf("endpoints after the deletion: %v, %+v", err, st.Endpoints[key])
	}
}
