package endpoints

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// Config configures the controller. Log and Projection are required.
type Config struct {
	Log        reconcile.Log
	Projection *live.Projection
	// Clock stamps events; default time.Now.
	Clock func() time.Time
	// Actor is written into every event; default "scheduler/controllers".
	Actor  string
	Logger *slog.Logger
	// Tracer traces each pass (reconcile.Batch.Trace); nil traces nothing.
	Tracer trace.Tracer
}

// Controller keeps every selecting Service's endpoints current.
type Controller struct {
	cfg  Config
	loop *reconcile.Loop

	mu sync.Mutex
	// changes, while Run runs, is what the fold applied since the last pass: a pass looks only
	// at what it touches. Nothing watched (Sync called alone): a pass looks at everything.
	changes reconcile.Changes
	// members are, per selecting Service, the pods its selector matches in its namespace
	// (endpoints or not), and selects the Services by one pair of their selectors: kept from
	// one full pass to the next, so that a pod's change finds its Services and a Service's
	// endpoints are computed from its own pods, never from every pod.
	members map[state.Key]map[state.Key]bool
	selects map[labelKey][]state.Key
	// synced counts the Services whose endpoints a pass computed, for tests.
	synced int
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
	cfg.Logger = cfg.Logger.With("controller", "endpoints")
	c := &Controller{cfg: cfg}
	c.loop = reconcile.NewLoop(reconcile.Config{
		Name: "endpoints", Projection: cfg.Projection, Clock: cfg.Clock, Logger: cfg.Logger,
	}, c.Sync)
	return c
}

// Run waits for the projection to catch up, then reconciles until ctx ends; it returns nil then.
// Each pass after the first looks only at the Services that changed or whose pods (or their
// nodes) did.
func (c *Controller) Run(ctx context.Context) error {
	defer c.Watch()()
	return c.loop.Run(ctx)
}

// Watch makes passes look only at what changed from now on (the first one at everything), as
// under Run; the returned function stops that. For tests and benchmarks that take the passes
// one at a time.
func (c *Controller) Watch() (stop func()) { return c.changes.Watch(c.cfg.Projection) }

// Sync is one pass. Under Run it looks at what changed since the last pass; otherwise (and on
// Run's first pass, or after a Service or namespace changed) at every Service. Tests call it to
// take one step.
func (c *Controller) Sync(ctx context.Context) (reconcile.Result, error) {
	b := reconcile.NewBatch(c.cfg.Clock(), events.Meta{Actor: c.cfg.Actor}).Trace(c.cfg.Tracer, "endpoints")
	c.mu.Lock()
	changes, all := c.changes.Take()
	c.cfg.Projection.View(func(s *state.State) {
		if !all {
			all = needsAll(changes)
		}
		if all {
			c.index(s)
			for key := range c.members {
				c.syncService(s, key, b)
			}
			return
		}
		for key := range c.touched(s, changes) {
			c.syncService(s, key, b)
		}
	})
	c.mu.Unlock()
	res, err := b.Flush(ctx, c.cfg.Log)
	c.changes.Done(res, err)
	return res, err
}

// needsAll reports whether changes include one that may change which pods a Service selects
// (a Service or a namespace): those are rare, and the next pass rebuilds the members.
func needsAll(changes []live.Change) bool {
	for _, ch := range changes {
		if k := ch.Object.Kind; k == events.KindService || k == events.KindNamespace {
			return true
		}
	}
	return false
}

// index rebuilds members and selects from every Service and pod.
func (c *Controller) index(s *state.State) {
	c.members = map[state.Key]map[state.Key]bool{}
	c.selects = map[labelKey][]state.Key{}
	for key, svc := range s.Services {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		c.members[key] = map[state.Key]bool{}
		// One pair of the selector finds every pod it can match: the first in key order.
		k := slices.Min(slices.Collect(maps.Keys(svc.Spec.Selector)))
		lk := labelKey{key.Namespace, k, svc.Spec.Selector[k]}
		c.selects[lk] = append(c.selects[lk], key)
	}
	for pk, p := range s.Pods {
		for _, key := range c.selecting(s, pk, p) {
			c.members[key][pk] = true
		}
	}
}

// selecting returns the Services whose selectors match pod p, of pk's namespace.
func (c *Controller) selecting(s *state.State, pk state.Key, p *state.Pod) []state.Key {
	var out []state.Key
	for k, v := range p.Metadata.Labels {
		for _, key := range c.selects[labelKey{pk.Namespace, k, v}] {
			if svc := s.Services[key]; svc != nil && state.MatchLabels(svc.Spec.Selector, p.Metadata.Labels) {
				out = append(out, key)
			}
		}
	}
	return out
}

// touched returns the Services whose endpoints changes may have changed: those selecting a pod
// that changed (or ran on a node that changed), and those whose Endpoints changed.
func (c *Controller) touched(s *state.State, changes []live.Change) map[state.Key]bool {
	dirty := map[state.Key]bool{}
	pod := func(pk state.Key, known *state.Pod) {
		now := s.Pods[pk]
		p := now
		if p == nil {
			p = known // deleted: it leaves the Services that selected it (its labels never change)
		}
		if p == nil {
			return
		}
		for _, key := range c.selecting(s, pk, p) {
			if now == nil {
				delete(c.members[key], pk)
			} else {
				c.members[key][pk] = true
			}
			dirty[key] = true
		}
	}
	for _, ch := range changes {
		switch ch.Object.Kind {
		case events.KindPod:
			pod(state.Key{Namespace: ch.Object.Namespace, Name: ch.Object.Name}, ch.Pod)
		case events.KindNode:
			for pk, p := range s.PodsOnNode(ch.Object.Name) {
				pod(pk, p)
			}
		case events.KindEndpoints:
			key := state.Key{Namespace: ch.Object.Namespace, Name: ch.Object.Name}
			if _, ok := c.members[key]; ok {
				dirty[key] = true
			}
		}
	}
	return dirty
}

// syncService writes the Service's endpoints if they are not what its pods make them.
func (c *Controller) syncService(s *state.State, key state.Key, b *reconcile.Batch) {
	svc := s.Services[key]
	if svc == nil || len(svc.Spec.Selector) == 0 {
		return
	}
	if _, ok := s.Namespaces[key.Namespace]; !ok {
		return // going away with its namespace
	}
	c.synced++
	pods := make([]*state.Pod, 0, len(c.members[key]))
	for pk := range c.members[key] {
		if p := s.Pods[pk]; p != nil {
			pods = append(pods, p)
		}
	}
	addrs := Compute(&svc.Service, pods, s.Nodes)
	if cur := s.Endpoints[key]; cur != nil && Equal(cur.Addresses, addrs) {
		return
	}
	ref := events.ObjectRef{Kind: events.KindEndpoints, Namespace: key.Namespace, Name: key.Name, UID: svc.Metadata.UID}
	subject := events.ObjectSubject(events.KindEndpoints, key.Namespace, key.Name)
	// The update reacts to the latest change among the Service and its pods; the pass's span
	// links the other changes since the last update.
	seq := s.SubjectSeq(subject)
	cause := svc.Cause
	for _, p := range pods {
		if p.Cause.Seq > cause.Seq {
			cause = p.Cause
		}
	}
	for _, p := range pods {
		if p.Cause.Seq > seq && p.Cause.ID != cause.ID {
			b.Link(p.Cause)
		}
	}
	b.AddCaused(cause, ref, "", &events.EndpointsUpdated{Addresses: addrs}, seq)
}

// labelKey is one label pair in a namespace.
type labelKey struct{ namespace, key, value string }

// Compute is the endpoints of svc among pods (any pods; Compute filters them) whose nodes are in
// nodes. See the package doc for the rules. The result is sorted and never nil.
func Compute(svc *events.Service, pods []*state.Pod, nodes map[string]*state.Node) []events.EndpointAddress {
	type sortable struct {
		ip   netip.Addr
		addr events.EndpointAddress
	}
	var found []sortable
	for _, p := range pods {
		if !serves(svc, p, nodes) {
			continue
		}
		var ports []events.EndpointPort
		for _, sp := range svc.Spec.Ports {
			if n, ok := TargetPort(sp, &p.Pod); ok {
				ports = append(ports, events.EndpointPort{Name: sp.Name, Port: n, Protocol: protocol(sp.Protocol)})
			}
		}
		if len(ports) == 0 {
			continue
		}
		ip, _ := netip.ParseAddr(p.Status.PodIP) // the zero Addr for junk: sorts first
		found = append(found, sortable{ip, events.EndpointAddress{IP: p.Status.PodIP, NodeName: p.Spec.NodeName, PodName: p.Metadata.Name, Ports: ports}})
	}
	slices.SortFunc(found, func(a, b sortable) int {
		return cmp.Or(a.ip.Compare(b.ip), cmp.Compare(a.addr.IP, b.addr.IP), cmp.Compare(a.addr.PodName, b.addr.PodName))
	})
	out := make([]events.EndpointAddress, len(found))
	for i, f := range found {
		out[i] = f.addr
	}
	return out
}

func serves(svc *events.Service, p *state.Pod, nodes map[string]*state.Node) bool {
	if p.Metadata.Namespace != svc.Metadata.Namespace || !state.MatchLabels(svc.Spec.Selector, p.Metadata.Labels) {
		return false
	}
	if !p.Ready() || p.Deleting() || p.Terminated || p.Status.PodIP == "" {
		return false
	}
	n := nodes[p.Spec.NodeName]
	return n != nil && n.Ready
}

func protocol(p string) string {
	if p == "" {
		return "TCP"
	}
	return p
}

// TargetPort resolves a service port on pod: a number as is (none: the service port), a name
// through the pod's container ports with that name and protocol. ok is false if the pod has no
// port of that name.
func TargetPort(sp events.ServicePort, pod *events.Pod) (port int32, ok bool) {
	tp := sp.TargetPort
	switch {
	case tp == nil || (!tp.IsString && tp.IntVal == 0):
		return sp.Port, true
	case !tp.IsString:
		return tp.IntVal, true
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal && protocol(cp.Protocol) == protocol(sp.Protocol) {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// Equal reports whether two address lists are the same (nil and empty are).
func Equal(a, b []events.EndpointAddress) bool {
	return slices.EqualFunc(a, b, func(x, y events.EndpointAddress) bool {
		return x.IP == y.IP && x.NodeName == y.NodeName && x.PodName == y.PodName && slices.Equal(x.Ports, y.Ports)
	})
}
