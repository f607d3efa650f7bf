package runtime

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd"
	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/contrib/seccomp"
	ctrdErrdefs "github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/protobuf"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ContainerConfig describes one app container of a pod. The pod worker maps
// a Kubernetes-shaped container spec onto it (after expanding $(VAR)
// references, which this package does not do).
type ContainerConfig struct {
	Pod  PodRef
	Name string
	// Image is the image name as imported, e.g. "skiff.dev/echo:v1".
	Image string
	// Command replaces the image's Entrypoint (and drops its Cmd); Args
	// replace its Cmd. See ProcessArgs.
	Command []string
	Args    []string
	// Env is KEY=value pairs applied over the image's environment.
	// HOSTNAME is set to Hostname unless Env sets it.
	Env []string
	// Hostname is the pod's host name (its sandbox's); default the pod name.
	Hostname string
	// WorkingDir replaces the image's WorkingDir; default "/".
	WorkingDir string
	// CPULimitMillis becomes a CFS quota per 100ms period; 0: no limit.
	CPULimitMillis int64
	// CPURequestMillis becomes the CPU shares (weight); 0: the minimum.
	CPURequestMillis int64
	// MemoryLimitBytes is the memory cgroup limit; 0: no limit. A
	// container over it is OOM-killed and reported OOMKilled.
	MemoryLimitBytes int64
	// RestartCount is how many times this container was restarted before.
	// It is stored as a label and names the log file; it is not part of
	// the container ID.
	RestartCount int
	// Mounts bind host paths into the container.
	Mounts []Mount
	// Labels are added to the container's labels.
	Labels map[string]string
}

// Mount is a bind mount from the host.
type Mount struct {
	HostPath      string
	ContainerPath string
	ReadOnly      bool
}

// State of a sandbox or container.
type State string

const (
	StateCreated State = "created" // exists, its process was never started
	StateRunning State = "running"
	StateExited  State = "exited"
	StateUnknown State = "unknown" // containerd cannot say (e.g. its shim is gone)
)

// ContainerStatus is what containerd and the container's cgroup say about a
// sandbox or container.
type ContainerStatus struct {
	ID           string
	Kind         Kind
	Pod          PodRef
	Name         string // container name; empty for a sandbox
	Image        string
	RestartCount int
	State        State
	PID          uint32 // while running
	ExitCode     uint32 // once exited; 128+n after signal n
	OOMKilled    bool   // the kernel OOM-killed a process of it
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	LogPath      string
	Labels       map[string]string
}

// CreateContainer creates (but does not start) an app container in the
// pod's sandbox and returns its ID, ContainerID(cfg.Pod.UID, cfg.Name).
//
// Errors: errdefs.ErrAlreadyExists when the pod already has a container of
// that name (whatever its restart count: remove it first); errdefs.ErrNotFound
// when the image is not on the node or the pod has no sandbox;
// errdefs.ErrFailedPrecondition when the sandbox is not running;
// errdefs.ErrInvalidArgument for a bad config.
func (r *Runtime) CreateContainer(ctx context.Context, cfg ContainerConfig) (string, error) {
	ctx = r.ns(ctx)
	if err := cfg.Pod.check(); err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.Name, err)
	}
	if err := validName("container name", cfg.Name); err != nil {
		return "", fmt.Errorf("create container of pod %s: %w", cfg.Pod, err)
	}
	id := ContainerID(cfg.Pod.UID, cfg.Name)
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("create container %s of pod %s: %w", cfg.Name, cfg.Pod, err)
	}

	sb, err := r.GetSandbox(ctx, cfg.Pod.UID)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return fail(fmt.Errorf("the pod has no sandbox (create it first): %w", err))
		}
		return fail(err)
	}
	if sb.State != StateRunning {
		return fail(fmt.Errorf("the pod's sandbox is %s, not running (remove the pod and create it again): %w", sb.State, errdefs.ErrFailedPrecondition))
	}
	img, err := r.imageFacts(ctx, cfg.Image)
	if err != nil {
		return fail(err)
	}
	ic := img.config
	argv := ProcessArgs(ic.Entrypoint, ic.Cmd, cfg.Command, cfg.Args)
	if len(argv) == 0 {
		return fail(fmt.Errorf("no command: image %s has no Entrypoint or Cmd and none was given: %w", cfg.Image, errdefs.ErrInvalidArgument))
	}
	imageEnv := ic.Env
	if len(imageEnv) == 0 {
		imageEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = cfg.Pod.Name
	}
	env := MergeEnv(hostname, imageEnv, cfg.Env)
	cwd := cfg.WorkingDir
	if cwd == "" {
		cwd = ic.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}

	labels := podLabels(cfg.Pod, KindContainer)
	labels[LabelContainerName] = cfg.Name
	labels[LabelRestartCount] = strconv.Itoa(cfg.RestartCount)
	labels[LabelLogPath] = LogPath(r.cfg.LogDir, cfg.Pod, cfg.Name, cfg.RestartCount)
	for k, v := range cfg.Labels {
		if _, ours := labels[k]; !ours {
			labels[k] = v
		}
	}

	stopSignal := img.config.StopSignal
	if stopSignal == "" {
		stopSignal = "SIGTERM"
	}
	labels[containerd.StopSignalLabel] = stopSignal

	_, err = r.client.NewContainer(ctx, id,
		containerd.WithContainerLabels(labels),
		r.withRuntime(),
		containerd.WithImageName(img.name),
		containerd.WithSnapshotter(r.snapshotter),
		r.withNewSnapshot(id, img),
		containerd.WithNewSpec(
			withProcess(argv, env, cwd),
			withUser(ic.User),
			withJoinedNamespaces(sb),
			withResources(cfg.CPULimitMillis, cfg.CPURequestMillis, cfg.MemoryLimitBytes, r.cgroups.swap),
			withBindMounts(cfg.Mounts),
			oci.WithNoNewPrivileges,
			seccomp.WithDefaultProfile(),
			r.withCompiledSeccomp(),
			withCgroupsPath(path.Join(r.cfg.CgroupParent, id)),
			withShimGroup(sb),
		))
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return fail(fmt.Errorf("container %s: %w", id, err))
		}
		if rerr := r.client.SnapshotService(r.snapshotter).Remove(context.WithoutCancel(ctx), id); rerr != nil && !errdefs.IsNotFound(rerr) {
			r.log.Error("clean up snapshot of failed create", "id", id, "err", rerr)
		}
		if errdefs.IsNotFound(err) {
			// The image's layers may have gone from the snapshotter behind our back:
			// look at the image afresh next time.
			r.forgetImage(img.name)
		}
		return fail(err)
	}
	r.log.Debug("container created", "pod", cfg.Pod.String(), "container", cfg.Name, "id", id,
		"restart", cfg.RestartCount)
	return id, nil
}

func withBindMounts(mounts []Mount) oci.SpecOpts {
	var ms []specs.Mount
	for _, m := range mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		ms = append(ms, specs.Mount{
			Destination: m.ContainerPath, Type: "bind", Source: m.HostPath,
			Options: []string{"rbind", "rprivate", mode},
		})
	}
	return oci.WithMounts(ms)
}

// StartContainer starts a created container. Its stdout and stderr go to its
// log file, written by containerd's shim. Starting a running container does
// nothing. Errors: errdefs.ErrNotFound for an unknown ID;
// errdefs.ErrFailedPrecondition when the container has run and exited (a
// container runs once: remove it and create it with the next restart count).
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("start container %s: task status: %w", id, err)
		}
		switch st.Status {
		case containerd.Running, containerd.Paused, containerd.Pausing:
			return nil
		case containerd.Created: // the agent died between create and start
		default:
			return fmt.Errorf("start container %s: it has %s (remove it and create it again): %w", id, st.Status, errdefs.ErrFailedPrecondition)
		}
	case errdefs.IsNotFound(err):
		// LoadContainer has read the record already.
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
		logPath := info.Labels[LabelLogPath]
		if logPath == "" {
			return fmt.Errorf("start container %s: it has no %s label; not made by this package? %w", id, LabelLogPath, errdefs.ErrFailedPrecondition)
		}
		if err := prepareLogFile(logPath); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
		task, err = c.NewTask(ctx, cio.LogFile(logPath))
		if err != nil {
			return fmt.Errorf("start container %s: create task: %w", id, err)
		}
	default:
		return fmt.Errorf("start container %s: %w", id, err)
	}
	// Taken before the start, so that a process that exits at once never
	// seems to have finished before it started.
	startedAt := time.Now()
	if err := task.Start(ctx); err != nil {
		if _, derr := task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill); derr != nil {
			r.log.Error("clean up task that failed to start", "id", id, "err", derr)
		}
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if _, err := c.SetLabels(ctx, map[string]string{LabelStartedAt: startedAt.UTC().Format(time.RFC3339Nano)}); err != nil {
		r.log.Warn("record container start time", "id", id, "err", err)
	}
	return nil
}

// prepareLogFile creates the log's directory and drops logs of runs older
// than the previous one, which `logs --previous` still wants.
func prepareLogFile(logPath string) error {
	dir := filepath.Dir(logPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	current, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(logPath), ".log"))
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read log directory: %w", err)
	}
	for _, e := range entries {
		run, _, _ := strings.Cut(e.Name(), ".")
		if n, err := strconv.Atoi(run); err == nil && n < current-1 {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// StopContainer stops a container: its stop signal (the image's StopSignal,
// default SIGTERM), then SIGKILL if it still runs after grace, then it
// waits for the exit. A grace of 0 kills at once. Stopping a container that
// is not running only reports its status. The task stays until
// RemoveContainer, so the status keeps its exit code and OOM kill.
// Errors: errdefs.ErrNotFound for an unknown ID; ctx's error if it ends
// before the container does.
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) (ContainerStatus, error) {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("stop container %s: %w", id, err)
	}
	if err := r.stopTask(ctx, c, grace); err != nil {
		return ContainerStatus{}, fmt.Errorf("stop container %s: %w", id, err)
	}
	return r.status(ctx, c)
}

func (r *Runtime) stopTask(ctx context.Context, c containerd.Container, grace time.Duration) error {
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	// Wait before signalling, or a fast exit could be missed.
	exited, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait for task: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("task status: %w", err)
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	if st.Status == containerd.Created {
		// Never started: there is no process to signal, and Wait would
		// block until someone starts it.
		_, err := task.Delete(ctx)
		return err
	}
	if grace > 0 {
		sig, err := containerd.GetStopSignal(ctx, c, syscall.SIGTERM)
		if err != nil {
			sig = syscall.SIGTERM
		}
		if err := task.Kill(ctx, sig); err != nil && !isGone(err) {
			return fmt.Errorf("send %v: %w", sig, err)
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-exited:
			return nil
		case <-timer.C:
			r.log.Info("container ignored its stop signal; killing it", "id", c.ID(), "grace", grace)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !isGone(err) {
		return fmt.Errorf("send SIGKILL: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RemoveContainer kills the container if it runs and removes its task,
// the container and its root filesystem snapshot. Its log file stays (the
// pod's logs go with RemoveSandbox). Removing a container that does not
// exist is not an error.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	if err := r.remove(r.ns(ctx), id); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) remove(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !isGone(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("load task: %w", err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}

// ContainerStatus returns the status of a container or sandbox, or an
// errdefs.ErrNotFound error.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (ContainerStatus, error) {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("status of container %s: %w", id, err)
	}
	return r.status(ctx, c)
}

func (r *Runtime) status(ctx context.Context, c containerd.Container) (ContainerStatus, error) {
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("status of container %s: %w", c.ID(), err)
	}
	return r.statusOf(ctx, c, info.Labels, info.Image, info.CreatedAt, info.Spec)
}

func (r *Runtime) statusOf(ctx context.Context, c containerd.Container, labels map[string]string, image string, created time.Time, spec typeurl.Any) (ContainerStatus, error) {
	st := ContainerStatus{
		ID:           c.ID(),
		Kind:         Kind(labels[LabelKind]),
		Pod:          podFromLabels(labels),
		Name:         labels[LabelContainerName],
		Image:        image,
		RestartCount: restartFromLabels(labels),
		State:        StateCreated,
		CreatedAt:    created,
		StartedAt:    timeFromLabel(labels, LabelStartedAt),
		LogPath:      labels[LabelLogPath],
		Labels:       labels,
	}
	// One call to the task service says what Container.Task and Task.Status
	// would say in two (each of which also asks the shim).
	resp, err := r.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: c.ID()})
	if err != nil {
		err = ctrdErrdefs.FromGRPC(err)
		switch {
		case errdefs.IsNotFound(err):
			return st, nil
		case errdefs.IsUnavailable(err):
			return st, fmt.Errorf("status of container %s: %w", c.ID(), err)
		}
		st.State = StateUnknown
		return st, nil
	}
	p := resp.Process
	switch containerd.ProcessStatus(strings.ToLower(p.Status.String())) {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		st.State = StateRunning
		st.PID = p.Pid
	case containerd.Created:
		st.State = StateCreated
	case containerd.Stopped:
		st.State = StateExited
		st.ExitCode = p.ExitStatus
		st.FinishedAt = protobuf.FromTimestamp(p.ExitedAt)
		st.OOMKilled = r.oomKilled(c.ID(), spec)
	default:
		st.State = StateUnknown
	}
	return st, nil
}

// oomKilled reads the OOM-kill counter of the container's cgroup, which
// exists until its task is deleted.
func (r *Runtime) oomKilled(id string, spec typeurl.Any) bool {
	cgroupsPath := path.Join(r.cfg.CgroupParent, id)
	if spec != nil {
		var s specs.Spec
		if err := typeurl.UnmarshalTo(spec, &s); err == nil && s.Linux != nil && s.Linux.CgroupsPath != "" {
			cgroupsPath = s.Linux.CgroupsPath
		}
	}
	n, ok := r.cgroups.oomKills(cgroupsPath)
	return ok && n > 0
}

// List returns every sandbox and container this package made in the
// namespace, with its status: what an agent that restarts reconciles
// against. Sandboxes come first so a caller can index pods before their
// containers.
func (r *Runtime) List(ctx context.Context) ([]ContainerStatus, error) {
	ctx = r.ns(ctx)
	ctrs, err := r.client.Containers(ctx, fmt.Sprintf(`labels."%s"`, LabelKind))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var sandboxes, apps []ContainerStatus
	for _, c := range ctrs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue // removed while listing
		}
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		st, err := r.statusOf(ctx, c, info.Labels, info.Image, info.CreatedAt, info.Spec)
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		if st.Kind == KindSandbox {
			sandboxes = append(sandboxes, st)
		} else {
			apps = append(apps, st)
		}
	}
	pinned, err := r.listPinned()
	if err != nil {
		return nil, err
	}
	sandboxes = append(sandboxes, pinned...)
	return append(sandboxes, apps...), nil
}
