package admission

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
)

func svcNamed(name string, extra string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n%s  selector: {app: %s}\n  ports: [{port: 80}]\n", name, extra, name)
}

// clusterIPs returns every Service's ClusterIP in the replica's state once it holds seq.
func (r *replica) clusterIPs(t *testing.T, seq uint64) map[string]string {
	out := map[string]string{}
	r.view(t, seq, func(st *state.State) {
		for k, s := range st.Services {
			out[k.Name] = s.Spec.ClusterIP
		}
	})
	return out
}

func TestClusterIPAllocation(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{ServiceCIDR: netip.MustParsePrefix("10.100.0.0/29")}) // .0 network, .1 reserved, .7 broadcast
	var seq uint64
	for _, name := range []string{"a", "b", "c"} {
		seq = r.mustApply(t, svcNamed(name, "")).Seq
	}
	want := map[string]string{"a": "10.100.0.2", "b": "10.100.0.3", "c": "10.100.0.4"}
	if diff := cmp.Diff(want, r.clusterIPs(t, seq)); diff != "" {
		t.Fatalf("allocation (-want +got):\n%s", diff)
	}

	// An explicit address is honoured, and the first host address may be asked for.
	seq = r.mustApply(t, svcNamed("d", "  clusterIP: 10.100.0.6\n"), svcNamed("k", "  clusterIP: 10.100.0.1\n")).Seq
	// The freed address of a deleted Service is the lowest free one again.
	if resp := r.Delete(ctxT(t), &api.DeleteRequest{Kind: "svc", Name: "b"}); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	seq = r.mustApply(t, svcNamed("e", ""), svcNamed("f", "")).Seq
	want = map[string]string{"a": "10.100.0.2", "c": "10.100.0.4", "d": "10.100.0.6", "k": "10.100.0.1", "e": "10.100.0.3", "f": "10.100.0.5"}
	if diff := cmp.Diff(want, r.clusterIPs(t, seq)); diff != "" {
		t.Fatalf("allocation (-want +got):\n%s", diff)
	}

	// The range is full now: .7 is the broadcast address.
	head := c.head()
	resp := r.apply(t, svcNamed("g", ""))
	if resp.Error == nil || resp.Error.Code != "FailedPrecondition" || len(resp.Error.Causes) != 1 ||
		resp.Error.Causes[0].Reason != "no address is free in the service range 10.100.0.0/29: delete unused Services" {
		t.Errorf("full range: %v", resp.Error)
	}
	resp = r.apply(t, svcNamed("h", "  clusterIP: 10.100.0.7\n"))
	if resp.Error == nil || resp.Error.Causes[0].Reason != "10.100.0.7 is the broadcast address of the service range 10.100.0.0/29" {
		t.Errorf("broadcast address: %v", resp.Error)
	}
	if h := c.head(); h != head {
		t.Errorf("rejected applies wrote %d events", h-head)
	}
}

// An automatic allocation in one document must not take the address a later one asks for.
func TestClusterIPExplicitWinsWithinRequest(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	resp := r.mustApply(t, svcNamed("auto", ""), svcNamed("fixed", "  clusterIP: 10.96.0.2\n"))
	want := map[string]string{"auto": "10.96.0.3", "fixed": "10.96.0.2"}
	if diff := cmp.Diff(want, r.clusterIPs(t, resp.Seq)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	resp = r.apply(t, svcNamed("x", "  clusterIP: 10.96.0.9\n"), svcNamed("z", "  clusterIP: 10.96.0.9\n"))
	if resp.Error == nil || resp.Error.Causes[0].Reason != `10.96.0.9 is also requested by Service "x" in namespace "default" (test.yaml#1)` {
		t.Errorf("same address twice: %v", resp.Error)
	}
	// Same name in two namespaces: still two Services.
	resp = r.apply(t, namespaceYAML, svcNamed("w", "  clusterIP: 10.96.0.9\n"),
		edit(t, svcNamed("w", "  clusterIP: 10.96.0.9\n"), "{name: w}", "{name: w, namespace: shop}"))
	if resp.Error == nil || len(resp.Error.Causes) != 1 || resp.Error.Causes[0].Document != "test.yaml#3" {
		t.Errorf("same address, same name, two namespaces: %v", resp.Error)
	}
}

// Concurrent applies of different Services on one replica never share an address.
func TestClusterIPConcurrentOneReplica(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	const n = 8
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	for i := range n {
		wg.Go(func() {
			resp := r.Apply(context.Background(), &api.ApplyRequest{Documents: docs(t, svcNamed(fmt.Sprintf("s%d", i), ""))})
			if resp.Error != nil {
				t.Error(resp.Error)
			}
			seqs[i] = resp.Seq
		})
	}
	wg.Wait()
	ips := r.clusterIPs(t, c.head())
	seen := map[string]string{}
	for name, ip := range ips {
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s share %s", name, other, ip)
		}
		seen[ip] = name
	}
	if len(ips) != n {
		t.Errorf("%d services, want %d", len(ips), n)
	}
	if evs := c.history(events.KindFilter(events.KindService)); len(evs) != n {
		t.Errorf("%d ServiceApplied events, want %d (no reallocation within a replica)", len(evs), n)
	}
}

// raceAppender simulates another replica: just before the first append it forwards, it lets
// before write to the log, so admission's decision is already stale when its append lands. The
// append itself may succeed (another subject was written) or conflict (the same subject).
type raceAppender struct {
	Appender
	once   sync.Once
	before func()
}

func (r *raceAppender) Append(ctx context.Context, ev *events.Event, expect uint64) (uint64, error) {
	r.once.Do(r.before)
	return r.Appender.Append(ctx, ev, expect)
}

// Two replicas that decide on states missing each other's new Service pick the same address; the
// log orders the claims and the later one moves to a free address.
func TestClusterIPCollisionAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	other := c.replica(Config{})
	var r *replica
	race := &raceAppender{Appender: c.store, before: func() {
		// The other replica creates "b" now; it also picks 10.96.0.2, the lowest free address.
		resp := other.Apply(context.Background(), &api.ApplyRequest{Documents: docs(t, svcNamed("b", ""))})
		if resp.Error != nil {
			t.Error(resp.Error)
		}
	}}
	r = c.replica(Config{Log: race})
	resp := r.mustApply(t, svcNamed("a", ""))

	ips := r.clusterIPs(t, resp.Seq)
	want := map[string]string{"b": "10.96.0.2", "a": "10.96.0.3"}
	if diff := cmp.Diff(want, ips); diff != "" {
		t.Errorf("after the race (-want +got):\n%s", diff)
	}
	hist := c.history(events.ObjectSubject(events.KindService, "default", "a"))
	if got := types(hist); !cmp.Equal(got, []string{"ServiceApplied", "ServiceApplied"}) {
		t.Errorf("history of a: %v, want created then moved", got)
	}
	if got := actions(resp.Results); !cmp.Equal(got, []string{"service/a created"}) || resp.Results[0].Seq != hist[1].Seq {
		t.Errorf("results %v (seq %d), want created at the move's seq %d", got, resp.Results[0].Seq, hist[1].Seq)
	}
}
