package podlifecycle

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// Defaults of Config.
const (
	// DefaultEvictionTimeout is Kubernetes' default tolerationSeconds for not-ready nodes.
	DefaultEvictionTimeout = 5 * time.Minute
	// DefaultDrainTimeout bounds the wait for the endpoints controller.
	DefaultDrainTimeout = 30 * time.Second
)

// Taints a pod can tolerate to change its eviction timeout (NoExecute, as in Kubernetes).
const (
	TaintUnreachable = "node.kubernetes.io/unreachable"
	TaintNotReady    = "node.kubernetes.io/not-ready"
)

// Config configures the controller. Log and Projection are required.
type Config struct {
	Log        reconcile.Log
	Projection *live.Projection
	// Clock decides when evictions fall due and stamps events; default time.Now.
	Clock func() time.Time
	// Actor is written into every event; default "scheduler/controllers".
	Actor  string
	Logger *slog.Logger
	// Tracer traces each pass (reconcile.Batch.Trace); nil traces nothing.
	Tracer trace.Tracer
	// EvictionTimeout is how long a node may be NotReady before its pods are force-deleted;
	// default DefaultEvictionTimeout.
	EvictionTimeout time.Duration
	// DrainTimeout is how long after its deletion request a pod that Endpoints still list is
	// stopped anyway; default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Resync bounds the loop's real-time sleep while an eviction is pending (see package
	// reconcile); tests with a fake clock set it low.
	Resync time.Duration
}

// Controller deletes and evicts pods.
type Controller struct {
	cfg  Config
	loop *reconcile.Loop

	mu sync.Mutex
	// changes, while Run runs, is what the fold applied since the last pass: a pass looks only
	// at what it touches. Nothing watched (Sync called alone): a pass looks at everything.
	changes reconcile.Changes
	// watching are the pods the last pass left with something still to come (being deleted, on
	// a node that is not Ready): every pass looks at them again, with the pods that changed.
	watching map[state.Key]bool
	// looked counts the pods passes looked at, for tests.
	looked int
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
	if cfg.EvictionTimeout <= 0 {
		cfg.EvictionTimeout = DefaultEvictionTimeout
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	cfg.Logger = cfg.Logger.With("controller", "podlifecycle")
	c := &Controller{cfg: cfg}
	c.loop = reconcile.NewLoop(reconcile.Config{
		Name: "podlifecycle", Projection: cfg.Projection, Clock: cfg.Clock, Resync: cfg.Resync, Logger: cfg.Logger,
	}, c.Sync)
	return c
}

// Run waits for the projection to catch up, then reconciles until ctx ends; it returns nil then.
// Each pass after the first looks only at the pods that changed, those on nodes that changed, and
// those still on their way out.
func (c *Controller) Run(ctx context.Context) error {
	defer c.Watch()()
	return c.loop.Run(ctx)
}

// Watch makes passes look only at what changed from now on (the first one at everything), as
// under Run; the returned function stops that. For tests and benchmarks that take the passes
// one at a time.
func (c *Controller) Watch() (stop func()) { return c.changes.Watch(c.cfg.Projection) }

// Sync is one pass. Under Run it looks at what changed since the last pass and at the pods it
// is watching; otherwise (and on Run's first pass, or after a namespace changed) at every pod.
// Tests call it to take one step.
func (c *Controller) Sync(ctx context.Context) (reconcile.Result, error) {
	now := c.cfg.Clock()
	b := reconcile.NewBatch(now, events.Meta{Actor: c.cfg.Actor}).Trace(c.cfg.Tracer, "podlifecycle")
	var due time.Time
	c.mu.Lock()
	changes, all := c.changes.Take()
	c.cfg.Projection.View(func(s *state.State) {
		p := pass{cfg: &c.cfg, s: s, now: now, b: b}
		watching := map[state.Key]bool{}
		look := func(key state.Key, pod *state.Pod) {
			c.looked++
			if p.pod(pod) {
				watching[key] = true
			}
		}
		if !all {
			all = slices.ContainsFunc(changes, func(ch live.Change) bool { return ch.Object.Kind == events.KindNamespace })
		}
		if all {
			for key, pod := range s.Pods {
				look(key, pod)
			}
		} else {
			keys := maps.Clone(c.watching)
			if keys == nil {
				keys = map[state.Key]bool{}
			}
			for _, ch := range changes {
				switch ch.Object.Kind {
				case events.KindPod:
					keys[state.Key{Namespace: ch.Object.Namespace, Name: ch.Object.Name}] = true
				case events.KindNode:
					for key := range s.PodsOnNode(ch.Object.Name) {
						keys[key] = true
					}
				}
			}
			for key := range keys {
				if pod := s.Pods[key]; pod != nil {
					look(key, pod)
				}
			}
		}
		c.watching = watching
		due = p.due
	})
	c.mu.Unlock()
	res, err := b.Flush(ctx, c.cfg.Log)
	c.changes.Done(res, err)
	if !due.IsZero() {
		res.Requeue(due)
	}
	return res, err
}

// pass holds one pass's view and decisions.
type pass struct {
	cfg *Config
	s   *state.State
	now time.Time
	b   *reconcile.Batch
	// due is the earliest time a decision that waits for the clock falls due.
	due time.Time
	// listed holds the IPs every Endpoints lists; built on first use.
	listed map[string]bool
}

func (p *pass) requeue(at time.Time) {
	if p.due.IsZero() || at.Before(p.due) {
		p.due = at
	}
}

// pod decides what pod needs; it reports whether the pod must be looked at again even if it
// does not change (it is on its way out, or its node is not Ready).
func (p *pass) pod(pod *state.Pod) (watch bool) {
	ns, name, uid := pod.Metadata.Namespace, pod.Metadata.Name, pod.Metadata.UID
	node := pod.Spec.NodeName
	evict := node != "" && p.nodeLost(pod)
	_, nsExists := p.s.Namespaces[ns]
	if !pod.Deleting() && !evict && nsExists {
		// The common case: nothing to do, so nothing to compute. A pod on a node that is not
		// Ready yet may be evicted when its toleration runs out.
		n := p.s.Nodes[node]
		return node != "" && (n == nil || !n.Ready)
	}
	ref := events.ObjectRef{Kind: events.KindPod, Namespace: ns, Name: name, UID: uid}
	podSeq := p.s.SubjectSeq(events.ObjectSubject(events.KindPod, ns, name))
	bindSeq := p.s.SubjectSeq(events.BindSubject(node, ns, name))
	// What is written reacts to the pod's last event, or to its node's loss.
	cause := pod.Cause
	if n := p.s.Nodes[node]; evict && n != nil {
		cause = n.Cause
	}

	switch {
	case !pod.Deleting() && !evict:
		p.b.AddCaused(cause, ref, "", &events.PodDeletionRequested{UID: uid, GracePeriodSeconds: pod.Spec.GracePeriodSeconds()}, podSeq)
	case node == "":
		p.b.AddCaused(cause, ref, "", &events.PodDeleted{UID: uid}, podSeq)
	case evict && !pod.StopRequested && !pod.Terminated:
		// Tell the node, should it come back, before the pod disappears from the log (and
		// claim the bind subject if it is not bound yet).
		p.b.AddCaused(cause, ref, node, &events.PodStopRequested{UID: uid, GracePeriodSeconds: 0}, bindSeq)
	case evict || pod.Terminated:
		p.b.AddCaused(cause, ref, "", &events.PodDeleted{UID: uid}, podSeq)
	case !pod.Bound && !pod.StopRequested:
		// Claim the bind subject (expected: empty) so a late binding conflicts.
		p.b.AddCaused(cause, ref, node, &events.PodStopRequested{UID: uid, GracePeriodSeconds: 0}, bindSeq)
	case !pod.Bound:
		p.b.AddCaused(cause, ref, "", &events.PodDeleted{UID: uid}, podSeq)
	case pod.StopRequested:
		// Waiting for the node's PodTerminated.
	case p.inEndpoints(pod.Status.PodIP):
		// Waiting for the endpoints controller to drop it, within reason.
		drained := pod.Metadata.DeletionTimestamp.Add(p.cfg.DrainTimeout)
		if p.now.Before(drained) {
			p.requeue(drained)
			return true
		}
		p.cfg.Logger.Warn("endpoints still list a pod being deleted; stopping it anyway", "pod", pod.Key(), "ip", pod.Status.PodIP)
		fallthrough
	default:
		p.b.AddCaused(cause, ref, node, &events.PodStopRequested{UID: uid, GracePeriodSeconds: pod.GracePeriodSeconds}, bindSeq)
	}
	return true
}

// nodeLost reports whether pod's node is deleted, or NotReady for longer than the pod tolerates;
// if the node is NotReady but not for long enough yet, it asks for a pass when it will be.
func (p *pass) nodeLost(pod *state.Pod) bool {
	n := p.s.Nodes[pod.Spec.NodeName]
	if n == nil {
		return true
	}
	if n.Ready {
		return false
	}
	var since *time.Time
	reason := ""
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			since, reason = c.LastTransitionTime, c.Reason
		}
	}
	if since == nil {
		return false // no time to count from; never guess
	}
	timeout, ok := tolerated(pod, reason, p.cfg.EvictionTimeout)
	if !ok {
		return false
	}
	at := since.Add(timeout)
	if p.now.Before(at) {
		p.requeue(at)
		return false
	}
	return true
}

// tolerated is how long pod stays on a NotReady node (for reason): the timeout of a matching
// NoExecute toleration, ok false if it tolerates forever, def if it has none.
func tolerated(pod *state.Pod, reason string, def time.Duration) (time.Duration, bool) {
	taint := events.Taint{Key: TaintNotReady, Effect: "NoExecute"}
	if reason == "NodeStatusUnknown" {
		taint.Key = TaintUnreachable
	}
	for _, tol := range pod.Spec.Tolerations {
		if tol.Tolerates(taint) {
			if tol.TolerationSeconds == nil {
				return 0, false
			}
			return time.Duration(max(0, *tol.TolerationSeconds)) * time.Second, true
		}
	}
	return def, true
}

func (p *pass) inEndpoints(ip string) bool {
	if ip == "" {
		return false
	}
	if p.listed == nil {
		p.listed = map[string]bool{}
		for _, e := range p.s.Endpoints {
			for _, a := range e.Addresses {
				p.listed[a.IP] = true
			}
		}
	}
	return p.listed[ip]
}
