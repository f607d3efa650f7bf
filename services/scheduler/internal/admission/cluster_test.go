package admission

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// cluster is one real JetStream log with admission replicas, each with its own projection, as
// every scheduler replica has.
type cluster struct {
	t     testing.TB
	store *store.Store
	clock *fakeClock
}

type replica struct {
	*Admission
	proj *live.Projection
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	st, _, _ := eventstest.NewStore(t)
	return &cluster{t: t, store: st, clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
}

// replica starts an admission with its own live projection; log may wrap the store.
func (c *cluster) replica(cfg Config) *replica {
	c.t.Helper()
	p := eventstest.Follow(c.t, c.store)
	if cfg.Log == nil {
		cfg.Log = c.store
	}
	cfg.Projection = p
	if cfg.Clock == nil {
		cfg.Clock = c.clock.Now
	}
	return &replica{Admission: New(cfg), proj: p}
}

// fakeClock advances a second per reading, so event times are distinct and predictable.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(time.Second)
	return f.now
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (c *cluster) head() uint64 {
	c.t.Helper()
	h, err := c.store.Head(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

// history returns "Type" for every event on subject (wildcards allowed), in order.
func (c *cluster) history(subject string) []*events.Event {
	c.t.Helper()
	evs, err := c.store.History(context.Background(), subject)
	if err != nil {
		c.t.Fatal(err)
	}
	return evs
}

func types(evs []*events.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// append writes an event as another service would (a node agent registering, a controller).
func (c *cluster) append(ref events.ObjectRef, node string, p events.Payload) uint64 {
	c.t.Helper()
	ev, err := events.New(c.clock.Now(), events.Meta{Actor: "test"}, ref, node, p)
	if err != nil {
		c.t.Fatal(err)
	}
	last, err := c.store.LastSeq(context.Background(), ev.Subject)
	if err != nil {
		c.t.Fatal(err)
	}
	seq, err := c.store.Append(context.Background(), ev, last)
	if err != nil {
		c.t.Fatal(err)
	}
	return seq
}

func (r *replica) apply(t *testing.T, manifests ...string) *api.Response {
	t.Helper()
	return r.Apply(ctxT(t), &api.ApplyRequest{Documents: docs(t, manifests...), Actor: "user/test"})
}

// mustApply applies and fails the test on an error.
func (r *replica) mustApply(t *testing.T, manifests ...string) *api.Response {
	t.Helper()
	resp := r.apply(t, manifests...)
	if resp.Error != nil {
		t.Fatalf("apply: %v", resp.Error)
	}
	return resp
}

// view runs fn on the replica's state once it holds seq.
func (r *replica) view(t *testing.T, seq uint64, fn func(*state.State)) {
	t.Helper()
	if err := r.proj.WaitSeq(ctxT(t), seq); err != nil {
		t.Fatal(err)
	}
	r.proj.View(fn)
}

func actions(rs []api.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func liveNew() *live.Projection { return live.New(state.New(), nil) }

func contextWithTimeout(ms int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
}

type stateT = state.State

func key2(ns, name string) state.Key { return state.Key{Namespace: ns, Name: name} }

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func startsWith(s, prefix string) bool { return strings.HasPrefix(s, prefix) }
