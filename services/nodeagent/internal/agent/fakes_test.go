package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"skiff.dev/events"
	"skiff.dev/services/nodeagent/internal/podnet"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/work"
)

// Fakes of what the agent depends on. They keep state as the real ones do (containerd's
// containers and their tasks, host-local's allocations), follow the real ones' documented
// errors, and record what they were asked in one shared call log, so tests can check what
// happened and in which order across the runtime and the network.

var (
	_ Runtime      = (*fakeRuntime)(nil)
	_ Network      = (*fakeNetwork)(nil)
	_ statusWriter = (*statusRecorder)(nil)
	_ imageStore   = fakeImageStore(nil)
)

// callLog is the calls made to the fakes, in order, such as "CreateSandbox pod-a" or
// "StopContainer pod-a/app grace=30s".
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf(format, args...))
}

// since returns the calls from the n-th on.
func (l *callLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls[min(n, len(l.calls)):])
}

func (l *callLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// count is how many calls start with prefix.
func (l *callLog) count(prefix string) int {
	n := 0
	for _, c := range l.since(0) {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// failures are errors the fakes return on the next calls of a method, one per call.
type failures struct {
	mu   sync.Mutex
	next map[string][]error
}

// fail makes the next times calls of method fail with err.
func (f *failures) fail(method string, times int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = map[string][]error{}
	}
	for range times {
		f.next[method] = append(f.next[method], err)
	}
}

// take returns the error a call of method fails with: ctx's, as containerd's or CNI's client
// would, or one it was told to.
func (f *failures) take(ctx context.Context, method string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := f.next[method]
	if len(errs) == 0 {
		return nil
	}
	f.next[method] = errs[1:]
	return errs[0]
}

// fakeRuntime is containerd as the agent sees it: sandboxes and containers with their states,
// and the images on the node. A pod's sandbox and containers carry the IDs the real runtime
// gives them. Exits are sent to every Watch channel.
type fakeRuntime struct {
	failures
	clock Clock
	calls *callLog

	mu         sync.Mutex
	sandboxes  map[string]*runtime.Sandbox // by pod UID
	containers map[string]*fakeContainer   // by ID
	names      map[string]string           // ID → "pod/container", for the call log
	reads      map[string]int              // ContainerStatus calls by ID
	images     map[string]bool
	labels     map[string]map[string]string // by image
	pid        uint32
	watchers   []chan runtime.Event
}

type fakeContainer struct {
	status runtime.ContainerStatus
	config runtime.ContainerConfig
}

func newFakeRuntime(clk Clock, calls *callLog) *fakeRuntime {
	return &fakeRuntime{
		clock: clk, calls: calls,
		sandboxes: map[string]*runtime.Sandbox{}, containers: map[string]*fakeContainer{},
		names: map[string]string{}, reads: map[string]int{}, images: map[string]bool{}, labels: map[string]map[string]string{}, pid: 1000,
	}
}

// name is how the call log names a container ID.
func (r *fakeRuntime) name(id string) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	return id
}

// learn teaches the call log the names of a pod's containers.
func (r *fakeRuntime) learn(p events.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range p.Spec.Containers {
		r.names[runtime.ContainerID(p.Metadata.UID, c.Name)] = p.Metadata.Name + "/" + c.Name
	}
}

func (r *fakeRuntime) nextPID() uint32 {
	r.pid++
	return r.pid
}

func (r *fakeRuntime) CreateSandbox(ctx context.Context, cfg runtime.PodSandboxConfig) (runtime.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("CreateSandbox %s", cfg.Pod.Name)
	if err := r.take(ctx, "CreateSandbox"); err != nil {
		return runtime.Sandbox{}, err
	}
	if old := r.sandboxes[cfg.Pod.UID]; old != nil {
		if old.State == runtime.StateRunning {
			return runtime.Sandbox{}, fmt.Errorf("create sandbox of pod %s: %w", cfg.Pod, errdefs.ErrAlreadyExists)
		}
		// As the real one: a sandbox that is not running is in the way of the new one under
		// the same ID, and goes first.
		delete(r.sandboxes, cfg.Pod.UID)
	}
	sb := &runtime.Sandbox{ID: runtime.SandboxID(cfg.Pod.UID), Pod: cfg.Pod, State: runtime.StateRunning,
		PID: r.nextPID(), CreatedAt: r.clock.Now()}
	r.sandboxes[cfg.Pod.UID] = sb
	return *sb, nil
}

func (r *fakeRuntime) GetSandbox(ctx context.Context, podUID string) (runtime.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.take(ctx, "GetSandbox"); err != nil {
		return runtime.Sandbox{}, err
	}
	sb := r.sandboxes[podUID]
	if sb == nil {
		return runtime.Sandbox{}, fmt.Errorf("get sandbox of pod uid %s: %w", podUID, errdefs.ErrNotFound)
	}
	return *sb, nil
}

func (r *fakeRuntime) RemoveSandbox(ctx context.Context, pod runtime.PodRef) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("RemoveSandbox %s", pod.Name)
	if err := r.take(ctx, "RemoveSandbox"); err != nil {
		return err
	}
	for id, c := range r.containers {
		if c.status.Pod.UID == pod.UID {
			delete(r.containers, id)
		}
	}
	delete(r.sandboxes, pod.UID)
	return nil
}

func (r *fakeRuntime) CreateContainer(ctx context.Context, cfg runtime.ContainerConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := runtime.ContainerID(cfg.Pod.UID, cfg.Name)
	r.names[id] = cfg.Pod.Name + "/" + cfg.Name
	r.calls.add("CreateContainer %s restart=%d", r.name(id), cfg.RestartCount)
	if err := r.take(ctx, "CreateContainer"); err != nil {
		return "", err
	}
	if r.containers[id] != nil {
		return "", fmt.Errorf("create container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	sb := r.sandboxes[cfg.Pod.UID]
	switch {
	case sb == nil:
		return "", fmt.Errorf("create container %s: the pod has no sandbox: %w", cfg.Name, errdefs.ErrNotFound)
	case sb.State != runtime.StateRunning:
		return "", fmt.Errorf("create container %s: the sandbox is %s: %w", cfg.Name, sb.State, errdefs.ErrFailedPrecondition)
	case !r.images[cfg.Image]:
		return "", fmt.Errorf("create container %s: image %s: %w", cfg.Name, cfg.Image, errdefs.ErrNotFound)
	}
	r.containers[id] = &fakeContainer{config: cfg, status: runtime.ContainerStatus{
		ID: id, Kind: runtime.KindContainer, Pod: cfg.Pod, Name: cfg.Name, Image: cfg.Image,
		RestartCount: cfg.RestartCount, State: runtime.StateCreated, CreatedAt: r.clock.Now(),
	}}
	return id, nil
}

func (r *fakeRuntime) StartContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("StartContainer %s", r.name(id))
	if err := r.take(ctx, "StartContainer"); err != nil {
		return err
	}
	c := r.containers[id]
	if c == nil {
		return fmt.Errorf("start container %s: %w", id, errdefs.ErrNotFound)
	}
	switch c.status.State {
	case runtime.StateRunning:
		return nil
	case runtime.StateCreated:
		c.status.State, c.status.PID, c.status.StartedAt = runtime.StateRunning, r.nextPID(), r.clock.Now()
		return nil
	}
	return fmt.Errorf("start container %s: it has %s: %w", id, c.status.State, errdefs.ErrFailedPrecondition)
}

func (r *fakeRuntime) StopContainer(ctx context.Context, id string, grace time.Duration) (runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("StopContainer %s grace=%s", r.name(id), grace)
	if err := r.take(ctx, "StopContainer"); err != nil {
		return runtime.ContainerStatus{}, err
	}
	c := r.containers[id]
	if c == nil {
		return runtime.ContainerStatus{}, fmt.Errorf("stop container %s: %w", id, errdefs.ErrNotFound)
	}
	if c.status.State == runtime.StateRunning {
		// The container leaves on SIGTERM (143) when it has a grace period, else on SIGKILL.
		code := uint32(137)
		if grace > 0 {
			code = 143
		}
		r.exitLocked(c, code)
	}
	return c.status, nil
}

func (r *fakeRuntime) RemoveContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("RemoveContainer %s", r.name(id))
	if err := r.take(ctx, "RemoveContainer"); err != nil {
		return err
	}
	delete(r.containers, id)
	return nil
}

func (r *fakeRuntime) ContainerStatus(ctx context.Context, id string) (runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads[id]++
	if err := r.take(ctx, "ContainerStatus"); err != nil {
		return runtime.ContainerStatus{}, err
	}
	c := r.containers[id]
	if c == nil {
		return runtime.ContainerStatus{}, fmt.Errorf("status of container %s: %w", id, errdefs.ErrNotFound)
	}
	return c.status, nil
}

func (r *fakeRuntime) List(ctx context.Context) ([]runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.take(ctx, "List"); err != nil {
		return nil, err
	}
	var sandboxes, apps []runtime.ContainerStatus
	for _, sb := range r.sandboxes {
		sandboxes = append(sandboxes, runtime.ContainerStatus{ID: sb.ID, Kind: runtime.KindSandbox, Pod: sb.Pod,
			State: sb.State, PID: sb.PID, CreatedAt: sb.CreatedAt})
	}
	for _, c := range r.containers {
		apps = append(apps, c.status)
	}
	byID := func(a, b runtime.ContainerStatus) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(sandboxes, byID)
	slices.SortFunc(apps, byID)
	return append(sandboxes, apps...), nil
}

func (r *fakeRuntime) Watch(ctx context.Context) <-chan runtime.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan runtime.Event, 64)
	r.watchers = append(r.watchers, ch)
	return ch
}

func (r *fakeRuntime) HasImage(ctx context.Context, name string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.take(ctx, "HasImage"); err != nil {
		return false, err
	}
	return r.images[name], nil
}

// ImportImage takes a "tarball" that lists the images it holds, one name a line.
func (r *fakeRuntime) ImportImage(ctx context.Context, tarball io.Reader) ([]string, error) {
	b, err := io.ReadAll(tarball)
	if err != nil {
		return nil, err
	}
	names := strings.Fields(string(b))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("ImportImage %s", strings.Join(names, ","))
	if err := r.take(ctx, "ImportImage"); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("import image tarball: it names no image: %w", errdefs.ErrInvalidArgument)
	}
	for _, n := range names {
		r.images[n] = true
	}
	return names, nil
}

func (r *fakeRuntime) ImageLabel(ctx context.Context, name, key string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.images[name] {
		return "", fmt.Errorf("image %s is not on this node: %w", name, errdefs.ErrNotFound)
	}
	return r.labels[name][key], nil
}

func (r *fakeRuntime) SetImageLabel(ctx context.Context, name, key, value string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("SetImageLabel %s %s=%s", name, key, value)
	if !r.images[name] {
		return fmt.Errorf("image %s is not on this node: %w", name, errdefs.ErrNotFound)
	}
	if r.labels[name] == nil {
		r.labels[name] = map[string]string{}
	}
	r.labels[name][key] = value
	return nil
}

// PullImage finds every image in its registry unless told to fail.
func (r *fakeRuntime) PullImage(ctx context.Context, ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls.add("PullImage %s", ref)
	if err := r.take(ctx, "PullImage"); err != nil {
		return err
	}
	r.images[ref] = true
	return nil
}

// exitLocked ends the container's run with code and tells the watchers.
func (r *fakeRuntime) exitLocked(c *fakeContainer, code uint32) {
	c.status.State, c.status.PID = runtime.StateExited, 0
	c.status.ExitCode, c.status.FinishedAt = code, r.clock.Now()
	ev := runtime.Event{Type: runtime.EventExit, ContainerID: c.status.ID, Kind: runtime.KindContainer,
		Pod: c.status.Pod, Name: c.status.Name, ExitCode: code, ExitedAt: c.status.FinishedAt}
	r.sendLocked(ev)
}

func (r *fakeRuntime) sendLocked(ev runtime.Event) {
	for _, ch := range r.watchers {
		select {
		case ch <- ev:
		default:
			panic("fakeRuntime: a watcher does not read its events")
		}
	}
}

// --- What tests do to the fake runtime, as containerd or the kernel would. ---

// addImage puts an image on the node.
func (r *fakeRuntime) addImage(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images[name] = true
}

// crash ends a running container's run with code, as if its process exited.
func (r *fakeRuntime) crash(t *testing.T, uid, name string, code uint32) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[runtime.ContainerID(uid, name)]
	if c == nil || c.status.State != runtime.StateRunning {
		t.Fatalf("crash %s/%s: it is not running", uid, name)
	}
	r.exitLocked(c, code)
}

// exitSilently ends a container's run without an exit event, as during a containerd restart.
func (r *fakeRuntime) exitSilently(t *testing.T, uid, name string, code uint32) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[runtime.ContainerID(uid, name)]
	if c == nil {
		t.Fatalf("exit %s/%s: no such container", uid, name)
	}
	c.status.State, c.status.PID = runtime.StateExited, 0
	c.status.ExitCode, c.status.FinishedAt = code, r.clock.Now()
}

// resync tells watchers that exits may have been lost, as after containerd came back.
func (r *fakeRuntime) resync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sendLocked(runtime.Event{Type: runtime.EventResync})
}

// putSandbox leaves a sandbox of the pod in the given state, as an earlier agent would have.
func (r *fakeRuntime) putSandbox(p events.Pod, state runtime.State) runtime.Sandbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := runtime.PodRef{UID: p.Metadata.UID, Name: p.Metadata.Name, Namespace: p.Metadata.Namespace}
	sb := &runtime.Sandbox{ID: runtime.SandboxID(ref.UID), Pod: ref, State: state, CreatedAt: r.clock.Now()}
	if state == runtime.StateRunning {
		sb.PID = r.nextPID()
	}
	r.sandboxes[ref.UID] = sb
	return *sb
}

// putContainer leaves a container of the pod in the given state.
func (r *fakeRuntime) putContainer(p events.Pod, name string, state runtime.State, restarts int) runtime.ContainerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := runtime.PodRef{UID: p.Metadata.UID, Name: p.Metadata.Name, Namespace: p.Metadata.Namespace}
	id := runtime.ContainerID(ref.UID, name)
	r.names[id] = ref.Name + "/" + name
	now := r.clock.Now()
	st := runtime.ContainerStatus{ID: id, Kind: runtime.KindContainer, Pod: ref, Name: name, RestartCount: restarts,
		State: state, CreatedAt: now}
	switch state {
	case runtime.StateRunning:
		st.PID, st.StartedAt = r.nextPID(), now
	case runtime.StateExited:
		st.StartedAt, st.FinishedAt, st.ExitCode = now, now, 1
	}
	r.containers[id] = &fakeContainer{status: st}
	return st
}

// statusReads is how often the container's status was asked for.
func (r *fakeRuntime) statusReads(uid, name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads[runtime.ContainerID(uid, name)]
}

// sandbox returns the pod's sandbox, if it has one.
func (r *fakeRuntime) sandbox(uid string) (runtime.Sandbox, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb := r.sandboxes[uid]
	if sb == nil {
		return runtime.Sandbox{}, false
	}
	return *sb, true
}

// container returns a container's status and config, if it exists.
func (r *fakeRuntime) container(uid, name string) (fakeContainer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[runtime.ContainerID(uid, name)]
	if c == nil {
		return fakeContainer{}, false
	}
	return *c, true
}

// podsLeft are the UIDs of pods with a sandbox or a container, sorted.
func (r *fakeRuntime) podsLeft() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var uids []string
	for uid := range r.sandboxes {
		uids = append(uids, uid)
	}
	for _, c := range r.containers {
		uids = append(uids, c.status.Pod.UID)
	}
	slices.Sort(uids)
	return slices.Compact(uids)
}

// fakeNetwork hands out pod IPs from a prefix as host-local does: one per pod, the same one
// again for the same network namespace, a new one for a new namespace.
type fakeNetwork struct {
	failures
	calls *callLog

	mu     sync.Mutex
	next   netip.Addr
	leases map[string]fakeLease // by pod ID
	routes map[netip.Prefix]netip.Addr
}

type fakeLease struct {
	ip    netip.Addr
	netns string
}

func newFakeNetwork(prefix netip.Prefix, calls *callLog) *fakeNetwork {
	return &fakeNetwork{calls: calls, next: prefix.Addr().Next().Next(), leases: map[string]fakeLease{}}
}

func (n *fakeNetwork) Setup(ctx context.Context, podID, netnsPath string) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls.add("Setup %s %s", podID, netnsPath)
	if err := n.take(ctx, "Setup"); err != nil {
		return netip.Addr{}, err
	}
	if l, ok := n.leases[podID]; ok && l.netns == netnsPath {
		return l.ip, nil
	}
	ip := n.next
	n.next = n.next.Next()
	n.leases[podID] = fakeLease{ip: ip, netns: netnsPath}
	return ip, nil
}

func (n *fakeNetwork) Teardown(ctx context.Context, podID, netnsPath string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls.add("Teardown %s %q", podID, netnsPath)
	if err := n.take(ctx, "Teardown"); err != nil {
		return err
	}
	delete(n.leases, podID)
	return nil
}

func (n *fakeNetwork) Allocations(ctx context.Context) ([]podnet.Allocation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []podnet.Allocation
	for id, l := range n.leases {
		out = append(out, podnet.Allocation{IP: l.ip, PodID: id, IfName: podnet.PodInterface})
	}
	slices.SortFunc(out, func(a, b podnet.Allocation) int { return a.IP.Compare(b.IP) })
	return out, nil
}

func (n *fakeNetwork) SyncRoutes(ctx context.Context, routes map[netip.Prefix]netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.routes = routes
	return nil
}

// ip is the pod's IP, if it holds one.
func (n *fakeNetwork) ip(podID string) (netip.Addr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, ok := n.leases[podID]
	return l.ip, ok
}

// hold gives a pod an IP, as an earlier agent would have.
func (n *fakeNetwork) hold(podID, netnsPath string) netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	ip := n.next
	n.next = n.next.Next()
	n.leases[podID] = fakeLease{ip: ip, netns: netnsPath}
	return ip
}

func (n *fakeNetwork) routeTable() map[netip.Prefix]netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.routes
}

// statusRecorder is a status writer that keeps what workers report.
type statusRecorder struct {
	failures
	mu      sync.Mutex
	written []events.Payload
}

func (s *statusRecorder) append(ctx context.Context, key work.Key, p events.Payload) error {
	if err := s.take(ctx, "append"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = append(s.written, p)
	return nil
}

// reports are the statuses reported, in order.
func (s *statusRecorder) reports() []events.PodStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []events.PodStatus
	for _, p := range s.written {
		if r, ok := p.(*events.PodStatusReported); ok {
			out = append(out, r.Status)
		}
	}
	return out
}

// last is the last status reported; the test fails if there is none.
func (s *statusRecorder) last(t *testing.T) events.PodStatus {
	t.Helper()
	rs := s.reports()
	if len(rs) == 0 {
		t.Fatal("no status reported")
	}
	return rs[len(rs)-1]
}

func (s *statusRecorder) terminated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.written {
		if _, ok := p.(*events.PodTerminated); ok {
			return true
		}
	}
	return false
}

// fakeImageStore is the cluster's image store: image name → the "tarball" fakeRuntime imports.
type fakeImageStore map[string]string

func (s fakeImageStore) Get(ctx context.Context, image string) (io.ReadCloser, error) {
	b, ok := s[image]
	if !ok {
		return nil, fmt.Errorf("image %s was never imported: %w", image, events.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(b)), nil
}

// Digest of a "tarball" is its text, so tests can name it.
func (s fakeImageStore) Digest(ctx context.Context, image string) (string, error) {
	b, ok := s[image]
	if !ok {
		return "", fmt.Errorf("image %s was never imported: %w", image, events.ErrNotFound)
	}
	return "digest of " + b, nil
}

// errUnavailable is a failure the fakes are told to return.
var errUnavailable = fmt.Errorf("injected failure: %w", errors.Join(errdefs.ErrUnavailable, events.ErrUnavailable))
