package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"skiff.dev/events"
	"skiff.dev/events/images"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/work"
)

func isNotFound(err error) bool { return errdefs.IsNotFound(err) }

// podRuntime is what a worker does with its pod's sandbox and containers; *runtime.Runtime is
// one. The errors are runtime's: errdefs classes (NotFound, AlreadyExists, FailedPrecondition)
// that the worker tells apart.
type podRuntime interface {
	CreateSandbox(ctx context.Context, cfg runtime.PodSandboxConfig) (runtime.Sandbox, error)
	GetSandbox(ctx context.Context, podUID string) (runtime.Sandbox, error)
	RemoveSandbox(ctx context.Context, pod runtime.PodRef) error
	CreateContainer(ctx context.Context, cfg runtime.ContainerConfig) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, grace time.Duration) (runtime.ContainerStatus, error)
	RemoveContainer(ctx context.Context, id string) error
	ContainerStatus(ctx context.Context, id string) (runtime.ContainerStatus, error)
}

// imageRuntime is the node's own image store, where a worker brings the images its containers
// run; *runtime.Runtime is one.
type imageRuntime interface {
	HasImage(ctx context.Context, name string) (bool, error)
	ImportImage(ctx context.Context, tarball io.Reader) ([]string, error)
	PullImage(ctx context.Context, ref string) error
	ImageLabel(ctx context.Context, name, key string) (string, error)
	SetImageLabel(ctx context.Context, name, key, value string) error
}

// imageStore is the cluster's image store, where `skiff image import` puts tarballs. Get and
// Digest (the tarball's, as the store computed it) fail with events.ErrNotFound when no tarball
// holds the image.
type imageStore interface {
	Get(ctx context.Context, image string) (io.ReadCloser, error)
	Digest(ctx context.Context, image string) (string, error)
}

// labelStoreDigest is the image label that records the digest of the image store's tarball an
// image was imported from, for imagePullPolicy Always.
const labelStoreDigest = "skiff.dev/store-digest"

// podNetwork gives a pod's sandbox its IP and takes it back; *podnet.Network is one.
type podNetwork interface {
	Setup(ctx context.Context, podID, netnsPath string) (netip.Addr, error)
	Teardown(ctx context.Context, podID, netnsPath string) error
}

// statusWriter appends what a worker reports about its pod (PodStatusReported, PodTerminated)
// to this node's status subject; the agent is one (report.go).
type statusWriter interface {
	append(ctx context.Context, key work.Key, p events.Payload) error
}

// workerEnv is what every worker works with, shared by all of them.
type workerEnv struct {
	runtime podRuntime
	images  imageRuntime
	// store is nil when the cluster's image store is unavailable: images come from registries
	// then.
	store      imageStore
	net        podNetwork
	status     statusWriter
	clock      Clock
	backoff    Backoff
	imageRetry time.Duration
	metrics    *Metrics
	// imports makes workers that want the same missing image share one fetch.
	imports *singleflight.Group
	// tracer traces pod work; nil traces nothing.
	tracer trace.Tracer
	// allocatable is the node's capacity (Config.Allocatable); hostIP its address.
	allocatable map[string]int64
	hostIP      string
}

// worker owns one pod: it alone creates, restarts, stops and removes the pod's sandbox and
// containers, and reports the pod's status.
type worker struct {
	env *workerEnv
	uid string
	key work.Key
	log *slog.Logger

	// traced is the cause whose work was traced: one span per PodBound or PodStopRequested,
	// not one per resync.
	traced string

	mu      sync.Mutex
	desired work.Pod // latest; replaced whole by update
	wake    chan struct{}

	// Owned by run's goroutine.
	podIP    string
	netFor   runtime.Sandbox // the sandbox the pod network was last set up in
	started  *time.Time
	loops    map[string]*crashLoop
	last     map[string]*events.ContainerStateTerminated
	restarts map[string]int
	final    map[string]bool
	reported *events.PodStatus
	// seen is when this agent first saw the pod's binding, until its Running report is timed.
	seen time.Time
}

func newWorker(env *workerEnv, log *slog.Logger, p *work.Pod) *worker {
	w := &worker{
		env: env,
		uid: p.UID(),
		key: work.Key{Namespace: p.Pod.Metadata.Namespace, Name: p.Pod.Metadata.Name},
		// The pod it is made for, not the zero one: run's first pass may come before the
		// update that hands it the pod, and would sync a pod without containers (a sandbox
		// for nothing, and a Pending status without container statuses).
		desired:  *p,
		wake:     make(chan struct{}, 1),
		loops:    map[string]*crashLoop{},
		last:     map[string]*events.ContainerStateTerminated{},
		restarts: map[string]int{},
		final:    map[string]bool{},
		reported: p.Reported,
	}
	w.log = log.With("pod", w.key.String(), "uid", w.uid)
	if p.Reported == nil {
		w.seen = env.clock.Now()
	}
	env.metrics.reported(nil, p.Reported, &w.seen, time.Time{})
	// Resume from what this node last reported: restart counts and how runs ended survive an
	// agent restart.
	if p.Reported != nil {
		w.podIP = p.Reported.PodIP
		w.started = p.Reported.StartTime
		for _, c := range p.Reported.ContainerStatuses {
			w.restarts[c.Name] = int(c.RestartCount)
			w.last[c.Name] = c.LastTerminationState.Terminated
		}
	}
	return w
}

// update hands the worker its pod's latest desired state.
func (w *worker) update(p work.Pod) {
	w.mu.Lock()
	w.desired = p
	w.mu.Unlock()
	w.poke()
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) pod() work.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired
}

// run syncs the pod until it has been stopped and released (and returns true), or ctx ends.
func (w *worker) run(ctx context.Context) bool {
	timer := w.env.clock.NewTimer(time.Hour)
	defer timer.Stop()
	wakeIn := func(d time.Duration) {
		// Drained first: a fake clock's timer, unlike time.Timer since Go 1.23, keeps a firing
		// nobody received, and would fire twice (or block the clock) after Reset.
		if !timer.Stop() {
			select {
			case <-timer.C():
			default:
			}
		}
		timer.Reset(d)
	}
	for {
		p := w.pod()
		sctx, span := w.trace(ctx, p)
		if p.StopRequested {
			if err := w.stop(sctx, p); err != nil {
				w.log.ErrorContext(sctx, "stop pod", "err", err)
				wakeIn(time.Second)
			} else {
				span.End()
				return true
			}
		} else if next, err := w.sync(sctx, p); err != nil {
			w.log.WarnContext(sctx, "sync pod", "err", err)
			wakeIn(time.Second)
		} else if !next.IsZero() {
			wakeIn(max(next.Sub(w.env.clock.Now()), 10*time.Millisecond))
		}
		span.End()
		select {
		case <-ctx.Done():
			return false
		case <-w.wake:
		case <-timer.C():
		}
	}
}

// sync makes the pod's sandbox, network and containers match its spec, reports its status, and
// returns when it wants to look again (a back-off ending), zero for "when something happens".
func (w *worker) sync(ctx context.Context, p work.Pod) (time.Time, error) {
	rt := w.env.runtime
	ref := runtime.PodRef{UID: w.uid, Name: w.key.Name, Namespace: w.key.Namespace}
	spec := &p.Pod.Spec
	now := w.env.clock.Now()
	var next time.Time
	wakeAt := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}

	sb, err := rt.GetSandbox(ctx, w.uid)
	switch {
	case isNotFound(err):
		sctx, span := w.child(ctx, "create sandbox")
		sb, err = rt.CreateSandbox(sctx, runtime.PodSandboxConfig{Pod: ref, Hostname: spec.Hostname})
		endSpan(span, err)
		if err != nil {
			return next, w.report(ctx, w.waitingAll(spec, ReasonContainerCreating, "create sandbox: "+err.Error()), fmt.Errorf("create sandbox: %w", err))
		}
	case err != nil:
		return next, fmt.Errorf("sandbox: %w", err)
	case sb.State != runtime.StateRunning:
		// The sandbox died (its namespaces with it): start over with a new one, as the kubelet
		// does, restarting every container in it.
		w.log.Warn("sandbox is not running; recreating the pod's sandbox", "state", sb.State)
		if err := w.removeAll(ctx, p, 0); err != nil {
			return next, err
		}
		if sb, err = rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: ref, Hostname: spec.Hostname}); err != nil {
			return next, fmt.Errorf("recreate sandbox: %w", err)
		}
	}
	// The network needs setting up once per sandbox: checking it again on every pass costs a
	// netns entry and host-local's files per pod each time anything about the pod changes.
	if w.podIP == "" || w.netFor.ID != sb.ID || w.netFor.PID != sb.PID {
		nctx, span := w.child(ctx, "set up network")
		ip, err := w.env.net.Setup(nctx, w.uid, sb.NetNSPath())
		if err == nil {
			span.SetAttributes(attribute.String("k8s.pod.ip", ip.String()))
		}
		endSpan(span, err)
		if err != nil {
			return next, w.report(ctx, w.waitingAll(spec, ReasonNetworkNotReady, err.Error()), fmt.Errorf("pod network: %w", err))
		}
		w.podIP, w.netFor = ip.String(), sb
	}
	if w.started == nil {
		w.started = utc(now)
	}

	// Init containers first, one at a time, each to success: the next starts only once the one
	// before exited 0. A failed one is restarted (with back-off) unless the pod's restartPolicy
	// is Never, which fails the pod; one that succeeded is done for the sandbox's life.
	initPolicy := events.RestartOnFailure
	if spec.RestartPolicy == events.RestartNever {
		initPolicy = events.RestartNever
	}
	var inits []observed
	initialized := true
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		var o observed
		if initialized {
			var at time.Time
			o, at = w.syncContainer(ctx, p, ref, c, initPolicy, now)
			if !at.IsZero() {
				wakeAt(at)
			}
			initialized = o.run != nil && o.run.State == runtime.StateExited && o.run.ExitCode == 0 && o.final
		} else {
			o = observed{name: c.Name, image: c.Image, waiting: ReasonPodInitializing}
		}
		inits = append(inits, o)
	}
	obs := make([]observed, 0, len(spec.Containers))
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if !initialized {
			obs = append(obs, observed{name: c.Name, image: c.Image, waiting: ReasonPodInitializing})
			continue
		}
		o, at := w.syncContainer(ctx, p, ref, c, spec.RestartPolicy, now)
		if !at.IsZero() {
			wakeAt(at)
		}
		obs = append(obs, o)
	}
	return next, w.report(ctx, podStatusWithInit(inits, obs, w.podIP, "", w.started), nil)
}

// syncContainer brings one container to where the spec and restart policy want it.
func (w *worker) syncContainer(ctx context.Context, p work.Pod, ref runtime.PodRef, c *events.Container, policy string, now time.Time) (observed, time.Time) {
	rt := w.env.runtime
	o := observed{name: c.Name, image: c.Image, restarts: w.restarts[c.Name], last: w.last[c.Name]}
	id := runtime.ContainerID(w.uid, c.Name)
	st, err := rt.ContainerStatus(ctx, id)
	if err != nil && !isNotFound(err) {
		o.waiting, o.message = ReasonCreateError, err.Error()
		return o, now.Add(time.Second)
	}
	if err == nil {
		o.run = &st
		o.restarts = st.RestartCount
		w.restarts[c.Name] = st.RestartCount
		switch st.State {
		case runtime.StateRunning:
			return o, time.Time{}
		case runtime.StateCreated:
			if err := rt.StartContainer(ctx, id); err != nil {
				o.waiting, o.message = ReasonCreateError, err.Error()
				return o, now.Add(time.Second)
			}
			st, _ = rt.ContainerStatus(ctx, id)
			o.run = &st
			return o, time.Time{}
		}
		// Exited (or unknown: its shim is gone, which we treat as exited).
		if w.final[c.Name] || !restartable(policy, st.ExitCode) {
			w.final[c.Name] = true
			o.final = true
			return o, time.Time{}
		}
		loop := w.loops[c.Name]
		if loop == nil {
			loop = &crashLoop{}
			w.loops[c.Name] = loop
		}
		if loop.until.IsZero() || loop.finished != st.FinishedAt {
			loop.finished = st.FinishedAt
			w.env.backoff.exited(loop, st.StartedAt, st.FinishedAt)
		}
		if now.Before(loop.until) {
			o.waiting = ReasonCrashLoopBackOff
			o.message = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				loop.delay, c.Name, ref.Name, ref.Namespace, ref.UID)
			o.last = terminated(&st)
			return o, loop.until
		}
		// Restart: a new container of the same name, restart count + 1.
		w.last[c.Name] = terminated(&st)
		o.last = w.last[c.Name]
		if err := rt.RemoveContainer(ctx, id); err != nil && !isNotFound(err) {
			o.waiting, o.message = ReasonCreateError, err.Error()
			return o, now.Add(time.Second)
		}
		o.restarts = st.RestartCount + 1
		w.restarts[c.Name] = o.restarts
		w.env.metrics.ContainerRestarts.Inc()
		o.run = nil
	}
	// Create and start.
	image := images.Normalize(c.Image)
	pull := c.ImagePullPolicy
	if pull == "" {
		pull = images.DefaultPullPolicy(c.Image)
	}
	ictx, span := w.child(ctx, "ensure image", attribute.String("container.image.name", image))
	err = w.ensureImage(ictx, image, pull)
	endSpan(span, err)
	if err != nil {
		o.waiting, o.message = ReasonErrImageNotFound, err.Error()
		if errors.Is(err, errNeverPull) {
			o.waiting = ReasonErrImageNeverPull
		}
		return o, now.Add(w.env.imageRetry)
	}
	cfg, err := containerConfig(ref, c, image, o.restarts, downward{pod: &p.Pod, podIP: w.podIP, hostIP: w.env.hostIP, alloc: w.env.allocatable})
	if err == nil {
		cctx, span := w.child(ctx, "create container", attribute.String("k8s.container.name", c.Name))
		_, err = rt.CreateContainer(cctx, cfg)
		if errdefs.IsAlreadyExists(err) {
			err = nil
		}
		endSpan(span, err)
	}
	if err == nil {
		cctx, span := w.child(ctx, "start container", attribute.String("k8s.container.name", c.Name))
		err = rt.StartContainer(cctx, id)
		endSpan(span, err)
	}
	if err != nil {
		o.waiting, o.message = ReasonCreateError, err.Error()
		return o, now.Add(time.Second)
	}
	if st, err := rt.ContainerStatus(ctx, id); err == nil {
		o.run = &st
	}
	return o, time.Time{}
}

// ensureImage makes image present in containerd: already there, fetched from the cluster's
// image store and imported, or, when the store does not have it (or cannot be reached), pulled
// from its registry. A failed pull is reported together with how to import the image instead,
// since an image that never was in any registry (skiff.dev/...) must be imported.
//
// Workers wanting the same image share one fetch: thirty pods of a Deployment arriving on a
// node without its image would otherwise import it thirty times at once, and containerd's
// content store turns all but one away ("ref … locked"), so the pods waited ImageRetry after
// ImageRetry.
//
// The pull policy decides when to fetch (Kubernetes' meanings): IfNotPresent only when the node
// lacks the image; Never never (errNeverPull when it lacks it); Always at every container start:
// the name is looked up again, in the image store by its tarball's digest (imported again only
// when the tarball changed since this node imported it), else in its registry (a pull, which
// resolves the name again and fetches only layers the node lacks).
func (w *worker) ensureImage(ctx context.Context, image, policy string) error {
	switch policy {
	case events.PullAlways:
		_, err, _ := w.env.imports.Do("always "+image, func() (any, error) { return nil, w.refreshImage(ctx, image) })
		return err
	case events.PullNever:
		ok, err := w.env.images.HasImage(ctx, image)
		if err == nil && !ok {
			err = fmt.Errorf("container image %q is not present with pull policy of Never: %w", image, errNeverPull)
		}
		return err
	}
	ok, err := w.env.images.HasImage(ctx, image)
	if err != nil || ok {
		return err
	}
	_, err, _ = w.env.imports.Do(image, func() (any, error) {
		if ok, err := w.env.images.HasImage(ctx, image); err != nil || ok {
			return nil, err // another fetch just finished
		}
		return nil, w.fetchImage(ctx, image)
	})
	return err
}

// errNeverPull is a missing image whose pull policy is Never.
var errNeverPull = errors.New("ErrImageNeverPull")

// refreshImage resolves image again for pull policy Always: the image store's tarball when it
// has one (imported unless the node's copy came from the same tarball), else its registry.
func (w *worker) refreshImage(ctx context.Context, image string) error {
	if w.env.store != nil {
		digest, err := w.env.store.Digest(ctx, image)
		switch {
		case err == nil:
			if have, _ := w.env.images.ImageLabel(ctx, image, labelStoreDigest); have == digest {
				return nil
			}
			if err := w.fetchImage(ctx, image); err != nil {
				return err
			}
			return w.env.images.SetImageLabel(ctx, image, labelStoreDigest, digest)
		case !errors.Is(err, events.ErrNotFound):
			return fmt.Errorf("image %s has pull policy Always, and the cluster's image store could not be asked for it: %w", image, err)
		}
	}
	return w.pullImage(ctx, image, "has pull policy Always and is not in the cluster's image store")
}

// pullImage pulls image from its registry, within pullTimeout; why says, in a failure, why the
// registry was asked.
func (w *worker) pullImage(ctx context.Context, image, why string) error {
	start := w.env.clock.Now()
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	if err := w.env.images.PullImage(pctx, image); err != nil {
		return fmt.Errorf("image %s %s, and pulling it from its registry failed: %w", image, why, err)
	}
	w.env.metrics.ImageFromRegistry.Observe(w.env.clock.Now().Sub(start).Seconds())
	return nil
}

// pullTimeout bounds one pull attempt; the worker tries again after ImageRetry.
const pullTimeout = 60 * time.Second

// fetchImage brings image into containerd from the cluster's image store or its registry.
func (w *worker) fetchImage(ctx context.Context, image string) error {
	start := w.env.clock.Now()
	rt := w.env.images
	var err error
	var notInStore string
	var r io.ReadCloser
	if w.env.store == nil {
		notInStore = "the cluster's image store is unavailable, so it cannot be imported from there (skiff image import FILE.tar)"
	} else if r, err = w.env.store.Get(ctx, image); errors.Is(err, events.ErrNotFound) {
		notInStore = "it was never imported into the cluster (skiff image import FILE.tar)"
	} else if err != nil {
		if ctx.Err() != nil {
			return err
		}
		notInStore = fmt.Sprintf("the cluster's image store could not be read (%v)", err)
	}
	if notInStore != "" {
		w.log.Info("image not in the cluster's image store; pulling it from its registry", "image", image)
		return w.pullImage(ctx, image, "is not on this node: "+notInStore)
	}
	defer r.Close()
	w.log.Info("importing image from the cluster's image store", "image", image)
	if _, err := rt.ImportImage(ctx, r); err != nil {
		_, _ = io.Copy(io.Discard, r)
		return fmt.Errorf("import image %s: %w", image, err)
	}
	if ok, err := rt.HasImage(ctx, image); err != nil || !ok {
		return fmt.Errorf("image store's tarball for %s did not contain it", image)
	}
	w.env.metrics.ImageFromStore.Observe(w.env.clock.Now().Sub(start).Seconds())
	return nil
}

// downward is what a container's environment may take from its pod (the downward API).
type downward struct {
	pod           *events.Pod
	podIP, hostIP string
	alloc         map[string]int64
}

// containerConfig maps a Kubernetes container onto the runtime's config.
func containerConfig(ref runtime.PodRef, c *events.Container, image string, restarts int, dw downward) (runtime.ContainerConfig, error) {
	cfg := runtime.ContainerConfig{
		Pod: ref, Name: c.Name, Image: image, Command: c.Command, Args: c.Args,
		WorkingDir: c.WorkingDir, RestartCount: restarts,
	}
	if dw.pod != nil {
		cfg.Hostname = dw.pod.Spec.Hostname
	}
	for _, e := range c.Env {
		v, err := envValue(c, &e, dw)
		if err != nil {
			return cfg, fmt.Errorf("env %s: %w", e.Name, err)
		}
		cfg.Env = append(cfg.Env, e.Name+"="+v)
	}
	var err error
	if q := c.Resources.Limits["cpu"]; q != "" {
		if cfg.CPULimitMillis, err = events.ParseCPU(q); err != nil {
			return cfg, err
		}
	}
	if q := c.Resources.Requests["cpu"]; q != "" {
		if cfg.CPURequestMillis, err = events.ParseCPU(q); err != nil {
			return cfg, err
		}
	}
	if q := c.Resources.Limits["memory"]; q != "" {
		if cfg.MemoryLimitBytes, err = events.ParseMemory(q); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// envValue is an environment variable's value: literal, or from the pod's fields or a
// container's resources.
func envValue(c *events.Container, e *events.EnvVar, dw downward) (string, error) {
	src := e.ValueFrom
	switch {
	case src == nil:
		return e.Value, nil
	case src.FieldRef != nil:
		return events.FieldValue(dw.pod, src.FieldRef.FieldPath, dw.podIP, dw.hostIP)
	case src.ResourceFieldRef != nil:
		r := src.ResourceFieldRef
		target := c
		if r.ContainerName != "" && dw.pod != nil {
			for i := range dw.pod.Spec.Containers {
				if dw.pod.Spec.Containers[i].Name == r.ContainerName {
					target = &dw.pod.Spec.Containers[i]
				}
			}
		}
		return events.ResourceValue(target, r.Resource, r.Divisor, dw.alloc)
	}
	return "", errors.New("valueFrom names no source")
}

// waitingAll is the status of a pod none of whose containers could start.
func (w *worker) waitingAll(spec *events.PodSpec, reason, message string) events.PodStatus {
	waiting := func(cs []events.Container) []observed {
		obs := make([]observed, 0, len(cs))
		for _, c := range cs {
			obs = append(obs, observed{name: c.Name, image: c.Image, waiting: reason, message: message, restarts: w.restarts[c.Name], last: w.last[c.Name]})
		}
		return obs
	}
	var inits []observed
	if len(spec.InitContainers) > 0 {
		inits = waiting(spec.InitContainers)
	}
	return podStatusWithInit(inits, waiting(spec.Containers), w.podIP, "", w.started)
}

// report appends the pod's status if it changed, and returns cause (so callers can report and
// fail in one line).
func (w *worker) report(ctx context.Context, st events.PodStatus, cause error) error {
	if w.reported != nil && reflect.DeepEqual(*w.reported, st) {
		return cause
	}
	if err := w.env.status.append(ctx, w.key, &events.PodStatusReported{UID: w.uid, Status: st}); err != nil {
		return errors.Join(cause, fmt.Errorf("report status: %w", err))
	}
	w.env.metrics.reported(w.reported, &st, &w.seen, w.env.clock.Now())
	w.reported = &st
	return cause
}

// stop stops the pod within its grace period, releases everything it held and reports
// PodTerminated.
func (w *worker) stop(ctx context.Context, p work.Pod) error {
	grace := time.Duration(p.GracePeriodSeconds) * time.Second
	w.log.Info("stopping pod", "grace", grace)
	if err := w.removeAll(ctx, p, grace); err != nil {
		return err
	}
	ref := runtime.PodRef{UID: w.uid, Name: w.key.Name, Namespace: w.key.Namespace}
	if err := w.env.runtime.RemoveSandbox(ctx, ref); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove sandbox: %w", err)
	}
	if err := w.env.status.append(ctx, w.key, &events.PodTerminated{UID: w.uid}); err != nil {
		return err
	}
	w.env.metrics.reported(w.reported, nil, &w.seen, time.Time{})
	w.reported = nil
	return nil
}

// removeAll stops every container of the pod (in parallel, each with grace), removes them, and
// releases the pod's IP. The sandbox stays.
func (w *worker) removeAll(ctx context.Context, p work.Pod, grace time.Duration) error {
	rt := w.env.runtime
	var wg sync.WaitGroup
	all := slices.Concat(p.Pod.Spec.InitContainers, p.Pod.Spec.Containers)
	errs := make([]error, len(all))
	for i, c := range all {
		id := runtime.ContainerID(w.uid, c.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := rt.StopContainer(ctx, id, grace); err != nil && !isNotFound(err) {
				errs[i] = fmt.Errorf("stop container %s: %w", c.Name, err)
				return
			}
			if err := rt.RemoveContainer(ctx, id); err != nil && !isNotFound(err) {
				errs[i] = fmt.Errorf("remove container %s: %w", c.Name, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	netns := ""
	if sb, err := rt.GetSandbox(ctx, w.uid); err == nil && sb.State == runtime.StateRunning {
		netns = sb.NetNSPath()
	}
	if err := w.env.net.Teardown(ctx, w.uid, netns); err != nil {
		return fmt.Errorf("release pod network: %w", err)
	}
	w.podIP, w.netFor = "", runtime.Sandbox{}
	return nil
}
