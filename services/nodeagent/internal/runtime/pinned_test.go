package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// A pinned sandbox has no container: its namespaces are bind mounts the runtime makes after
// containerd started (in a mount namespace of its own on a hybrid-cgroup host), which must
// reach containerd's namespace for crun to join them; List reports it for reconcile, and
// removing it frees the namespaces.
func TestPinnedSandbox(t *testing.T) {
	runtimetest.RequireRoot(t)
	imgs := runtimetest.Images(t)
	ctd := runtimetest.StartContainerd(t)
	cfg := ctd.RuntimeConfig()
	cfg.Sandbox = runtime.SandboxPinned
	rt, err := runtime.New(ctxT(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	importImage(t, rt, imgs.Testbox)
	e := &env{ctd: ctd, rt: rt}
	ctx := ctxT(t, 60*time.Second)

	// No thread of this process (the main thread, which Go never ends, least of all) is left
	// in a pod's namespaces.
	threadNS := func() map[string]bool {
		seen := map[string]bool{}
		tasks, _ := filepath.Glob("/proc/self/task/*/ns/*")
		for _, p := range tasks {
			if n := filepath.Base(p); n == "net" || n == "ipc" || n == "uts" {
				l, _ := os.Readlink(p)
				seen[l] = true
			}
		}
		return seen
	}
	before := threadNS()
	for i := range 20 {
		p := newPod(t, fmt.Sprintf("many-%d", i))
		if _, err := rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: p}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.RemoveSandbox(context.Background(), p) })
	}
	for ns := range threadNS() {
		if !before[ns] {
			t.Errorf("a thread of the process is left in %s, a pod's namespace", ns)
		}
	}

	pod := newPod(t, "pinned-pod")
	sb, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "app", Image: runtimetest.TestboxImage, Args: []string{"env"}})
	if sb.NSDir == "" || sb.PID != 0 {
		t.Fatalf("sandbox %+v: want pinned namespaces and no process", sb)
	}
	if _, err := rt.ContainerStatus(ctx, sb.ID); !errdefs.IsNotFound(err) {
		t.Errorf("sandbox container: %v, want NotFound (no pause container)", err)
	}
	st := e.waitState(t, id, runtime.StateRunning, 10*time.Second)
	for _, ns := range []string{"net", "ipc", "uts"} {
		var pin, app unix.Stat_t
		if err := unix.Stat(filepath.Join(sb.NSDir, ns), &pin); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat(filepathProc(st.PID, "ns/"+ns), &app); err != nil {
			t.Fatal(err)
		}
		if pin.Ino != app.Ino {
			t.Errorf("%s namespace: container in %d, pinned %d", ns, app.Ino, pin.Ino)
		}
	}
	if out := waitLog(t, st.LogPath, "HOSTNAME=", 5*time.Second); !strings.Contains(out, "HOSTNAME=pinned-pod") {
		t.Errorf("env %q lacks the pod's hostname", out)
	}
	if _, err := rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second CreateSandbox = %v, want AlreadyExists", err)
	}
	all, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range all {
		if c.Kind == runtime.KindSandbox && c.Pod == pod && c.State == runtime.StateRunning {
			found = true
		}
	}
	if !found {
		t.Errorf("List %+v lacks the pinned sandbox of %s", all, pod)
	}

	// A restarted runtime (an agent restart) finds the pod's namespaces again.
	rt2 := ctd.NewRuntime(t)
	if got, err := rt2.GetSandbox(ctx, pod.UID); err != nil || got.State != runtime.StateRunning || got.NSDir != sb.NSDir || got.Pod != pod {
		t.Errorf("GetSandbox after restart = %+v, %v; want running in %s", got, err, sb.NSDir)
	}

	if _, err := rt.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sb.NSDir); !os.IsNotExist(err) {
		t.Errorf("pin dir after RemoveSandbox: %v, want gone", err)
	}
	if _, err := rt.GetSandbox(ctx, pod.UID); !errdefs.IsNotFound(err) {
		t.Errorf("GetSandbox after removal = %v, want NotFound", err)
	}
	for _, m := range ctd.Mounts() {
		if filepath.Dir(m) == sb.NSDir {
			t.Errorf("pin %s still mounted", m)
		}
	}

	// Half made (an agent killed while pinning): not running, and made again on create.
	half := newPod(t, "half")
	if err := os.MkdirAll(filepath.Join(cfg.PinDir, half.UID), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := rt.GetSandbox(ctx, half.UID); err != nil || got.State == runtime.StateRunning {
		t.Errorf("half-made sandbox = %+v, %v; want not running", got, err)
	}
	if got, err := rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: half}); err != nil || got.State != runtime.StateRunning {
		t.Errorf("CreateSandbox over a half-made one = %+v, %v", got, err)
	}
	if err := rt.RemoveSandbox(ctx, half); err != nil {
		t.Fatal(err)
	}
}

// Pods get pinned namespaces by default only where containerd sees the pins: under a containerd
// whose mount namespace no later mount reaches, the default falls back to pause sandboxes, which
// work there, and an explicit choice of pinned is refused with the reason, before any pod fails.
func TestPinnedOnlyWhereContainerdSeesThePins(t *testing.T) {
	runtimetest.RequireRoot(t)
	imgs := runtimetest.Images(t)
	for _, tc := range []struct {
		name string
		opts []runtimetest.Option
		want string // the default's kind
	}{
		{"containerd sees the pins", nil, runtime.SandboxPinned},
		{"containerd in a private mount namespace", []runtimetest.Option{runtimetest.InPrivateMountNamespace()}, runtime.SandboxPause},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctd := runtimetest.StartContainerd(t, tc.opts...)
			rt := ctd.NewRuntime(t)
			if got := rt.SandboxKind(); got != tc.want {
				t.Fatalf("default sandbox kind %q, want %q", got, tc.want)
			}
			importImage(t, rt, imgs.Testbox)
			e := &env{ctd: ctd, rt: rt}
			pod := newPod(t, "probe")
			sb, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "app", Image: runtimetest.TestboxImage, Args: []string{"exit", "0"}})
			if (sb.NSDir != "") != (tc.want == runtime.SandboxPinned) {
				t.Errorf("sandbox %+v, want a %s one", sb, tc.want)
			}
			if st := e.waitState(t, id, runtime.StateExited, 10*time.Second); st.ExitCode != 0 {
				t.Errorf("app container exited %d, want 0", st.ExitCode)
			}
			if err := rt.RemoveSandbox(ctxT(t, 30*time.Second), pod); err != nil {
				t.Fatal(err)
			}

			cfg := ctd.RuntimeConfig()
			cfg.Sandbox = runtime.SandboxPinned
			pinned, err := runtime.New(ctxT(t, 30*time.Second), cfg)
			if tc.want == runtime.SandboxPinned {
				if err != nil {
					t.Fatalf("runtime with pinned sandboxes: %v", err)
				}
				pinned.Close()
			} else if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "does not see mounts made under "+cfg.PinDir) {
				t.Errorf("runtime with pinned sandboxes under a containerd that cannot see them: %v, want FailedPrecondition naming %s", err, cfg.PinDir)
			}
			if probes, _ := filepath.Glob(filepath.Join(cfg.PinDir, ".probe-*")); len(probes) > 0 {
				t.Errorf("probes left: %v", probes)
			}
		})
	}
}
