package endpoints

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

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
}

// Controller keeps every selecting Service's endpoints current.
type Controller struct {
	cfg  Config
	loop *reconcile.Loop
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
func (c *Controller) Run(ctx context.Context) error { return c.loop.Run(ctx) }

// Sync is one pass over every Service. Run calls it; tests call it to take one step.
func (c *Controller) Sync(ctx context.Context) (reconcile.Result, error) {
	b := reconcile.NewBatch(c.cfg.Clock(), events.Meta{Actor: c.cfg.Actor})
	c.cfg.Projection.View(func(s *state.State) {
		idx := indexPods(s)
		for key, svc := range s.Services {
			if len(svc.Spec.Selector) == 0 {
				continue
			}
			if _, ok := s.Namespaces[key.Namespace]; !ok {
				continue // going away with its namespace
			}
			addrs := Compute(&svc.Service, idx.candidates(key.Namespace, svc.Spec.Selector), s.Nodes)
			if cur := s.Endpoints[key]; cur != nil && Equal(cur.Addresses, addrs) {
				continue
			}
			ref := events.ObjectRef{Kind: events.KindEndpoints, Namespace: key.Namespace, Name: key.Name, UID: svc.Metadata.UID}
			subject := events.ObjectSubject(events.KindEndpoints, key.Namespace, key.Name)
			b.Add(ref, "", &events.EndpointsUpdated{Addresses: addrs}, s.SubjectSeq(subject))
		}
	})
	return b.Flush(ctx, c.cfg.Log)
}

// podIndex finds the pods a selector may match without scanning every pod for every Service:
// pods by namespace and one label pair.
type podIndex map[labelKey][]*state.Pod

type labelKey struct{ namespace, key, value string }

// indexPods indexes the pods that may be endpoints by the label keys that selectors use.
func indexPods(s *state.State) podIndex {
	type nsKey struct{ namespace, key string }
	used := map[nsKey]bool{}
	for key, svc := range s.Services {
		for k := range svc.Spec.Selector {
			used[nsKey{key.Namespace, k}] = true
		}
	}
	idx := podIndex{}
	if len(used) == 0 {
		return idx
	}
	for _, p := range s.Pods {
		if !p.Ready() || p.Deleting() {
			continue // never an endpoint
		}
		for k, v := range p.Metadata.Labels {
			if used[nsKey{p.Metadata.Namespace, k}] {
				lk := labelKey{p.Metadata.Namespace, k, v}
				idx[lk] = append(idx[lk], p)
			}
		}
	}
	return idx
}

// candidates are the pods of namespace that carry the selector's rarest label pair.
func (idx podIndex) candidates(namespace string, selector map[string]string) []*state.Pod {
	var best []*state.Pod
	first := true
	for k, v := range selector {
		ps := idx[labelKey{namespace, k, v}]
		if first || len(ps) < len(best) {
			best, first = ps, false
		}
	}
	return best
}

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
