package endpoints

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
)

// pod is a ready pod on node n1 for the table tests; opts change it.
func pod(name, ip string, opts ...func(*state.Pod)) *state.Pod {
	p := &state.Pod{Pod: events.Pod{
		Metadata: events.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: events.PodSpec{NodeName: "n1", Containers: []events.Container{{
			Name:  "main",
			Ports: []events.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 53, Protocol: "UDP"}},
		}}},
		Status: ct.RunningStatus(ip, true),
	}, Bound: true}
	for _, o := range opts {
		o(p)
	}
	return p
}

func notReady(p *state.Pod)    { p.Status = ct.RunningStatus(p.Status.PodIP, false) }
func terminating(p *state.Pod) { t := time.Unix(1, 0); p.Metadata.DeletionTimestamp = &t }
func onNode(n string) func(*state.Pod) {
	return func(p *state.Pod) { p.Spec.NodeName = n }
}
func withPorts(ports ...events.ContainerPort) func(*state.Pod) {
	return func(p *state.Pod) { p.Spec.Containers[0].Ports = ports }
}

func service(ports ...events.ServicePort) *events.Service {
	return &events.Service{
		Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:     events.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: ports},
	}
}

func addr(name, ip string, ports ...events.EndpointPort) events.EndpointAddress {
	return events.EndpointAddress{IP: ip, NodeName: "n1", PodName: name, Ports: ports}
}

func TestCompute(t *testing.T) {
	nodes := map[string]*state.Node{"n1": {Ready: true}, "n2": {Ready: false}}
	httpByName := events.ServicePort{Name: "http", Port: 80, TargetPort: events.FromString("http")}
	httpPort := events.EndpointPort{Name: "http", Port: 8080, Protocol: "TCP"}
	tests := []struct {
		name string
		svc  *events.Service
		pods []*state.Pod
		want []events.EndpointAddress
	}{
		{"numeric target port", service(events.ServicePort{Port: 80, TargetPort: events.FromInt(9090)}),
			[]*state.Pod{pod("a", "10.88.0.2")},
			[]events.EndpointAddress{addr("a", "10.88.0.2", events.EndpointPort{Port: 9090, Protocol: "TCP"})}},
		{"no target port means the service port", service(events.ServicePort{Port: 80}),
			[]*state.Pod{pod("a", "10.88.0.2")},
			[]events.EndpointAddress{addr("a", "10.88.0.2", events.EndpointPort{Port: 80, Protocol: "TCP"})}},
		{"named target port resolves per pod", service(httpByName),
			[]*state.Pod{pod("a", "10.88.0.2"), pod("b", "10.88.0.3", withPorts(events.ContainerPort{Name: "http", ContainerPort: 8081}))},
			[]events.EndpointAddress{addr("a", "10.88.0.2", httpPort), addr("b", "10.88.0.3", events.EndpointPort{Name: "http", Port: 8081, Protocol: "TCP"})}},
		{"named target port matches the protocol", service(events.ServicePort{Name: "dns", Port: 53, Protocol: "UDP", TargetPort: events.FromString("dns")}),
			[]*state.Pod{pod("a", "10.88.0.2")},
			[]events.EndpointAddress{addr("a", "10.88.0.2", events.EndpointPort{Name: "dns", Port: 53, Protocol: "UDP"})}},
		{"named port over the wrong protocol does not resolve", service(events.ServicePort{Name: "dns", Port: 53, TargetPort: events.FromString("dns")}),
			[]*state.Pod{pod("a", "10.88.0.2")}, []events.EndpointAddress{}},
		{"pod without the named port is left out of that port",
			service(httpByName, events.ServicePort{Name: "metrics", Port: 9100, TargetPort: events.FromString("metrics")}),
			[]*state.Pod{
				pod("a", "10.88.0.2", withPorts(events.ContainerPort{Name: "http", ContainerPort: 8080}, events.ContainerPort{Name: "metrics", ContainerPort: 9100})),
				pod("b", "10.88.0.3"),
				pod("c", "10.88.0.4", withPorts()),
			},
			[]events.EndpointAddress{
				addr("a", "10.88.0.2", httpPort, events.EndpointPort{Name: "metrics", Port: 9100, Protocol: "TCP"}),
				addr("b", "10.88.0.3", httpPort),
			}},
		{"not ready pods are left out", service(httpByName),
			[]*state.Pod{pod("a", "10.88.0.2", notReady), pod("b", "10.88.0.3")},
			[]events.EndpointAddress{addr("b", "10.88.0.3", httpPort)}},
		{"terminating pods are left out", service(httpByName),
			[]*state.Pod{pod("a", "10.88.0.2", terminating), pod("b", "10.88.0.3")},
			[]events.EndpointAddress{addr("b", "10.88.0.3", httpPort)}},
		{"pods on a NotReady or unknown node are left out", service(httpByName),
			[]*state.Pod{pod("a", "10.88.0.2", onNode("n2")), pod("b", "10.88.0.3", onNode("gone")), pod("c", "10.88.0.4")},
			[]events.EndpointAddress{addr("c", "10.88.0.4", httpPort)}},
		{"pods without an address are left out", service(httpByName),
			[]*state.Pod{pod("a", "")}, []events.EndpointAddress{}},
		{"selector and namespace must match", service(httpByName),
			[]*state.Pod{
				pod("a", "10.88.0.2", func(p *state.Pod) { p.Metadata.Labels = map[string]string{"app": "api"} }),
				pod("b", "10.88.0.3", func(p *state.Pod) { p.Metadata.Namespace = "other" }),
			}, []events.EndpointAddress{}},
		{"sorted by address, numerically", service(httpByName),
			[]*state.Pod{pod("z", "10.88.0.10"), pod("y", "10.88.0.9"), pod("x", "10.88.0.9")},
			[]events.EndpointAddress{addr("x", "10.88.0.9", httpPort), addr("y", "10.88.0.9", httpPort), addr("z", "10.88.0.10", httpPort)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.svc, tt.pods, nodes)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Compute (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	a := []events.EndpointAddress{addr("a", "10.0.0.1", events.EndpointPort{Port: 80, Protocol: "TCP"})}
	b := []events.EndpointAddress{addr("a", "10.0.0.1", events.EndpointPort{Port: 81, Protocol: "TCP"})}
	if !Equal(nil, []events.EndpointAddress{}) || !Equal(a, a) || Equal(a, b) || Equal(a, nil) {
		t.Error("Equal is wrong")
	}
}

func applyService(c *ct.Cluster, name string, selector map[string]string) {
	c.Append(events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: name, UID: "uid-" + name}, "",
		&events.ServiceApplied{Service: events.Service{
			Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name},
			Spec: events.ServiceSpec{Selector: selector, ClusterIP: "10.96.0.10",
				Ports: []events.ServicePort{{Name: "http", Port: 80, TargetPort: events.FromString("http")}}},
		}})
}

func endpointsOf(s *state.State, name string) []events.EndpointAddress {
	if e := s.Endpoints[state.Key{Namespace: "default", Name: name}]; e != nil {
		return e.Addresses
	}
	return nil
}

func ips(as []events.EndpointAddress) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.IP)
	}
	return out
}

func TestController(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := New(Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger})
	ctx := c.Context()
	// step runs one pass and returns the endpoints of web as IPs, and how many events it wrote.
	step := func() ([]string, int) {
		t.Helper()
		res, err := ctl.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Projection.WaitSeq(ctx, res.Seq); err != nil {
			t.Fatal(err)
		}
		var got []string
		c.Projection.View(func(s *state.State) { got = ips(endpointsOf(s, "web")) })
		return got, res.Written
	}
	check := func(what string, wantIPs []string, wantWritten int) {
		t.Helper()
		got, written := step()
		if diff := cmp.Diff(wantIPs, got); diff != "" || written != wantWritten {
			t.Errorf("%s: endpoints (-want +got):\n%s\nwrote %d events, want %d", what, diff, written, wantWritten)
		}
	}

	applyService(c, "web", map[string]string{"app": "web"})
	applyService(c, "headless", nil)
	check("a new Service with no pods gets empty endpoints", []string{}, 1)
	check("and only once", []string{}, 0)
	c.Projection.View(func(s *state.State) {
		if _, ok := s.Endpoints[state.Key{Namespace: "default", Name: "headless"}]; ok {
			t.Error("a Service without a selector got endpoints")
		}
	})

	a := c.CreatePod("default", "a", map[string]string{"app": "web"})
	b := c.CreatePod("default", "b", map[string]string{"app": "web"})
	c.RunPod(a, "n1", "10.88.0.2")
	check("a ready pod joins", []string{"10.88.0.2"}, 1)
	c.RunPod(b, "n1", "10.88.0.3")
	c.Append(b, "n1", &events.PodStatusReported{UID: b.UID, Status: ct.RunningStatus("10.88.0.3", false)})
	check("a pod that is not ready does not", []string{"10.88.0.2"}, 0)
	c.Append(b, "n1", &events.PodStatusReported{UID: b.UID, Status: ct.RunningStatus("10.88.0.3", true)})
	check("until it is", []string{"10.88.0.2", "10.88.0.3"}, 1)
	c.Append(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 30})
	check("a terminating pod leaves at once", []string{"10.88.0.3"}, 1)
	c.Append(ct.NodeRef("n1"), "", &events.NodeNotReady{Reason: "NodeStatusUnknown"})
	check("pods of a NotReady node leave", []string{}, 1)
	c.Append(ct.NodeRef("n1"), "", &events.NodeReady{})
	check("and come back", []string{"10.88.0.3"}, 1)
}

func TestControllerRun(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1", "n2"}})
	c.Go(New(Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger}).Run)
	applyService(c, "web", map[string]string{"app": "web"})
	for i := range 5 {
		c.CreatePod("default", fmt.Sprintf("p%d", i), map[string]string{"app": "web"})
	}
	c.Eventually("5 endpoints", func(s *state.State) bool { return len(endpointsOf(s, "web")) == 5 })
}
