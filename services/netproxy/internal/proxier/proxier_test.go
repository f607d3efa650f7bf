package proxier

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
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

// fakeClock is a Clock that moves only when the test moves it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

var _ Clock = (*fakeClock)(nil)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock by d and fires the timers that fall due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	pending := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			pending = append(pending, tm)
			continue
		}
		tm.ch <- c.now
	}
	c.timers = pending
}

// Timers is the number of timers that have not fired.
func (c *fakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// syncWatch records the Synced callbacks of a proxier.
type syncWatch struct {
	syncs atomic.Int64
	seq   atomic.Uint64
}

func (w *syncWatch) synced(seq uint64) {
	w.seq.Store(seq)
	w.syncs.Add(1)
}

// waitSynced waits for a sync that reflects the log up to seq.
func (w *syncWatch) waitSynced(t *testing.T, seq uint64) {
	t.Helper()
	eventually(t, fmt.Sprintf("a sync reflects seq %d", seq), func() bool { return w.syncs.Load() > 0 && w.seq.Load() >= seq })
}

// runProxier runs a proxier until the test ends.
func runProxier(t *testing.T, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := New(cfg).Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func newFakeRules(t *testing.T) (*rules.Fake, *rules.Syncer) {
	t.Helper()
	fake := rules.NewFake()
	s, err := fake.NewSyncer(rules.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return fake, s
}

func TestRunWaitsForTheProjectionAndRetriesAfterTheInterval(t *testing.T) {
	proj := live.New(state.New(), nil)
	fake, syncer := newFakeRules(t)
	clock := &fakeClock{now: t0}
	var w syncWatch
	runProxier(t, Config{Projection: proj, Rules: syncer, RetryInterval: time.Minute, Clock: clock, Synced: w.synced})

	f := &fold{t: t}
	proj.Apply(f.add(svcRef("web"), service("web", "10.96.0.10", events.ServicePort{Protocol: "TCP", Port: 80})))
	if n := fake.Transactions(); n != 0 {
		t.Fatalf("wrote %d transactions before the projection caught up", n)
	}
	// Fed by hand, the projection is caught up when the test says so. The first sync fails.
	fake.FailNextTransaction(unix.EPERM)
	live.MarkSynced(proj)
	eventually(t, "the proxier waits to retry the failed sync", func() bool { return clock.Timers() == 1 })
	if d := fake.Dump(); d != "" || w.syncs.Load() != 0 {
		t.Fatalf("a failed sync counted as synced or wrote:\n%s", d)
	}
	clock.Advance(time.Minute - time.Nanosecond)
	if clock.Timers() != 1 || w.syncs.Load() != 0 {
		t.Fatalf("retried before the retry interval passed")
	}
	clock.Advance(time.Nanosecond)
	w.waitSynced(t, 1)
	if want := "add element ip skiff no-endpoints { 10.96.0.10 . tcp . 80 }\n"; !strings.Contains(fake.Dump(), want) {
		t.Fatalf("after the retry the table lacks %q:\n%s", want, fake.Dump())
	}

	proj.Apply(f.add(svcRef("web"), &events.ServiceDeleted{}))
	w.waitSynced(t, 2)
	if got, want := fake.LastTransaction(), "delete element ip skiff no-endpoints { 10.96.0.10 . tcp . 80 }\n"; got != want {
		t.Fatalf("deleting the Service sent:\n%s\nwant:\n%s", got, want)
	}
}

// logWriter appends events to a real log, each conditional on the last one of its subject.
type logWriter struct {
	t     *testing.T
	st    *store.Store
	last  map[string]uint64
	lastN uint64
}

func newLog(t *testing.T) (*logWriter, *live.Projection) {
	st, _, _ := eventstest.NewStore(t)
	proj := live.New(state.New(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		filters := []string{events.KindFilter(events.KindService), events.KindFilter(events.KindEndpoints)}
		if err := proj.Run(ctx, st, filters); err != nil && ctx.Err() == nil {
			t.Errorf("projection: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &logWriter{t: t, st: st, last: map[string]uint64{}}, proj
}

func (l *logWriter) append(ref events.ObjectRef, p events.Payload) uint64 {
	l.t.Helper()
	ev, err := events.New(t0, events.Meta{Actor: "proxier-test"}, ref, "", p)
	if err != nil {
		l.t.Fatal(err)
	}
	seq, err := l.st.Append(context.Background(), ev, l.last[ev.Subject])
	if err != nil {
		l.t.Fatal(err)
	}
	l.last[ev.Subject], l.lastN = seq, seq
	return seq
}

func endpoints(addrs ...events.EndpointAddress) *events.EndpointsUpdated {
	return &events.EndpointsUpdated{Addresses: addrs}
}

func addr(ip string, ports ...events.EndpointPort) events.EndpointAddress {
	return events.EndpointAddress{IP: ip, Ports: ports}
}

var (
	httpPort = events.EndpointPort{Name: "http", Port: 8080, Protocol: "TCP"}
	dnsPort  = events.EndpointPort{Name: "dns", Port: 5353, Protocol: "UDP"}
)

// TestProxierGolden follows Services and Endpoints on a real log through the proxier into a Fake
// table, one event at a time, and records what each sync sent and the table after it.
func TestProxierGolden(t *testing.T) {
	log, proj := newLog(t)
	fake, syncer := newFakeRules(t)
	var w syncWatch
	runProxier(t, Config{Projection: proj, Rules: syncer, Synced: w.synced})

	web := service("web", "10.96.0.10",
		events.ServicePort{Name: "http", Protocol: "TCP", Port: 80},
		events.ServicePort{Name: "dns", Protocol: "UDP", Port: 53})
	steps := []struct {
		name    string
		ref     events.ObjectRef
		payload events.Payload
	}{
		{"web: two ports, no endpoints yet", svcRef("web"), web},
		{"web's endpoints: http on two pods, dns on one", epRef("web"), endpoints(addr("10.88.0.2", httpPort, dnsPort), addr("10.88.1.2", httpPort))},
		{"db: no endpoints", svcRef("db"), service("db", "10.96.0.20", events.ServicePort{Protocol: "TCP", Port: 5432})},
		{"a headless Service is not proxied", svcRef("headless"), service("headless", "None", events.ServicePort{Protocol: "TCP", Port: 80})},
		{"nor an IPv6 one", svcRef("v6"), service("v6", "fd00::10", events.ServicePort{Protocol: "TCP", Port: 80})},
		{"a pod of web replaced", epRef("web"), endpoints(addr("10.88.1.2", httpPort), addr("10.88.2.2", httpPort, dnsPort))},
		{"db gets an endpoint", epRef("db"), endpoints(addr("10.88.3.3", events.EndpointPort{Port: 5432, Protocol: "TCP"}))},
		{"web deleted", svcRef("web"), &events.ServiceDeleted{}},
		{"db loses its endpoint", epRef("db"), endpoints()},
	}

	var out strings.Builder
	w.waitSynced(t, 0)
	fmt.Fprintf(&out, "=== caught up with an empty log\n--- transaction\n%s--- tables\n%s\n", fake.LastTransaction(), fake.Dump())
	for i, step := range steps {
		before := fake.Transactions()
		w.waitSynced(t, log.append(step.ref, step.payload))
		fmt.Fprintf(&out, "=== step %d: %s\n", i+1, step.name)
		if fake.Transactions() == before {
			out.WriteString("--- nothing sent\n")
		} else {
			fmt.Fprintf(&out, "--- transaction\n%s", fake.LastTransaction())
		}
		fmt.Fprintf(&out, "--- tables\n%s\n", fake.Dump())
	}
	eventstest.Golden(t, filepath.Join("testdata", "proxier.golden"), out.String())
}

// TestProxierFakeManyServices writes 300 Services with their Endpoints to the log at once, then
// changes one: the proxier catches up and the change is one slot of one Service.
func TestProxierFakeManyServices(t *testing.T) {
	log, proj := newLog(t)
	fake, syncer := newFakeRules(t)
	var w syncWatch
	runProxier(t, Config{Projection: proj, Rules: syncer, Synced: w.synced})

	const n = 300
	var ws []store.Write
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		for _, e := range []struct {
			ref events.ObjectRef
			p   events.Payload
		}{
			{svcRef(name), service(name, fmt.Sprintf("10.96.%d.%d", i/256, i%256), events.ServicePort{Name: "http", Protocol: "TCP", Port: 80})},
			{epRef(name), endpoints(addr(fmt.Sprintf("10.88.%d.%d", i/256, i%256), httpPort), addr(fmt.Sprintf("10.89.%d.%d", i/256, i%256), httpPort))},
		} {
			ev, err := events.New(t0, events.Meta{Actor: "proxier-test"}, e.ref, "", e.p)
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, store.Write{Event: ev})
		}
	}
	var last uint64
	for i, err := range log.st.AppendAll(context.Background(), ws) {
		if err != nil {
			t.Fatal(err)
		}
		log.last[ws[i].Event.Subject] = ws[i].Event.Seq
		last = max(last, ws[i].Event.Seq)
	}
	w.waitSynced(t, last)
	dump := fake.Dump()
	if got := strings.Count(dump, "add element ip skiff service-ips "); got != n {
		t.Errorf("the table has %d service-ips elements, want %d", got, n)
	}
	if got := strings.Count(dump, "add element ip skiff endpoints "); got != 2*n {
		t.Errorf("the table has %d endpoints elements, want %d", got, 2*n)
	}
	if strings.Contains(dump, "add element ip skiff no-endpoints ") {
		t.Errorf("a Service without endpoints after all Endpoints were folded:\n%s", dump)
	}

	w.waitSynced(t, log.append(epRef("svc-7"), endpoints(addr("10.88.0.7", httpPort), addr("10.90.0.7", httpPort))))
	want := "delete element ip skiff endpoints { 10.96.0.7 . tcp . 80 . 1 }\n" +
		"add element ip skiff endpoints { 10.96.0.7 . tcp . 80 . 1 : 10.90.0.7 . 8080 }\n"
	if got := fake.LastTransaction(); got != want {
		t.Errorf("replacing one pod of one of %d Services sent:\n%s\nwant:\n%s", n, got, want)
	}
}
