package register

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

func setup(t *testing.T) (*store.Store, *live.Projection, context.Context) {
	t.Helper()
	st, _, _ := eventstest.NewStore(t)
	return st, eventstest.Follow(t, st, events.KindFilter(events.KindNode)), t.Context()
}

func nodeHistory(t *testing.T, ctx context.Context, st *store.Store, name string) []string {
	t.Helper()
	evs, err := st.History(ctx, events.NodeRegistrationSubject(name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type+" by "+ev.Actor)
	}
	return out
}

var base = NodeInfo{Name: "n1", Labels: map[string]string{"zone": "a"}, Address: "192.0.2.10", MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110}

func TestRegisterIsIdempotent(t *testing.T) {
	for _, c := range []struct {
		name   string
		second func(n NodeInfo) NodeInfo
		want   []string
	}{
		{name: "same again writes nothing", second: func(n NodeInfo) NodeInfo { return n },
			want: []string{"NodeRegistered by node/n1"}},
		{name: "empty and nil taints are the same", second: func(n NodeInfo) NodeInfo {
			n.Taints = []events.Taint{}
			return n
		}, want: []string{"NodeRegistered by node/n1"}},
		{name: "labels removed", second: func(n NodeInfo) NodeInfo {
			n.Labels = nil
			return n
		}, want: []string{"NodeRegistered by node/n1", "NodeRegistered by node/n1"}},
		{name: "new label", second: func(n NodeInfo) NodeInfo {
			n.Labels = map[string]string{"zone": "b"}
			return n
		}, want: []string{"NodeRegistered by node/n1", "NodeRegistered by node/n1"}},
		{name: "new taint", second: func(n NodeInfo) NodeInfo {
			n.Taints = []events.Taint{{Key: "gpu", Effect: "NoSchedule"}}
			return n
		}, want: []string{"NodeRegistered by node/n1", "NodeRegistered by node/n1"}},
		{name: "new capacity", second: func(n NodeInfo) NodeInfo {
			n.Memory *= 2
			return n
		}, want: []string{"NodeRegistered by node/n1", "NodeRegistered by node/n1"}},
		{name: "new address", second: func(n NodeInfo) NodeInfo {
			n.Address = "192.0.2.11"
			return n
		}, want: []string{"NodeRegistered by node/n1", "NodeRegistered by node/n1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, proj, ctx := setup(t)
			if err := Register(ctx, st, proj, base, ""); err != nil {
				t.Fatal(err)
			}
			// Register waits for the projection, so the second call sees the first.
			if err := Register(ctx, st, proj, c.second(base), ""); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, nodeHistory(t, ctx, st, "n1")); diff != "" {
				t.Errorf("node history (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegisterValidates(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(n *NodeInfo)
	}{
		{name: "upper case name", edit: func(n *NodeInfo) { n.Name = "Node1" }},
		{name: "dotted name", edit: func(n *NodeInfo) { n.Name = "n1.example" }},
		{name: "empty name", edit: func(n *NodeInfo) { n.Name = "" }},
		{name: "no cpu", edit: func(n *NodeInfo) { n.MilliCPU = 0 }},
		{name: "no memory", edit: func(n *NodeInfo) { n.Memory = -1 }},
		{name: "no pods", edit: func(n *NodeInfo) { n.MaxPods = 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := base
			c.edit(&n)
			if err := n.Validate(); !errors.Is(err, events.ErrInvalidArgument) {
				t.Errorf("Validate() = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if err := base.Validate(); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
}

// stale is a projection whose first view is from before the last event on the node subject,
// as when the control plane wrote in between: Register's append conflicts and it must decide
// again on the fresh view.
type stale struct {
	*live.Projection
	old   *state.State
	views int
}

func (s *stale) View(fn func(*state.State)) {
	s.views++
	if s.views == 1 {
		fn(s.old)
		return
	}
	s.Projection.View(fn)
}

func TestRegisterConflict(t *testing.T) {
	st, proj, ctx := setup(t)
	// The log has the node with another capacity, and then with a third one (an earlier run of
	// the agent, say); the stale view has only the first.
	other := base
	other.Memory = 1 << 30
	if err := Register(ctx, st, proj, other, "node/n1"); err != nil {
		t.Fatal(err)
	}
	old := state.New()
	evs, err := st.History(ctx, events.NodeRegistrationSubject("n1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		_ = old.Apply(ev)
	}
	third, err := events.New(time.Now(), events.Meta{Actor: "node/n1"}, events.ObjectRef{Kind: events.KindNode, Name: "n1"}, "",
		&events.NodeRegistered{Address: base.Address, MilliCPU: 1000, Memory: 2 << 30, MaxPods: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, third, evs[len(evs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	s := &stale{Projection: proj, old: old}
	if err := Register(ctx, st, s, base, ""); err != nil {
		t.Fatalf("Register after a conflict: %v", err)
	}
	if s.views < 2 {
		t.Errorf("Register looked at the state %d times; want a second look after the conflict", s.views)
	}
	want := []string{"NodeRegistered by node/n1", "NodeRegistered by node/n1", "NodeRegistered by node/n1"}
	if diff := cmp.Diff(want, nodeHistory(t, ctx, st, "n1")); diff != "" {
		t.Errorf("node history (-want +got):\n%s", diff)
	}
}

func TestRegisterAllPipelines(t *testing.T) {
	st, proj, ctx := setup(t)
	var nodes []NodeInfo
	for _, name := range []string{"a", "b", "c"} {
		n := base
		n.Name = name
		nodes = append(nodes, n)
	}
	bad := base
	bad.Name = "Bad"
	if err := RegisterAll(ctx, st, proj, append(nodes, bad), "node/sim"); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("RegisterAll with one invalid node = %v, want ErrInvalidArgument", err)
	}
	var got []string
	proj.View(func(s *state.State) {
		for name, n := range s.Nodes {
			if n.Ready && n.MilliCPU == 4000 {
				got = append(got, name)
			}
		}
	})
	if len(got) != 3 {
		t.Errorf("registered %v, want the 3 valid nodes, Ready", got)
	}
}

func TestLeases(t *testing.T) {
	st, _, ctx := setup(t)
	kv, err := LeaseBucket(ctx, st.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.Bucket() != api.LeaseBucket || status.History() != 1 {
		t.Errorf("bucket %s with history %d, want %s with history 1", status.Bucket(), status.History(), api.LeaseBucket)
	}
	if info := status.(*jetstream.KeyValueBucketStatus).StreamInfo(); info.Config.Storage != jetstream.FileStorage {
		t.Errorf("bucket storage %v, want file", info.Config.Storage)
	}
	// Opening it again finds the same bucket.
	if _, err := LeaseBucket(ctx, st.JetStream()); err != nil {
		t.Fatal(err)
	}

	if err := RenewLease(ctx, kv, "n1"); err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	var l Lease
	if err := json.Unmarshal(entry.Value(), &l); err != nil || l.Node != "n1" || l.RenewTime.IsZero() {
		t.Errorf("lease value %s (%v): want the node's name and a renew time", entry.Value(), err)
	}

	// The loop renews every node at once, and again every interval.
	rounds := make(chan int, 10)
	loopCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = RenewLoop(loopCtx, kv, []string{"a", "b"}, RenewConfig{Interval: time.Millisecond, Renewed: func(n int) { rounds <- n }})
	})
	for i := range 3 {
		select {
		case n := <-rounds:
			if n != 2 {
				t.Errorf("round %d renewed %d leases, want 2", i, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("lease loop did not renew")
		}
	}
	cancel()
	wg.Wait()
	for _, node := range []string{"a", "b"} {
		e, err := kv.Get(ctx, node)
		if err != nil {
			t.Fatalf("lease of %s: %v", node, err)
		}
		if e.Revision() == 0 {
			t.Errorf("lease of %s has no revision", node)
		}
	}
}
