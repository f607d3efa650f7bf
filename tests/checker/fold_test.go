package checker

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

// FoldMatches compares each view with the fold at the view's own sequence, and names every
// difference: a field, an object missing on either side, a view behind the log.
func TestFoldMatches(t *testing.T) {
	st, nc, _ := eventstest.NewStore(t)
	l := newLogw(t, st, nc)
	l.register("n1")        // 1
	l.run("a", "u-a", "n1") // 2..6
	l.create("b", "u-b")    // 7
	svc := events.ObjectRef{Kind: events.KindService, Namespace: ns, Name: "web"}
	l.append(svc, "", &events.ServiceApplied{Service: events.Service{ // 8
		Metadata: events.ObjectMeta{Name: "web", Namespace: ns},
		Spec:     events.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10", Ports: []events.ServicePort{{Protocol: "TCP", Port: 80, TargetPort: events.FromInt(8080)}}},
	}})
	eps := events.ObjectRef{Kind: events.KindEndpoints, Namespace: ns, Name: "web"}
	l.append(eps, "", &events.EndpointsUpdated{Addresses: []events.EndpointAddress{ // 9
		{IP: "10.88.0.2", NodeName: "n1", PodName: "a", Ports: []events.EndpointPort{{Port: 8080, Protocol: "TCP"}}},
	}})
	l.deletionRequested("b", "u-b") // 10
	r, err := Check(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}

	item := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	podA := pod("a", "u-a", "n1")
	podA.Status = events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.0.2"}
	podB := pod("b", "u-b", "n2") // wrong node
	podB.Status.Phase = events.PodPending
	ghost := pod("ghost", "u-g", "n1")
	node := events.Node{Metadata: events.ObjectMeta{Name: "n1"}, Status: events.NodeStatus{
		Addresses: []events.NodeAddress{{Type: "InternalIP", Address: "10.0.0.1"}}, Conditions: []events.Condition{{Type: "Ready", Status: "True"}}}}
	endpoints := events.Endpoints{Metadata: events.ObjectMeta{Name: "web", Namespace: ns}, Addresses: []events.EndpointAddress{
		{IP: "10.88.0.2", NodeName: "n1", PodName: "a", Ports: []events.EndpointPort{{Port: 8080, Protocol: "TCP"}}},
	}}
	views := []View{
		// At seq 10 b is being deleted; the view says neither that nor the right node, and shows
		// a pod the log never had.
		{Source: "scheduler", Kind: KindPods, Seq: 10, Items: []json.RawMessage{item(podA), item(podB), item(ghost)}},
		{Source: "scheduler", Kind: KindServices, Seq: 10},
		{Source: "scheduler", Kind: KindEndpoints, Seq: 10, Items: []json.RawMessage{item(endpoints)}},
		// At seq 1 the node was just registered: the view is right for its sequence, but behind.
		{Source: "proxy", Kind: KindNodes, Seq: 1, Items: []json.RawMessage{item(node)}},
	}
	diffs, err := r.FoldMatches(context.Background(), st, views...)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pods at seq 10: pod default/b is {uid=u-b node= phase=Pending ip= deleting=true} in the fold but {uid=u-b node=n2 phase=Pending ip= deleting=false} in scheduler's view",
		"pods at seq 10: scheduler shows pod default/ghost {uid=u-g node=n1 phase= ip= deleting=false}, the fold has no such object",
		"services at seq 10: the fold has service default/web {clusterIP=10.96.0.10 selector=map[app:web] ports=[:TCP/80->8080]}, scheduler has not",
		"proxy's nodes are as of seq 1, behind the log the checker read (head 10)",
	}
	if diff := cmp.Diff(want, diffs); diff != "" {
		t.Errorf("differences (-want +got):\n%s", diff)
	}

	// The same views, right, match.
	podB.Spec.NodeName = ""
	podB.Metadata.DeletionTimestamp = &l.now
	views[0].Items = []json.RawMessage{item(podA), item(podB)}
	views[1].Items = []json.RawMessage{item(events.Service{Metadata: events.ObjectMeta{Name: "web", Namespace: ns},
		Spec: events.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10", Ports: []events.ServicePort{{Protocol: "TCP", Port: 80, TargetPort: events.FromInt(8080)}}}})}
	views[3].Seq = 10
	if diffs, err := r.FoldMatches(context.Background(), st, views...); err != nil || len(diffs) != 0 {
		t.Errorf("matching views: differences %q, %v", diffs, err)
	}
}
