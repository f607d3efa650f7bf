package proxier

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/services/netproxy/internal/rules"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

type fold struct {
	t   *testing.T
	st  *state.State
	seq uint64
}

func (f *fold) add(ref events.ObjectRef, p events.Payload) *events.Event {
	f.t.Helper()
	ev, err := events.New(t0, events.Meta{}, ref, "", p)
	if err != nil {
		f.t.Fatal(err)
	}
	f.seq++
	ev.Seq = f.seq
	if f.st != nil {
		if err := f.st.Apply(ev); err != nil {
			f.t.Fatal(err)
		}
	}
	return ev
}

func svcRef(name string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: name}
}

func epRef(name string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: name}
}

func service(name, ip string, ports ...events.ServicePort) *events.ServiceApplied {
	return &events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: name, Namespace: "default"},
		Spec: events.ServiceSpec{Type: "ClusterIP", ClusterIP: ip, Ports: ports}}}
}

func TestServicePorts(t *testing.T) {
	f := &fold{t: t, st: state.New()}
	f.add(svcRef("web"), service("web", "10.96.0.10",
		events.ServicePort{Name: "http", Protocol: "TCP", Port: 80},
		events.ServicePort{Name: "dns", Protocol: "UDP", Port: 53}))
	f.add(epRef("web"), &events.EndpointsUpdated{Addresses: []events.EndpointAddress{
		{IP: "10.88.0.2", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "dns", Port: 5353, Protocol: "UDP"}}},
		{IP: "10.88.1.2", Ports: []events.EndpointPort{{Name: "http", Port: 8081, Protocol: "TCP"}}},
	}})
	f.add(svcRef("empty"), service("empty", "10.96.0.5", events.ServicePort{Protocol: "TCP", Port: 443}))
	got := ServicePorts(f.st)
	vip := netip.MustParseAddr
	want := []rules.ServicePort{
		{Namespace: "default", Name: "empty", VIP: vip("10.96.0.5"), Protocol: rules.TCP, Port: 443},
		{Namespace: "default", Name: "web", PortName: "http", VIP: vip("10.96.0.10"), Protocol: rules.TCP, Port: 80,
			Endpoints: []rules.Endpoint{{IP: vip("10.88.0.2"), Port: 8080}, {IP: vip("10.88.1.2"), Port: 8081}}},
		{Namespace: "default", Name: "web", PortName: "dns", VIP: vip("10.96.0.10"), Protocol: rules.UDP, Port: 53,
			Endpoints: []rules.Endpoint{{IP: vip("10.88.0.2"), Port: 5353}}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("ServicePorts (-want +got):\n%s", diff)
	}
}

// fakeRules keeps what was synced and can be told to fail.
type fakeRules struct {
	mu    sync.Mutex
	fail  int
	syncs [][]rules.ServicePort
}

var _ Syncer = (*fakeRules)(nil)

func (f *fakeRules) Sync(_ context.Context, desired []rules.ServicePort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("netlink: operation not permitted")
	}
	f.syncs = append(f.syncs, desired)
	return nil
}

func TestRunSyncsOnlyAfterCatchingUpAndRetriesFailures(t *testing.T) {
	proj := live.New(state.New(), nil)
	fr := &fakeRules{fail: 1}
	synced := make(chan uint64, 10)
	p := New(Config{Projection: proj, Rules: fr, RetryInterval: time.Millisecond, Synced: func(s uint64) { synced <- s }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()

	f := &fold{t: t}
	proj.Apply(f.add(svcRef("web"), service("web", "10.96.0.10", events.ServicePort{Protocol: "TCP", Port: 80})))
	fr.mu.Lock()
	n := len(fr.syncs)
	fr.mu.Unlock()
	if n != 0 {
		t.Fatalf("synced %d times before the projection caught up", n)
	}
	// Fed by hand, the projection is caught up when the test says so.
	live.MarkSynced(proj)
	select {
	case seq := <-synced:
		if seq != 1 {
			t.Fatalf("first sync reflects seq %d, want 1", seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sync after catching up")
	}
	fr.mu.Lock()
	if len(fr.syncs) != 1 || len(fr.syncs[0]) != 1 {
		t.Fatalf("syncs = %v (the first attempt failed and must have been retried)", fr.syncs)
	}
	fr.mu.Unlock()
	proj.Apply(f.add(svcRef("web"), &events.ServiceDeleted{}))
	select {
	case seq := <-synced:
		if seq != 2 {
			t.Fatalf("second sync reflects seq %d", seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sync after a change")
	}
	fr.mu.Lock()
	if last := fr.syncs[len(fr.syncs)-1]; len(last) != 0 {
		t.Fatalf("after deleting the service the rules still hold %v", last)
	}
	fr.mu.Unlock()
	cancel()
	<-done
}
