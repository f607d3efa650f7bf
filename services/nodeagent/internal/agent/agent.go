package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"

	"skiff.dev/events"
	"skiff.dev/events/images"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/services/nodeagent/internal/podnet"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/work"
)

// Config configures an agent. Node, Log, Nodes, JetStream, Runtime and Network are required.
type Config struct {
	// Node is this node's name.
	Node string
	// Address is the node's address that other nodes route pod traffic to.
	Address string
	Log     *store.Store
	// Nodes is a projection of the node subjects (for this node's pod CIDR and other nodes'
	// routes), run by the caller.
	Nodes *live.Projection
	// JetStream holds the cluster's image store, which pods' images are imported from.
	JetStream jetstream.JetStream
	// Runtime runs the pods; *runtime.Runtime is one.
	Runtime Runtime
	// Network builds the pod network once the control plane assigned the node's pod CIDR.
	Network func(ctx context.Context, podCIDR netip.Prefix) (Network, error)
	// Backoff of crash-looping containers; DefaultBackoff if zero.
	Backoff Backoff
	// ImageRetry is how often a pod waiting for a missing image looks again; default 10 s.
	ImageRetry time.Duration
	// Resync is how often every worker looks at its pod again without being told; default 30 s.
	Resync time.Duration
	// Clock stamps events and times back-offs, retries and resyncs; default the real clock.
	Clock  Clock
	Logger *slog.Logger
	// Metrics records what the workers do; default instruments registered nowhere.
	Metrics *Metrics
	// Tracer traces each pod's start and stop (a child of its PodBound's or PodStopRequested's
	// span); nil traces nothing.
	Tracer trace.Tracer
	// Allocatable is the node's capacity for pods: "cpu" in millicores, "memory" and
	// "ephemeral-storage" in bytes. A container's environment takes a limit it does not set
	// from here (resourceFieldRef), as the kubelet does.
	Allocatable map[string]int64
}

// Clock is the agent's time. clock.RealClock is the real one; tests step a fake one
// (k8s.io/utils/clock/testing) through back-offs and retries instead of waiting them out.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) clock.Timer
	NewTicker(d time.Duration) clock.Ticker
}

// Runtime is containerd as the agent uses it; *runtime.Runtime is one. Workers use the pod and
// image parts (worker.go); reconcile lists what is there, and Run watches for exits.
type Runtime interface {
	podRuntime
	imageRuntime
	// List returns every sandbox and container of the runtime's namespace, sandboxes first.
	List(ctx context.Context) ([]runtime.ContainerStatus, error)
	// Watch streams task exits until ctx ends; an EventResync says exits may have been lost.
	Watch(ctx context.Context) <-chan runtime.Event
}

// Network is the pod network as the agent uses it; *podnet.Network is one.
type Network interface {
	podNetwork
	// Allocations lists the pod IPs held, for reconcile to release those of pods gone.
	Allocations(ctx context.Context) ([]podnet.Allocation, error)
	SyncRoutes(ctx context.Context, routes map[netip.Prefix]netip.Addr) error
}

// imageBucket is the cluster's image store in JetStream's object store.
type imageBucket struct{ obs jetstream.ObjectStore }

func (b imageBucket) Get(ctx context.Context, image string) (io.ReadCloser, error) {
	return images.Get(ctx, b.obs, image)
}

func (b imageBucket) Digest(ctx context.Context, image string) (string, error) {
	return images.Digest(ctx, b.obs, image)
}

// Agent runs one node's pods.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	actor string

	mu      sync.Mutex
	view    *work.View
	workers map[string]*worker // by pod UID
	dirty   map[work.Key]bool  // pods whose work changed since the last sync
	// stopped holds pods whose worker reported PodTerminated before the view shows it, so no
	// second worker is started for them in between.
	stopped map[string]bool
	written map[string]uint64 // last sequence this agent wrote per subject
	net     Network
	// env is what every worker works with; set once the pod network exists, before any
	// worker starts.
	env *workerEnv

	changed chan struct{}
	synced  chan struct{}
	ready   chan struct{} // closed once reconciled and running workers
}

// New returns an agent; Run starts it.
func New(cfg Config) *Agent {
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.ImageRetry == 0 {
		cfg.ImageRetry = 10 * time.Second
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}
	return &Agent{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.Node),
		actor:   "node/" + cfg.Node,
		view:    work.New(cfg.Node),
		workers: map[string]*worker{},
		dirty:   map[work.Key]bool{},
		stopped: map[string]bool{},
		written: map[string]uint64{},
		changed: make(chan struct{}, 1),
		synced:  make(chan struct{}),
		ready:   make(chan struct{}),
	}
}

// Ready is closed once the agent has caught up, reconciled containerd and started its workers.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run runs the agent until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	// The follower and the workers end with ctx, so it is cancelled before they are waited for
	// (defers run last first): an error returned before the loop must not wait for the caller
	// to end ctx.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	exits := a.cfg.Runtime.Watch(ctx)
	followErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := a.cfg.Log.Follow(ctx, store.FollowOptions{
			Filters: []string{events.NodeWorkFilter(a.cfg.Node)},
			OnPoison: func(subject string, seq uint64, err error) {
				a.log.Warn("skipping event that does not decode", "subject", subject, "seq", seq, "err", err)
				a.mu.Lock()
				a.view.Skip(subject, seq)
				a.mu.Unlock()
			},
			CaughtUp: func(uint64) { close(a.synced) },
		}, a.apply)
		if ctx.Err() == nil {
			followErr <- fmt.Errorf("follow node work: %w", err)
			cancel()
		}
	}()

	if err := a.waitSynced(ctx); err != nil {
		return err
	}
	cidr, err := a.podCIDR(ctx)
	if err != nil {
		return err
	}
	net, err := a.cfg.Network(ctx, cidr)
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	env := &workerEnv{
		runtime: a.cfg.Runtime, images: a.cfg.Runtime, net: net, status: a, clock: a.cfg.Clock,
		backoff: a.cfg.Backoff, imageRetry: a.cfg.ImageRetry, imports: &singleflight.Group{}, metrics: a.cfg.Metrics,
		tracer: a.cfg.Tracer, allocatable: a.cfg.Allocatable, hostIP: a.cfg.Address,
	}
	if obs, err := images.OpenBucket(ctx, a.cfg.JetStream); err != nil {
		a.log.Warn("image store unavailable; only images already on the node can run", "err", err)
	} else {
		env.store = imageBucket{obs}
	}
	a.mu.Lock()
	a.net = net
	a.env = env
	a.mu.Unlock()
	if err := a.reconcile(ctx); err != nil {
		return fmt.Errorf("reconcile containerd against the log: %w", err)
	}
	a.sync(ctx, &wg)
	close(a.ready)
	a.log.Info("node agent ready", "podCIDR", cidr)

	routes := a.cfg.Nodes.Changed()
	a.syncRoutes(ctx)
	// Exits can be missed around a containerd restart; every worker looks at its containers
	// again now and then, as the kubelet's periodic resync does.
	resync := a.cfg.Clock.NewTicker(a.cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			select {
			case err := <-followErr:
				return err
			default:
				return nil
			}
		case <-a.changed:
			a.sync(ctx, &wg)
		case ev, ok := <-exits:
			if !ok {
				continue
			}
			a.containerEvent(ev)
		case <-routes:
			routes = a.cfg.Nodes.Changed()
			a.syncRoutes(ctx)
		case <-resync.C():
			a.mu.Lock()
			for _, w := range a.workers {
				w.poke()
			}
			a.mu.Unlock()
		}
	}
}

func (a *Agent) waitSynced(ctx context.Context) error {
	select {
	case <-a.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// podCIDR waits until the control plane assigned this node's pod CIDR.
func (a *Agent) podCIDR(ctx context.Context) (netip.Prefix, error) {
	logged := false
	for {
		ch := a.cfg.Nodes.Changed()
		var cidr string
		a.cfg.Nodes.View(func(st *state.State) {
			if n := st.Nodes[a.cfg.Node]; n != nil {
				cidr = n.Spec.PodCIDR
			}
		})
		if cidr != "" {
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				return netip.Prefix{}, fmt.Errorf("pod CIDR %q of node %s: %w", cidr, a.cfg.Node, err)
			}
			return p, nil
		}
		if !logged {
			a.log.Info("waiting for the control plane to assign this node's pod CIDR")
			logged = true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return netip.Prefix{}, ctx.Err()
		}
	}
}

// apply folds one event of this node's work and wakes the sync loop.
func (a *Agent) apply(ev *events.Event) {
	a.mu.Lock()
	err := a.view.Apply(ev)
	// Only the bind subject says what a pod should be; the status subject is this node's own
	// reports, which its workers already know.
	if sub, perr := events.ParseSubject(ev.Subject); perr == nil && sub.Kind == events.KindBind {
		a.dirty[work.Key{Namespace: sub.Namespace, Name: sub.Name}] = true
	}
	a.mu.Unlock()
	if err != nil {
		a.log.Warn("event does not apply", "seq", ev.Seq, "subject", ev.Subject, "err", err)
	}
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// sync starts a worker for every live pod without one and hands the workers of pods whose work
// changed their pod's latest desired state. Only those: a status report of one pod is an event
// too, and waking every worker for it would make each of N pods starting together sync N times.
func (a *Agent) sync(ctx context.Context, wg *sync.WaitGroup) {
	if ctx.Err() != nil {
		// Stopping: the workers are ending, and a new one for a pod whose worker just ended
		// would start a pass against containerd on the way out.
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, p := range a.view.Pods {
		if p.Terminated {
			delete(a.stopped, p.UID())
			continue
		}
		if a.stopped[p.UID()] {
			continue
		}
		if !a.dirty[key] && a.workers[p.UID()] != nil {
			continue
		}
		w := a.workers[p.UID()]
		if w == nil {
			w = newWorker(a.env, a.log, p)
			a.workers[p.UID()] = w
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := w.run(ctx)
				a.mu.Lock()
				delete(a.workers, w.uid)
				if done {
					a.stopped[w.uid] = true
				}
				a.mu.Unlock()
			}()
		}
		w.update(*p)
	}
	clear(a.dirty)
}

// containerEvent wakes the worker of the pod a container event is about.
func (a *Agent) containerEvent(ev runtime.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ev.Type == runtime.EventResync {
		// Exits during containerd's absence were lost: every worker looks again.
		for _, w := range a.workers {
			w.poke()
		}
		return
	}
	if w := a.workers[ev.Pod.UID]; w != nil {
		w.poke()
	}
}

// syncRoutes routes other nodes' pod CIDRs to their addresses.
func (a *Agent) syncRoutes(ctx context.Context) {
	routes := map[netip.Prefix]netip.Addr{}
	a.cfg.Nodes.View(func(st *state.State) {
		for name, n := range st.Nodes {
			if name == a.cfg.Node || n.Spec.PodCIDR == "" || n.Address() == "" {
				continue
			}
			p, err1 := netip.ParsePrefix(n.Spec.PodCIDR)
			addr, err2 := netip.ParseAddr(n.Address())
			if err1 != nil || err2 != nil {
				continue
			}
			routes[p] = addr
		}
	})
	if err := a.net.SyncRoutes(ctx, routes); err != nil {
		a.log.Warn("sync routes to other nodes' pods", "err", err)
	}
}

// reconcile makes containerd match the log before any worker starts: containers and sandboxes of
// pods no longer bound here are removed and their IPs released; those of live pods stay for their
// workers to adopt.
func (a *Agent) reconcile(ctx context.Context) error {
	live := map[string]bool{}
	a.mu.Lock()
	for _, p := range a.view.Pods {
		if !p.Terminated {
			live[p.UID()] = true
		}
	}
	a.mu.Unlock()
	all, err := a.cfg.Runtime.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	gone := map[string]runtime.PodRef{}
	for _, c := range all {
		if live[c.Pod.UID] {
			continue
		}
		gone[c.Pod.UID] = c.Pod
		if c.Kind == runtime.KindContainer {
			if _, err := a.cfg.Runtime.StopContainer(ctx, c.ID, 0); err != nil && !isNotFound(err) {
				errs = append(errs, err)
			}
			if err := a.cfg.Runtime.RemoveContainer(ctx, c.ID); err != nil && !isNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	for uid, ref := range gone {
		a.log.Info("removing what is left of a pod no longer bound here", "pod", ref.Namespace+"/"+ref.Name, "uid", uid)
		netns := ""
		if sb, err := a.cfg.Runtime.GetSandbox(ctx, uid); err == nil && sb.State == runtime.StateRunning {
			netns = sb.NetNSPath()
		}
		if err := a.net.Teardown(ctx, uid, netns); err != nil {
			errs = append(errs, err)
		}
		if err := a.cfg.Runtime.RemoveSandbox(ctx, ref); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	allocs, err := a.net.Allocations(ctx)
	if err != nil {
		return err
	}
	for _, al := range allocs {
		if !live[al.PodID] {
			a.log.Info("releasing the IP of a pod no longer bound here", "ip", al.IP, "uid", al.PodID)
			if err := a.net.Teardown(ctx, al.PodID, ""); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
