package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/services/nodeagent/internal/register"
)

// Defaults of a simulated node: a large machine, so capacity is rarely what limits a benchmark.
const (
	DefaultPrefix   = "sim-"
	DefaultMilliCPU = 32000
	DefaultMemory   = 256 << 30
	DefaultMaxPods  = 110
	// LabelSimulated marks simulated nodes, so real workloads can avoid them with a selector.
	LabelSimulated = "skiff.dev/simulated"
	// LabelHostname is Kubernetes' well-known hostname label.
	LabelHostname = "kubernetes.io/hostname"
)

// Config configures Run. Store and Count are required; every other zero value works.
type Config struct {
	Store *store.Store
	// Count is how many nodes to simulate, named Prefix followed by a zero-padded index.
	Count  int
	Prefix string
	// MilliCPU, Memory (bytes) and MaxPods are each node's capacity.
	MilliCPU int64
	Memory   int64
	MaxPods  int32
	// Labels are added to every node's labels.
	Labels map[string]string
	// LeaseInterval is how often leases are renewed; default register.DefaultLeaseInterval.
	LeaseInterval time.Duration
	// BatchSize bounds the reports appended in one pipelined batch; default 1024.
	BatchSize int
	Clock     func() time.Time
	Logger    *slog.Logger
	// Ready, if set, is called once all nodes are registered and the simulator follows its work.
	Ready func(nodes []string)
}

func (c *Config) defaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MilliCPU == 0 {
		c.MilliCPU = DefaultMilliCPU
	}
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.MaxPods == 0 {
		c.MaxPods = DefaultMaxPods
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1024
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// NodeNames returns the names Run gives count nodes with prefix.
func NodeNames(prefix string, count int) []string {
	width := len(strconv.Itoa(max(count-1, 0)))
	names := make([]string, count)
	for i := range names {
		names[i] = fmt.Sprintf("%s%0*d", prefix, width, i)
	}
	return names
}

// Run registers the nodes, renews their leases and reports their pods until ctx ends, and
// returns nil then. It returns an error if the nodes cannot be registered.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.Store == nil || cfg.Count <= 0 {
		return fmt.Errorf("simulate: need a store and a positive node count (got %d): %w", cfg.Count, events.ErrInvalidArgument)
	}
	log := cfg.Logger
	// The goroutines end with ctx, so it is cancelled before they are waited for (defers run
	// last first): an error returned on the way must not wait for the caller to end ctx.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The nodes' own subjects, for idempotent registration and for pod CIDRs.
	nodes := live.New(snapshot.Start(ctx, cfg.Store, api.NodeSnapshotBucket, []string{events.KindNode}, log), log)
	wg.Go(func() {
		if err := nodes.Run(ctx, cfg.Store, []string{events.KindFilter(events.KindNode)}); err != nil {
			log.Error("follow nodes", "err", err)
		}
	})
	if err := nodes.WaitSynced(ctx); err != nil {
		return nil
	}
	names := NodeNames(cfg.Prefix, cfg.Count)
	infos := make([]register.NodeInfo, len(names))
	for i, name := range names {
		labels := map[string]string{LabelSimulated: "true", LabelHostname: name}
		maps.Copy(labels, cfg.Labels)
		infos[i] = register.NodeInfo{Name: name, Labels: labels, MilliCPU: cfg.MilliCPU, Memory: cfg.Memory, MaxPods: cfg.MaxPods}
	}
	if err := register.RegisterAll(ctx, cfg.Store, nodes, infos, ""); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("simulate: register %d nodes: %w", len(infos), err)
	}
	log.Info("simulated nodes registered", "nodes", len(names))

	kv, err := register.LeaseBucket(ctx, cfg.Store.JetStream())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("simulate: %w", err)
	}
	wg.Go(func() {
		_ = register.RenewLoop(ctx, kv, names, register.RenewConfig{Interval: cfg.LeaseInterval, Clock: cfg.Clock, Logger: log})
	})

	k := newKubelet(cfg, names, nodes)
	wg.Go(func() { k.write(ctx) })
	err = cfg.Store.Follow(ctx, store.FollowOptions{
		Filters: []string{events.KindFilter(events.KindBind), events.KindFilter(events.KindStatus)},
		CaughtUp: func(uint64) {
			k.caughtUp()
			if cfg.Ready != nil {
				cfg.Ready(names)
			}
		},
	}, k.observe)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("simulate: follow bindings: %w", err)
}

// simPod is one pod on a simulated node, as the log tells it plus what is being written.
type simPod struct {
	node, namespace, name string
	uid                   string
	containers            []events.Container
	// statusSeq is the last sequence on the pod's status subject: the next report's condition.
	statusSeq     uint64
	running       bool
	stopRequested bool
	terminated    bool
	ip            netip.Addr
	inflight      bool
	// cause is the last control-plane event about the pod (PodBound, PodStopRequested): what
	// the reports react to.
	cause events.Cause
}

// kubelet is the simulated nodes' shared agent.
type kubelet struct {
	cfg   Config
	log   *slog.Logger
	nodes *live.Projection
	own   map[string]bool

	mu     sync.Mutex
	pods   map[string]*simPod // by status subject
	dirty  map[string]struct{}
	synced bool
	wake   chan struct{}
	ips    map[string]*ipPool // by node
}

func newKubelet(cfg Config, names []string, nodes *live.Projection) *kubelet {
	k := &kubelet{cfg: cfg, log: cfg.Logger, nodes: nodes, own: map[string]bool{},
		pods: map[string]*simPod{}, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1), ips: map[string]*ipPool{}}
	for _, n := range names {
		k.own[n] = true
	}
	return k
}

func (k *kubelet) signal() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

func (k *kubelet) caughtUp() {
	k.mu.Lock()
	k.synced = true
	k.mu.Unlock()
	k.signal()
}

// observe folds one bind or status event of the log into what the nodes know.
func (k *kubelet) observe(ev *events.Event) {
	sub, err := events.ParseSubject(ev.Subject)
	if err != nil || !k.own[sub.Node] {
		return
	}
	key := events.StatusSubject(sub.Node, sub.Namespace, sub.Name)
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.pods[key]
	if p == nil {
		p = &simPod{node: sub.Node, namespace: sub.Namespace, name: sub.Name}
		k.pods[key] = p
	}
	switch d := ev.Data.(type) {
	case *events.PodBound:
		if d.Pod.Metadata.UID != p.uid {
			// A new pod of this name on this node; the status subject's history goes on.
			k.release(p)
			*p = simPod{node: sub.Node, namespace: sub.Namespace, name: sub.Name, statusSeq: p.statusSeq, inflight: p.inflight}
			p.uid = d.Pod.Metadata.UID
		}
		p.containers = d.Pod.Spec.Containers
		p.cause = ev.Cause()
	case *events.PodStopRequested:
		if d.UID == p.uid {
			p.stopRequested = true
			p.cause = ev.Cause()
		}
	case *events.PodStatusReported:
		p.statusSeq = max(p.statusSeq, ev.Seq)
		if d.UID == p.uid && d.Status.Phase == events.PodRunning {
			p.running = true
			if ip, err := netip.ParseAddr(d.Status.PodIP); err == nil && !p.ip.IsValid() {
				p.ip = ip
				k.pool(p.node).use(ip)
			}
		}
	case *events.PodTerminated:
		p.statusSeq = max(p.statusSeq, ev.Seq)
		if d.UID == p.uid {
			p.terminated = true
			k.release(p)
		}
	}
	if k.next(p) != nil {
		k.dirty[key] = struct{}{}
		if k.synced {
			k.signal()
		}
	}
}

// next is the event p needs now, or nil. Called with mu held.
func (k *kubelet) next(p *simPod) events.Payload {
	switch {
	case p.uid == "" || p.terminated:
		return nil
	case p.stopRequested:
		return &events.PodTerminated{UID: p.uid}
	case !p.running:
		return &events.PodStatusReported{UID: p.uid}
	}
	return nil
}

// write appends what the pods need, in batches, until ctx ends.
func (k *kubelet) write(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-k.wake:
		case <-retry.C:
		case <-ctx.Done():
			return
		}
		for {
			ws, ps := k.take()
			if len(ws) == 0 {
				break
			}
			failed := false
			for i, err := range k.cfg.Store.AppendAll(ctx, ws) {
				k.done(ps[i], ws[i], err)
				if err != nil && !errors.Is(err, events.ErrConflict) {
					failed = true
					if ctx.Err() == nil {
						k.log.Warn("report pod status", "subject", ws[i].Event.Subject, "err", err)
					}
				}
			}
			if failed {
				// The log is struggling: try again in a while, not in a loop.
				retry.Reset(500 * time.Millisecond)
				break
			}
		}
	}
}

// take builds the next batch of reports and marks their pods in flight.
func (k *kubelet) take() ([]store.Write, []*simPod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.synced {
		return nil, nil
	}
	now := k.cfg.Clock().UTC()
	var ws []store.Write
	var ps []*simPod
	for key := range k.dirty {
		if len(ws) >= k.cfg.BatchSize {
			break
		}
		p := k.pods[key]
		if p.inflight {
			continue
		}
		delete(k.dirty, key)
		payload := k.next(p)
		if payload == nil {
			continue
		}
		if r, ok := payload.(*events.PodStatusReported); ok {
			r.Status = k.running(p, now)
		}
		ev, err := events.New(now, events.Meta{Actor: "node/" + p.node}.From(p.cause),
			events.ObjectRef{Kind: events.KindPod, Namespace: p.namespace, Name: p.name, UID: p.uid}, p.node, payload)
		if err != nil {
			k.log.Error("build pod report", "pod", p.namespace+"/"+p.name, "err", err)
			continue
		}
		p.inflight = true
		ws = append(ws, store.Write{Event: ev, Expect: p.statusSeq})
		ps = append(ps, p)
	}
	return ws, ps
}

// done records the outcome of one report.
func (k *kubelet) done(p *simPod, w store.Write, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p.inflight = false
	key := w.Event.Subject
	if err != nil {
		// A conflict means someone else reported: their event, which the consumer delivers,
		// decides. Anything else is retried.
		if !errors.Is(err, events.ErrConflict) {
			k.dirty[key] = struct{}{}
		}
		return
	}
	p.statusSeq = max(p.statusSeq, w.Event.Seq)
	switch w.Event.Data.(type) {
	case *events.PodStatusReported:
		p.running = true
	case *events.PodTerminated:
		p.terminated = true
		k.release(p)
	}
	if k.next(p) != nil {
		k.dirty[key] = struct{}{}
		k.signal()
	}
}

// running is the status a simulated node reports for a started pod.
func (k *kubelet) running(p *simPod, now time.Time) events.PodStatus {
	if !p.ip.IsValid() {
		p.ip = k.pool(p.node).next(k.cidr(p.node))
	}
	st := events.PodStatus{Phase: events.PodRunning, StartTime: &now}
	if p.ip.IsValid() {
		st.PodIP = p.ip.String()
	}
	for i, c := range p.containers {
		st.ContainerStatuses = append(st.ContainerStatuses, events.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			Ready:       true,
			ContainerID: fmt.Sprintf("sim://%s/%d", p.uid, i),
			State:       events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: &now}},
		})
	}
	return st
}

func (k *kubelet) cidr(node string) netip.Prefix {
	var cidr string
	k.nodes.View(func(st *state.State) {
		if n := st.Nodes[node]; n != nil {
			cidr = n.Spec.PodCIDR
		}
	})
	p, _ := netip.ParsePrefix(cidr)
	return p
}

func (k *kubelet) pool(node string) *ipPool {
	pl := k.ips[node]
	if pl == nil {
		pl = &ipPool{used: map[netip.Addr]bool{}}
		k.ips[node] = pl
	}
	return pl
}

func (k *kubelet) release(p *simPod) {
	if p.ip.IsValid() {
		delete(k.pool(p.node).used, p.ip)
		p.ip = netip.Addr{}
	}
}

// ipPool hands out pod addresses of one node's CIDR, skipping the network address and the
// first host (the bridge's, by convention), as host-local does.
type ipPool struct {
	used map[netip.Addr]bool
}

func (pl *ipPool) use(ip netip.Addr) { pl.used[ip] = true }

// next returns a free address of cidr, or the zero Addr if cidr is unset or full.
func (pl *ipPool) next(cidr netip.Prefix) netip.Addr {
	if !cidr.IsValid() {
		return netip.Addr{}
	}
	cidr = cidr.Masked()
	ip := cidr.Addr().Next().Next()
	for ; cidr.Contains(ip); ip = ip.Next() {
		if !cidr.Contains(ip.Next()) {
			break // the broadcast address of IPv4 ranges
		}
		if !pl.used[ip] {
			pl.used[ip] = true
			return ip
		}
	}
	return netip.Addr{}
}
