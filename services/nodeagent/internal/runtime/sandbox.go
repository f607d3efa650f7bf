package runtime

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd"
	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/contrib/seccomp"
	ctrdErrdefs "github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/errdefs"
)

// pauseUID runs the pause process unprivileged, as the Kubernetes pause
// image does.
const pauseUID = 65535

// shimGroupAnnotation makes containerd's runc shim (io.containerd.runc.v2)
// serve every container whose spec carries the same value from one shim
// process: app containers name their sandbox, so a pod costs one shim, and
// starting an app container skips starting a shim.
const shimGroupAnnotation = "io.containerd.runc.v2.group"

// withShimGroup puts an app container in its pod's shim when a pause container holds that shim.
// A pinned sandbox has no process to hold it: the shim would end with the pod's last container
// and a container made meanwhile (a restart: delete, then create) could reach the shim as it
// exits. With the group, the agent-kill test (tests/e2e faults_test.go) once left a pod's task
// gone with its shim ("shim disconnected") and the pod never Running; without it, it passed.
// Pinned pods' containers get a shim each (a one-container pod: the same count).
func withShimGroup(sb Sandbox) oci.SpecOpts {
	if sb.NSDir != "" {
		return func(context.Context, oci.Client, *containers.Container, *oci.Spec) error { return nil }
	}
	return oci.WithAnnotations(map[string]string{shimGroupAnnotation: sb.ID})
}

// PodSandboxConfig describes the sandbox of one pod.
type PodSandboxConfig struct {
	Pod PodRef
	// Hostname of the pod's UTS namespace; default the pod name (cut to 63
	// bytes, the kernel's limit being 64).
	Hostname string
	// Labels are added to the sandbox container's labels.
	Labels map[string]string
}

// Sandbox is a pod's sandbox as containerd has it.
type Sandbox struct {
	ID        string
	Pod       PodRef
	State     State
	PID       uint32 // pause process, in the host's PID namespace; 0 unless running or pinned
	CreatedAt time.Time
	// NSDir holds the pinned namespaces (net, ipc, uts) of a pinned sandbox; empty for a
	// pause container.
	NSDir string
}

// NetNSPath is the pod's network namespace, to hand to CNI. It is valid
// while the sandbox runs.
func (s Sandbox) NetNSPath() string {
	return s.nsPath("net")
}

// nsPath is the pod's namespace of the given kind (net, ipc, uts) as a path.
func (s Sandbox) nsPath(name string) string {
	if s.NSDir != "" {
		return filepath.Join(s.NSDir, name)
	}
	return fmt.Sprintf("/proc/%d/ns/%s", s.PID, name)
}

// CreateSandbox creates and starts the pod's sandbox and returns it running.
// It fails with errdefs.ErrAlreadyExists when the pod already has a running one
// (see GetSandbox) and errdefs.ErrInvalidArgument for an incomplete PodRef. A
// sandbox of the pod that is not running (an agent killed between creating it
// and starting it, or a dead pause process) is in the way of the new one under
// the same deterministic ID: it is removed first. On any other failure nothing
// of the sandbox is left behind.
func (r *Runtime) CreateSandbox(ctx context.Context, cfg PodSandboxConfig) (Sandbox, error) {
	ctx = r.ns(ctx)
	if err := cfg.Pod.check(); err != nil {
		return Sandbox{}, fmt.Errorf("create sandbox: %w", err)
	}
	id := SandboxID(cfg.Pod.UID)
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = cfg.Pod.Name
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	if r.sandbox == SandboxPinned {
		// A pause sandbox from before a switch: running, it still holds the pod; not running
		// (its pause process died, or an agent was killed while making it), it is in the way
		// of nothing but would be found first by GetSandbox: it goes, and the pod's namespaces
		// are made again, pinned, as a dead pause sandbox is replaced by a new one.
		if c, err := r.client.LoadContainer(ctx, id); err == nil {
			st, serr := r.status(ctx, c)
			if serr == nil && st.State == StateRunning {
				return Sandbox{}, fmt.Errorf("create sandbox of pod %s: a pause sandbox runs: %w", cfg.Pod, errdefs.ErrAlreadyExists)
			}
			r.log.Warn("removing a pause sandbox that is not running to pin the pod's namespaces", "pod", cfg.Pod.String(), "id", id, "state", st.State)
			if rerr := r.remove(ctx, id); rerr != nil {
				return Sandbox{}, fmt.Errorf("create sandbox of pod %s: remove the pause sandbox left %s: %w", cfg.Pod, st.State, rerr)
			}
		}
		sb, err := r.createPinned(cfg, hostname)
		if err == nil {
			r.log.Debug("sandbox pinned", "pod", cfg.Pod.String(), "dir", sb.NSDir)
		}
		return sb, err
	}
	labels := podLabels(cfg.Pod, KindSandbox)
	for k, v := range cfg.Labels {
		if _, ours := labels[k]; !ours {
			labels[k] = v
		}
	}
	// The default spec gives the process new PID, mount, network, IPC and
	// UTS namespaces: the last three are what the pod's containers join.
	specOpts := []oci.SpecOpts{
		oci.WithRootFSPath(r.sandboxRoot),
		oci.WithRootFSReadonly(),
		oci.WithProcessArgs("/pause"),
		oci.WithProcessCwd("/"),
		oci.WithHostname(hostname),
		oci.WithUIDGID(pauseUID, pauseUID),
		oci.WithCapabilities(nil),
		oci.WithNoNewPrivileges,
		withCgroupsPath(path.Join(r.cfg.CgroupParent, id)),
	}
	// No seccomp filter by default: compiling containerd's default profile is
	// most of what creating a container costs crun (about 13 of 19 ms of CPU)
	// and half of runc's, and the pause process cannot use what it would
	// forbid: it runs the runtime's own few instructions, unprivileged,
	// without capabilities, with no_new_privs, and nothing ever executes in
	// it. The kubelet, too, leaves the sandbox unconfined unless told
	// otherwise. App containers keep the default profile.
	if r.cfg.SandboxSeccomp {
		specOpts = append(specOpts, seccomp.WithDefaultProfile())
	}
	opts := []containerd.NewContainerOpts{
		containerd.WithContainerLabels(labels),
		r.withRuntime(),
		containerd.WithNewSpec(specOpts...),
	}
	c, err := r.client.NewContainer(ctx, id, opts...)
	if errdefs.IsAlreadyExists(err) {
		if old, gerr := r.GetSandbox(ctx, cfg.Pod.UID); gerr == nil && old.State != StateRunning {
			r.log.Warn("removing a sandbox that is not running to create the pod's again", "pod", cfg.Pod.String(), "id", id, "state", old.State)
			if rerr := r.remove(ctx, id); rerr != nil {
				return Sandbox{}, fmt.Errorf("create sandbox of pod %s: remove the one left %s: %w", cfg.Pod, old.State, rerr)
			}
			c, err = r.client.NewContainer(ctx, id, opts...)
		}
	}
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return Sandbox{}, fmt.Errorf("create sandbox of pod %s: %w", cfg.Pod, err)
		}
		return Sandbox{}, fmt.Errorf("create sandbox container of pod %s: %w", cfg.Pod, err)
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if errdefs.IsAlreadyExists(err) {
		// A task outlived the container record of an earlier sandbox with this ID (an agent
		// killed while it removed one): containerd knows it by the ID, so the new container
		// finds it. It is not ours to keep; kill it and start afresh, or every retry fails
		// with "already exists" (seen in the chaos suite's agent kills).
		leftover := "not found by its ID"
		if old, terr := c.Task(ctx, nil); terr == nil {
			st, _ := old.Status(ctx)
			r.log.Warn("removing a task left by an earlier sandbox of the pod", "pod", cfg.Pod.String(), "id", id, "status", st.Status)
			leftover = fmt.Sprintf("found %s, removed", st.Status)
			if _, derr := old.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
				leftover = fmt.Sprintf("found %s, not removed: %v", st.Status, derr)
			}
		} else {
			// Loading asks the task its state, which a shim half made or half gone cannot
			// answer; the task service still finds it by ID to kill and delete.
			leftover = fmt.Sprintf("not loadable (%v), removed by its ID", terr)
			r.log.Warn("removing a task left by an earlier sandbox of the pod, by its ID", "pod", cfg.Pod.String(), "id", id, "err", terr)
			if derr := r.removeTask(context.WithoutCancel(ctx), id); derr != nil {
				leftover = fmt.Sprintf("not loadable (%v), not removed by its ID: %v", terr, derr)
			}
		}
		task, err = c.NewTask(ctx, cio.NullIO)
		if err != nil {
			err = fmt.Errorf("%w (the task left by an earlier sandbox: %s)", err, leftover)
		}
	}
	if err == nil {
		if err = task.Start(ctx); err != nil {
			task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		}
	}
	if err != nil {
		if derr := c.Delete(context.WithoutCancel(ctx)); derr != nil {
			r.log.Error("clean up failed sandbox", "pod", cfg.Pod.String(), "id", id, "err", derr)
		}
		return Sandbox{}, fmt.Errorf("start sandbox of pod %s: %w", cfg.Pod, err)
	}
	r.log.Debug("sandbox started", "pod", cfg.Pod.String(), "id", id, "pid", task.Pid())
	return Sandbox{ID: id, Pod: cfg.Pod, State: StateRunning, PID: task.Pid(), CreatedAt: time.Now()}, nil
}

// removeTask kills and deletes the task with the given ID through the task service, which
// finds it by ID without asking its state first (as Container.Task does).
func (r *Runtime) removeTask(ctx context.Context, id string) error {
	ts := r.client.TaskService()
	if _, err := ts.Kill(ctx, &tasks.KillRequest{ContainerID: id, Signal: uint32(syscall.SIGKILL), All: true}); err != nil && !isGone(ctrdErrdefs.FromGRPC(err)) {
		return fmt.Errorf("kill task %s: %w", id, ctrdErrdefs.FromGRPC(err))
	}
	var err error
	for try := range 20 {
		if _, err = ts.Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: id}); err == nil || isGone(ctrdErrdefs.FromGRPC(err)) {
			return nil
		}
		// The kill takes a moment to end the process: runc will not delete a running one.
		time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
	}
	return fmt.Errorf("delete task %s: %w", id, ctrdErrdefs.FromGRPC(err))
}

// GetSandbox returns the sandbox of the pod with the given UID, or an
// errdefs.ErrNotFound error.
func (r *Runtime) GetSandbox(ctx context.Context, podUID string) (Sandbox, error) {
	ctx = r.ns(ctx)
	// A pod keeps the kind of sandbox it was made with; look for the usual one first.
	if r.sandbox == SandboxPinned {
		if sb, err := r.getPinned(podUID); !errdefs.IsNotFound(err) {
			return sb, err
		}
	}
	id := SandboxID(podUID)
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) && r.sandbox != SandboxPinned {
		if sb, perr := r.getPinned(podUID); !errdefs.IsNotFound(perr) {
			return sb, perr
		}
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("get sandbox of pod uid %s: %w", podUID, err)
	}
	st, err := r.status(ctx, c)
	if err != nil {
		return Sandbox{}, fmt.Errorf("get sandbox of pod uid %s: %w", podUID, err)
	}
	return Sandbox{ID: id, Pod: st.Pod, State: st.State, PID: st.PID, CreatedAt: st.CreatedAt}, nil
}

// RemoveSandbox removes everything of the pod: its app containers (killed
// at once: stop them with StopContainer first to give them their grace
// period), its sandbox and its logs. Tear the pod's network down before,
// while the sandbox still holds the namespace. Removing a pod that has
// nothing left is not an error.
func (r *Runtime) RemoveSandbox(ctx context.Context, pod PodRef) error {
	ctx = r.ns(ctx)
	if err := pod.check(); err != nil {
		return fmt.Errorf("remove sandbox: %w", err)
	}
	ctrs, err := r.client.Containers(ctx, fmt.Sprintf(`labels."%s"==%q`, LabelPodUID, pod.UID))
	if err != nil {
		return fmt.Errorf("remove pod %s: list its containers: %w", pod, err)
	}
	sandboxID := SandboxID(pod.UID)
	for _, c := range ctrs {
		if c.ID() == sandboxID {
			continue
		}
		if err := r.RemoveContainer(ctx, c.ID()); err != nil {
			return fmt.Errorf("remove pod %s: %w", pod, err)
		}
	}
	if err := r.remove(ctx, sandboxID); err != nil {
		return fmt.Errorf("remove sandbox of pod %s: %w", pod, err)
	}
	if err := r.removePinned(pod.UID); err != nil {
		return fmt.Errorf("remove sandbox of pod %s: %w", pod, err)
	}
	if err := os.RemoveAll(podLogDir(r.cfg.LogDir, pod)); err != nil {
		return fmt.Errorf("remove logs of pod %s: %w", pod, err)
	}
	r.log.Debug("sandbox removed", "pod", pod.String(), "id", sandboxID)
	return nil
}
