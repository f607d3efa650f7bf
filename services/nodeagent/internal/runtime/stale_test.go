package runtime_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/cio"
	ctrdErrdefs "github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/errdefs"

	"skiff.dev/services/nodeagent/internal/runtime"
)

// An agent killed while it creates a pod's sandbox leaves the sandbox container behind, with a
// task that was never started or with none at all. The next agent creates the sandbox under the
// same deterministic ID: the stale one is replaced, not an "already exists" on every retry (the
// bug `kill -9` of skiff up during a rollout found). A running sandbox is still refused.
func TestCreateSandboxReplacesOneLeftNotRunning(t *testing.T) {
	e, client, ctx, nsctx := staleEnv(t)

	for _, tc := range []struct {
		name string
		// leave turns a running sandbox into what a kill at some point of its creation leaves.
		leave func(t *testing.T, c containerd.Container)
	}{
		{"task created, never started", func(t *testing.T, c containerd.Container) {
			task, err := c.Task(nsctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := task.Delete(nsctx, containerd.WithProcessKill); err != nil {
				t.Fatal(err)
			}
			if _, err := c.NewTask(nsctx, cio.NullIO); err != nil {
				t.Fatal(err)
			}
		}},
		{"no task", func(t *testing.T, c containerd.Container) {
			task, err := c.Task(nsctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := task.Delete(nsctx, containerd.WithProcessKill); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := newPod(t, "stale")
			first, err := e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.rt.RemoveSandbox(context.Background(), pod) })
			if _, err := e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod}); err == nil {
				t.Fatal("a second sandbox while the first runs: want AlreadyExists")
			}
			c, err := client.LoadContainer(nsctx, first.ID)
			if err != nil {
				t.Fatal(err)
			}
			tc.leave(t, c)
			left, err := e.rt.GetSandbox(ctx, pod.UID)
			if err != nil || left.State == runtime.StateRunning {
				t.Fatalf("the sandbox left behind: %+v, %v; want one not running", left, err)
			}

			again, err := e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod})
			if err != nil {
				t.Fatalf("create the sandbox again over one left %s: %v", left.State, err)
			}
			if again.ID != first.ID || again.State != runtime.StateRunning || again.PID == 0 || again.PID == first.PID {
				t.Errorf("recreated sandbox %+v (first %+v): want the same ID, running, a new pause process", again, first)
			}
		})
	}
}

// A task that outlived its container record (an agent killed while it removed a sandbox) made
// every later CreateSandbox of the pod fail with "task …: already exists": the new sandbox
// replaces it.
func TestCreateSandboxReplacesATaskLeftWithoutItsContainer(t *testing.T) {
	e, client, ctx, nsctx := staleEnv(t)

	pod, first := e.runSandbox(ctx, t, "orphan-task")
	// The container's record goes, its running task stays (the client's Delete would refuse).
	if err := client.ContainerService().Delete(nsctx, first.ID); err != nil {
		t.Fatal(err)
	}
	again, err := e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod})
	if err != nil {
		t.Fatalf("create the sandbox again over a task left without its container: %v", err)
	}
	if again.ID != first.ID || again.State != runtime.StateRunning || again.PID == 0 || again.PID == first.PID {
		t.Errorf("recreated sandbox %+v (first %+v): want the same ID, running, a new pause process", again, first)
	}
}

// A task CreateSandbox cannot load finds its way out by ID: the task service kills and deletes
// a running one, and a second removal finds nothing and is not an error.
func TestRemoveTaskByID(t *testing.T) {
	e, client, ctx, nsctx := staleEnv(t)

	_, sb := e.runSandbox(ctx, t, "task-by-id")
	for range 2 {
		if err := e.rt.RemoveTask(ctx, sb.ID); err != nil {
			t.Fatalf("remove the running task of %s by its ID: %v", sb.ID, err)
		}
	}
	if _, err := client.TaskService().Get(nsctx, &tasks.GetRequest{ContainerID: sb.ID}); !errdefs.IsNotFound(ctrdErrdefs.FromGRPC(err)) {
		t.Fatalf("task of %s after its removal: %v, want not found", sb.ID, err)
	}
	if err := syscall.Kill(int(sb.PID), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pause process %d after the removal: %v, want gone", sb.PID, err)
	}
}

// staleEnv is a runtime making pause sandboxes on its own containerd, a client to reach behind
// its back, and a context of two minutes, also in the runtime's namespace (nsctx), for the
// client. (A pinned sandbox left half made is TestPinnedSandbox's.)
func staleEnv(t *testing.T) (e *env, client *containerd.Client, ctx, nsctx context.Context) {
	t.Helper()
	e = newEnv(t, sandboxKind(runtime.SandboxPause))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return e, e.ctd.Client(t), ctx, namespaces.WithNamespace(ctx, e.ctd.RuntimeConfig().Namespace)
}

// runSandbox starts the sandbox of a new pod called name, removed at cleanup.
func (e *env) runSandbox(ctx context.Context, t *testing.T, name string) (runtime.PodRef, runtime.Sandbox) {
	t.Helper()
	pod := newPod(t, name)
	sb, err := e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.rt.RemoveSandbox(context.Background(), pod) })
	return pod, sb
}

// An agent that now pins namespaces meets a pod's pause sandbox of before the switch: running,
// it keeps the pod (AlreadyExists); left not running (its pause process died), it no longer
// blocks the pod: it is removed and the pod's namespaces are pinned instead (the demo's pods,
// made with pause sandboxes, were stuck on "a pause sandbox exists" after an upgrade).
func TestPinnedRuntimeReplacesAPauseSandboxLeftNotRunning(t *testing.T) {
	e, client, ctx, nsctx := staleEnv(t)
	cfg := e.ctd.RuntimeConfig()
	cfg.Sandbox = runtime.SandboxPinned
	pinned, err := runtime.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pinned.Close() })

	pod, first := e.runSandbox(ctx, t, "switched")
	if _, err := pinned.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("pin the namespaces of a pod whose pause sandbox runs: %v, want AlreadyExists", err)
	}
	c, err := client.LoadContainer(nsctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(nsctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Delete(nsctx, containerd.WithProcessKill); err != nil {
		t.Fatal(err)
	}
	if left, err := pinned.GetSandbox(ctx, pod.UID); err != nil || left.State == runtime.StateRunning || left.NSDir != "" {
		t.Fatalf("the pause sandbox left: %+v, %v; want it found, not running", left, err)
	}
	sb, err := pinned.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod})
	if err != nil || sb.NSDir == "" || sb.State != runtime.StateRunning {
		t.Fatalf("pin the namespaces over a pause sandbox left not running: %+v, %v", sb, err)
	}
	if _, err := client.LoadContainer(nsctx, first.ID); !errdefs.IsNotFound(ctrdErrdefs.FromGRPC(err)) && !errdefs.IsNotFound(err) {
		t.Errorf("the pause sandbox's container after pinning: %v, want it removed", err)
	}
	if got, err := pinned.GetSandbox(ctx, pod.UID); err != nil || got.NSDir != sb.NSDir || got.State != runtime.StateRunning {
		t.Errorf("GetSandbox after pinning = %+v, %v; want the pinned one", got, err)
	}
	if err := pinned.RemoveSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
}
