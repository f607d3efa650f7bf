package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"10.88.0.0/16", "10.88.0.0/16", false},
		{"10.88.7.0/16", "10.88.0.0/16", false},
		{"10.88.0.0/24", "10.88.0.0/24", false},
		{"10.88.0.0/25", "", true},
		{"fd00::/64", "", true},
		{"banana", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRange(tt.in)
			if tt.wantErr {
				if !errors.Is(err, events.ErrInvalidArgument) {
					t.Errorf("ParseRange(%q) = %v, %v; want ErrInvalidArgument", tt.in, got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("ParseRange(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestAllocatePodCIDR(t *testing.T) {
	tests := []struct {
		name   string
		rng    string
		used   []string
		want   string
		wantOK bool
	}{
		{"empty range: the lowest", "10.88.0.0/16", nil, "10.88.0.0/24", true},
		{"next after used", "10.88.0.0/16", []string{"10.88.0.0/24", "10.88.1.0/24"}, "10.88.2.0/24", true},
		{"fills a hole", "10.88.0.0/16", []string{"10.88.0.0/24", "10.88.2.0/24"}, "10.88.1.0/24", true},
		{"a wider block covers its /24s", "10.88.0.0/16", []string{"10.88.0.0/23"}, "10.88.2.0/24", true},
		{"a narrower block takes its /24", "10.88.0.0/16", []string{"10.88.0.64/26"}, "10.88.1.0/24", true},
		{"blocks outside the range do not matter", "10.88.0.0/16", []string{"10.89.0.0/24", "fd00::/64", "junk"}, "10.88.0.0/24", true},
		{"a /24 range holds one", "10.88.5.0/24", nil, "10.88.5.0/24", true},
		{"full", "10.88.0.0/23", []string{"10.88.0.0/24", "10.88.1.0/24"}, "", false},
		{"crosses an octet", "10.0.0.0/8", []string{"10.0.0.0/16"}, "10.1.0.0/24", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := map[netip.Prefix]bool{}
			for _, u := range tt.used {
				markUsed(used, u)
			}
			r, err := ParseRange(tt.rng)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := AllocatePodCIDR(r, used)
			if ok != tt.wantOK || (ok && got.String() != tt.want) {
				t.Errorf("AllocatePodCIDR = %v, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func newController(c *ct.Cluster, cfg Config) *Controller {
	cfg.Log, cfg.Projection, cfg.Clock, cfg.Logger = c.Store, c.Projection, c.Clock.Now, c.Logger
	return New(cfg)
}

func TestAssignsPodCIDRs(t *testing.T) {
	c := ct.NewCluster(t)
	ctl := newController(c, Config{})
	for _, n := range []string{"n2", "n3", "n1"} {
		c.RegisterNode(n, "192.168.0.1")
	}
	_, evs := c.Step(ctl.Sync)
	got := map[string]string{}
	for _, ev := range evs {
		got[ev.Object.Name] = ev.Data.(*events.NodePodCIDRAssigned).PodCIDR
	}
	want := map[string]string{"n1": "10.88.0.0/24", "n2": "10.88.1.0/24", "n3": "10.88.2.0/24"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("assignments (-want +got):\n%s", diff)
	}
	if _, evs := c.Step(ctl.Sync); len(evs) != 0 {
		t.Errorf("second pass wrote %v", ct.Describe(evs))
	}
	// A deleted node's block is free again.
	c.Append(ct.NodeRef("n2"), "", &events.NodeDeleted{})
	c.RegisterNode("n4", "192.168.0.4")
	_, evs = c.Step(ctl.Sync)
	if len(evs) != 1 || evs[0].Data.(*events.NodePodCIDRAssigned).PodCIDR != "10.88.1.0/24" {
		t.Errorf("n4 got %v, want 10.88.1.0/24", ct.Describe(evs))
	}
}

func TestBadRange(t *testing.T) {
	c := ct.NewCluster(t)
	ctl := newController(c, Config{PodCIDRRange: "10.88.0.0/25"})
	if err := ctl.Run(c.Context()); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("Run with a /25 range = %v, want ErrInvalidArgument", err)
	}
}

// leaseTest has a lease bucket and a controller whose watcher runs but whose passes the test
// takes one by one.
type leaseTest struct {
	t   *testing.T
	c   *ct.Cluster
	kv  jetstream.KeyValue
	ctl *Controller
}

func newLeaseTest(t *testing.T, c *ct.Cluster) *leaseTest {
	kv, err := OpenLeaseBucket(c.Context(), c.Store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	return &leaseTest{t: t, c: c, kv: kv}
}

// start makes a controller and starts its lease watch (now, on the fake clock).
func (l *leaseTest) start() *Controller {
	l.ctl = newController(l.c, Config{Leases: l.kv})
	ctx, cancel := context.WithCancel(context.Background())
	follow := l.ctl.startWatch(ctx)
	done := make(chan struct{})
	go func() { defer close(done); follow() }()
	l.t.Cleanup(func() { cancel(); <-done })
	return l.ctl
}

// renew puts node's lease and waits until the controller has seen it.
func (l *leaseTest) renew(node string) {
	l.t.Helper()
	rev, err := l.kv.Put(l.c.Context(), node, []byte("alive"))
	if err != nil {
		l.t.Fatal(err)
	}
	if l.ctl != nil {
		l.waitSeen(node, rev)
	}
}

func (l *leaseTest) waitSeen(node string, rev uint64) {
	l.t.Helper()
	eventstest.Eventually(l.t, ct.Timeout, fmt.Sprintf("the controller sees revision %d of %s's lease", rev, node), func() bool {
		l.ctl.mu.Lock()
		defer l.ctl.mu.Unlock()
		return l.ctl.renewals[node].revision >= rev
	})
}

func (l *leaseTest) step(what string, want ...string) {
	l.t.Helper()
	_, evs := l.c.Step(l.ctl.Sync)
	var got []string
	for _, ev := range evs {
		if ev.Type != "NodePodCIDRAssigned" {
			got = append(got, ev.Type+" "+ev.Object.Name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		l.t.Fatalf("%s: pass wrote (-want +got):\n%s", what, diff)
	}
}

func TestLeaseTimeout(t *testing.T) {
	c := ct.NewCluster(t)
	l := newLeaseTest(t, c)
	c.RegisterNode("n1", "192.168.0.1")
	c.RegisterNode("n2", "192.168.0.2")
	// Leases in the bucket before the controller starts are history: they neither count as
	// renewals nor shorten the grace.
	l.renew("n1")
	l.renew("n2")
	rev, _ := l.kv.Put(c.Context(), "n2", []byte("alive"))
	l.start()
	l.waitSeen("n2", rev)

	l.step("start: grace for everyone")
	c.Clock.Advance(39 * time.Second)
	l.renew("n1")
	l.step("39 s: still within grace")
	c.Clock.Advance(time.Second)
	l.step("40 s: n2 never renewed", "NodeNotReady n2")
	c.Clock.Advance(38 * time.Second)
	l.step("78 s: n1 renewed at 39 s")
	c.Clock.Advance(time.Second)
	l.step("79 s: n1 too", "NodeNotReady n1")
	l.step("no repeats")

	l.renew("n1")
	l.step("n1 renews", "NodeReady n1")
	c.Clock.Advance(10 * time.Second)
	l.renew("n2")
	l.step("n2 renews", "NodeReady n2")

	c.Projection.View(func(s *state.State) {
		got := s.Nodes["n1"].Status.Conditions[0]
		got.LastTransitionTime = nil
		want := events.Condition{Type: "Ready", Status: "True", Reason: ReasonKubeletReady}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("n1 condition (-want +got):\n%s", diff)
		}
	})
	var notReady *events.NodeNotReady
	for _, ev := range c.History() {
		if p, ok := ev.Data.(*events.NodeNotReady); ok {
			notReady = p
		}
	}
	if diff := cmp.Diff(&events.NodeNotReady{Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}, notReady); diff != "" {
		t.Errorf("NodeNotReady (-want +got):\n%s", diff)
	}
}

// TestNewLeaderGivesGrace starts a second controller long after the nodes last renewed: it waits
// a full LeaseTimeout from its own start before it marks anyone NotReady.
func TestNewLeaderGivesGrace(t *testing.T) {
	c := ct.NewCluster(t)
	l := newLeaseTest(t, c)
	c.RegisterNode("n1", "192.168.0.1")
	l.renew("n1")
	c.Clock.Advance(time.Hour)
	l.start()
	l.step("a new leader, an hour after the last renewal")
	c.Clock.Advance(DefaultLeaseTimeout - time.Millisecond)
	l.step("just within the grace")
	c.Clock.Advance(time.Millisecond)
	l.step("grace over", "NodeNotReady n1")
}

// TestNodeRegisteredLaterGetsGrace: a node that shows up after the watch began gets its grace
// from when it was first seen.
func TestNodeRegisteredLaterGetsGrace(t *testing.T) {
	c := ct.NewCluster(t)
	l := newLeaseTest(t, c)
	l.start()
	c.Clock.Advance(time.Hour)
	c.RegisterNode("n1", "192.168.0.1")
	res, _ := c.Step(l.ctl.Sync)
	if want := c.Clock.Now().Add(DefaultLeaseTimeout); !res.RequeueAt.Equal(want) {
		t.Errorf("RequeueAt = %v, want %v", res.RequeueAt, want)
	}
	c.Clock.Advance(DefaultLeaseTimeout)
	l.step("grace over", "NodeNotReady n1")
}

// TestRunFollowsLeases runs the whole controller: the clock moves, the loop notices without an
// event; a renewal wakes it.
func TestRunFollowsLeases(t *testing.T) {
	c := ct.NewCluster(t)
	l := newLeaseTest(t, c)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := newController(c, Config{Leases: l.kv, Resync: 10 * time.Millisecond})
	c.Go(ctl.Run)
	c.Eventually("pod CIDR", func(s *state.State) bool { return s.Nodes["n1"].Spec.PodCIDR == "10.88.0.0/24" })
	c.Clock.Advance(DefaultLeaseTimeout)
	c.Eventually("n1 NotReady", func(s *state.State) bool { return !s.Nodes["n1"].Ready })
	if _, err := l.kv.Put(c.Context(), "n1", []byte("alive")); err != nil {
		t.Fatal(err)
	}
	c.Eventually("n1 Ready again", func(s *state.State) bool { return s.Nodes["n1"].Ready })
}
