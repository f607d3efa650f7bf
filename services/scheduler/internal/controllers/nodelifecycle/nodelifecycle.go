package nodelifecycle

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// DefaultLeaseTimeout is how long a Ready node may go without renewing its lease (Kubernetes'
// node-monitor-grace-period).
const DefaultLeaseTimeout = 40 * time.Second

// Condition reasons and messages, as Kubernetes' node lifecycle controller and kubelet write them.
const (
	ReasonNodeStatusUnknown  = "NodeStatusUnknown"
	MessageNodeStatusUnknown = "Kubelet stopped posting node status."
	ReasonKubeletReady       = "KubeletReady"
)

// Leases is what the controller needs of the lease bucket; jetstream.KeyValue implements it.
type Leases interface {
	WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error)
}

// OpenLeaseBucket opens the lease bucket, which the bootstrap step creates; see api.OpenLeaseBucket.
func OpenLeaseBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return api.OpenLeaseBucket(ctx, js)
}

// Config configures the controller. Log and Projection are required; without Leases the
// controller only assigns pod CIDRs.
type Config struct {
	Log        reconcile.Log
	Projection *live.Projection
	Leases     Leases
	// Clock times lease renewals and timeouts, and stamps events; default time.Now.
	Clock func() time.Time
	// Actor is written into every event; default "scheduler/controllers".
	Actor  string
	Logger *slog.Logger
	// Tracer traces each pass (reconcile.Batch.Trace); nil traces nothing.
	Tracer trace.Tracer
	// PodCIDRRange is the cluster range of pod CIDRs; default DefaultPodCIDRRange.
	PodCIDRRange string
	// LeaseTimeout is how long a Ready node may go without renewing; default DefaultLeaseTimeout.
	LeaseTimeout time.Duration
	// Resync bounds the loop's real-time sleep while a lease is running out (see package
	// reconcile); tests with a fake clock set it low.
	Resync time.Duration
}

// Controller assigns pod CIDRs and turns lease renewals into node readiness.
type Controller struct {
	cfg  Config
	loop *reconcile.Loop

	mu sync.Mutex
	// watching is when the lease watch began (zero: not yet): every node's grace starts there.
	watching time.Time
	// renewals are the lease revisions seen, and when (on the clock) a new one was seen.
	renewals map[string]renewal
	// firstSeen is when a pass first saw each node: a node registered after the watch began
	// gets its grace from then.
	firstSeen map[string]time.Time
	// cidrless is how many nodes the last pass left without a pod CIDR for lack of room
	// (logged when it changes). Only passes touch it.
	cidrless int
}

type renewal struct {
	revision uint64
	// at is when this controller saw the revision arrive; zero for the values that were there
	// when it started watching, which say nothing about the node being alive now.
	at time.Time
}

// New returns a controller; Run starts it.
func New(cfg Config) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Actor == "" {
		cfg.Actor = "scheduler/controllers"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PodCIDRRange == "" {
		cfg.PodCIDRRange = DefaultPodCIDRRange
	}
	if cfg.LeaseTimeout <= 0 {
		cfg.LeaseTimeout = DefaultLeaseTimeout
	}
	cfg.Logger = cfg.Logger.With("controller", "nodelifecycle")
	c := &Controller{cfg: cfg, renewals: map[string]renewal{}, firstSeen: map[string]time.Time{}}
	c.loop = reconcile.NewLoop(reconcile.Config{
		Name: "nodelifecycle", Projection: cfg.Projection, Clock: cfg.Clock, Resync: cfg.Resync, Logger: cfg.Logger,
	}, c.Sync)
	return c
}

// Run watches the leases and reconciles until ctx ends; it returns nil then. Errors:
// events.ErrInvalidArgument for a bad PodCIDRRange.
func (c *Controller) Run(ctx context.Context) error {
	if _, err := ParseRange(c.cfg.PodCIDRRange); err != nil {
		return err
	}
	if c.cfg.Leases == nil {
		c.cfg.Logger.Warn("no lease bucket: node readiness is not tracked")
		return c.loop.Run(ctx)
	}
	follow := c.startWatch(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		follow()
	}()
	err := c.loop.Run(ctx)
	<-done // the loop returns only once ctx has ended, which ends the watch
	return err
}

// startWatch notes when the watch began and opens it before returning, so every renewal after
// that is seen as one; the function it returns follows the watch (and any later one, if it
// breaks) until ctx ends.
func (c *Controller) startWatch(ctx context.Context) (follow func()) {
	c.mu.Lock()
	if c.watching.IsZero() {
		c.watching = c.cfg.Clock()
	}
	c.mu.Unlock()
	w, err := c.cfg.Leases.WatchAll(ctx)
	if err != nil {
		c.cfg.Logger.Warn("cannot watch leases yet", "err", err)
		w = nil
	}
	return func() { c.watch(ctx, w) }
}

func (c *Controller) watch(ctx context.Context, w jetstream.KeyWatcher) {
	// The first watch's initial values are history, not renewals.
	initial := true
	backoff := 100 * time.Millisecond
	for {
		if w != nil {
			initial = c.follow(w, initial)
			w.Stop()
			w = nil
			if ctx.Err() != nil {
				return
			}
			c.cfg.Logger.Warn("lease watch ended; starting over", "in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		var err error
		if w, err = c.cfg.Leases.WatchAll(ctx); err != nil {
			c.cfg.Logger.Warn("cannot watch leases", "err", err, "in", backoff)
			w = nil
		}
	}
}

// follow records the watch's entries until it closes, and returns whether it is still in its
// initial values then.
func (c *Controller) follow(w jetstream.KeyWatcher, initial bool) bool {
	for e := range w.Updates() {
		if e == nil {
			initial = false // the initial values are done
			continue
		}
		if e.Operation() != jetstream.KeyValuePut {
			continue // an agent that removes its lease is not renewing it
		}
		if c.observe(e.Key(), e.Revision(), initial) {
			c.loop.Trigger()
		}
	}
	return initial
}

// observe records a lease revision, and reports whether it may change a decision now: a new
// renewal of a node that is NotReady.
func (c *Controller) observe(node string, revision uint64, initial bool) bool {
	c.mu.Lock()
	old, seen := c.renewals[node]
	if seen && revision <= old.revision {
		c.mu.Unlock()
		return false // redelivered after the watch started over
	}
	r := renewal{revision: revision}
	if !initial {
		r.at = c.cfg.Clock()
	}
	c.renewals[node] = r
	c.mu.Unlock()
	if initial {
		return false
	}
	notReady := false
	c.cfg.Projection.View(func(s *state.State) {
		n := s.Nodes[node]
		notReady = n != nil && !n.Ready
	})
	return notReady
}

// Sync is one pass over every node. Run calls it; tests call it to take one step.
func (c *Controller) Sync(ctx context.Context) (reconcile.Result, error) {
	r, err := ParseRange(c.cfg.PodCIDRRange)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := c.cfg.Clock()
	b := reconcile.NewBatch(now, events.Meta{Actor: c.cfg.Actor}).Trace(c.cfg.Tracer, "nodelifecycle")
	var due time.Time
	c.mu.Lock()
	c.cfg.Projection.View(func(s *state.State) {
		c.assignPodCIDRs(s, r, b)
		due = c.checkLeases(s, now, b)
	})
	c.mu.Unlock()
	res, err := b.Flush(ctx, c.cfg.Log)
	if !due.IsZero() {
		res.Requeue(due)
	}
	return res, err
}

func nodeRef(name string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindNode, Name: name}
}

func nodeSeq(s *state.State, name string) uint64 {
	return s.SubjectSeq(events.ObjectSubject(events.KindNode, "", name))
}

// assignPodCIDRs gives every node without a pod CIDR the lowest free /24, in name order.
func (c *Controller) assignPodCIDRs(s *state.State, r netip.Prefix, b *reconcile.Batch) {
	used := map[netip.Prefix]bool{}
	var missing []string
	for name, n := range s.Nodes {
		if n.Spec.PodCIDR == "" {
			missing = append(missing, name)
		} else {
			markUsed(used, n.Spec.PodCIDR)
		}
	}
	slices.Sort(missing)
	for i, name := range missing {
		p, ok := AllocatePodCIDR(r, used)
		if !ok {
			// Said once for each number of nodes left without: every pass finds them again.
			if left := len(missing) - i; left != c.cidrless {
				c.cidrless = left
				c.cfg.Logger.Error("pod CIDR range is full; nodes get no pod CIDR", "nodes", left, "first", name, "range", r)
			}
			return
		}
		used[p] = true
		b.AddCaused(s.Nodes[name].Cause, nodeRef(name), "", &events.NodePodCIDRAssigned{PodCIDR: p.String()}, nodeSeq(s, name))
	}
	c.cidrless = 0
}

// checkLeases marks Ready nodes whose lease ran out NotReady and NotReady nodes that renew again
// Ready, and returns when the next lease runs out (zero if none is running). c.mu is held.
func (c *Controller) checkLeases(s *state.State, now time.Time, b *reconcile.Batch) time.Time {
	if c.watching.IsZero() {
		return time.Time{} // not tracking leases
	}
	for name := range c.firstSeen {
		if s.Nodes[name] == nil {
			delete(c.firstSeen, name)
		}
	}
	timeout := c.cfg.LeaseTimeout
	var due time.Time
	for _, name := range slices.Sorted(maps.Keys(s.Nodes)) {
		n := s.Nodes[name]
		first, ok := c.firstSeen[name]
		if !ok {
			first = now
			c.firstSeen[name] = now
		}
		renewed := c.renewals[name].at
		if n.Ready {
			// Grace from the start of the watch (or from the node's arrival): a new leader has
			// no history, and must not take that for silence.
			last := latest(c.watching, first, renewed)
			expires := last.Add(timeout)
			if now.Before(expires) {
				if due.IsZero() || expires.Before(due) {
					due = expires
				}
				continue
			}
			c.cfg.Logger.Info("node lease expired", "node", name, "last", last)
			b.Add(nodeRef(name), "", &events.NodeNotReady{Reason: ReasonNodeStatusUnknown, Message: MessageNodeStatusUnknown}, nodeSeq(s, name))
		} else if !renewed.IsZero() && now.Sub(renewed) < timeout {
			c.cfg.Logger.Info("node renews its lease again", "node", name)
			b.Add(nodeRef(name), "", &events.NodeReady{Reason: ReasonKubeletReady}, nodeSeq(s, name))
		}
	}
	return due
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
