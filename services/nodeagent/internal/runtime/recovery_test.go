package runtime_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/errdefs"

	"skiff.dev/events/eventstest"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

func TestContainersSurviveContainerdRestart(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := e.rt.Watch(ctx)
	pod := newPod(t, "survivor")
	sb, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "echo", Image: runtimetest.EchoImage})
	if err := loopbackUp(sb); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, sb, "/before", "survivor /before\n")
	before := e.waitState(t, id, runtime.StateRunning, 5*time.Second)
	_, tickID := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "tick", Image: runtimetest.TestboxImage, Args: []string{"tick"}})
	tick := e.waitState(t, tickID, runtime.StateRunning, 5*time.Second)

	e.ctd.Kill()
	// With the daemon gone the pod still serves, and logs: the shims hold
	// the processes and write the log files.
	waitHTTP(t, sb, "/during", "survivor /during\n")
	waitLogGrows(t, tick.LogPath)
	if _, err := e.rt.ContainerStatus(ctxT(t, 5*time.Second), id); !errdefs.IsUnavailable(err) {
		t.Errorf("ContainerStatus with containerd down = %v, want Unavailable", err)
	}
	e.ctd.Start()

	// The same Runtime reconnects, and the event stream says it missed
	// events.
	watchFor(t, events, 30*time.Second, func(ev runtime.Event) bool { return ev.Type == runtime.EventResync })
	after := e.waitState(t, id, runtime.StateRunning, 30*time.Second)
	if after.PID != before.PID {
		t.Errorf("container PID changed across the restart: %d → %d", before.PID, after.PID)
	}
	got, err := e.rt.GetSandbox(ctxT(t, 5*time.Second), pod.UID)
	if err != nil || got.PID != sb.PID || got.State != runtime.StateRunning {
		t.Errorf("sandbox after restart = %+v, %v; want running with PID %d", got, err, sb.PID)
	}
	waitHTTP(t, sb, "/after", "survivor /after\n")

	// Exits after the restart arrive on the re-established stream.
	if _, err := e.rt.StopContainer(ctxT(t, 20*time.Second), id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ev := watchFor(t, events, 10*time.Second, func(ev runtime.Event) bool {
		return ev.Type == runtime.EventExit && ev.ContainerID == id
	})
	if ev.ExitCode != 0 {
		t.Errorf("echo exited %d after SIGTERM, want 0", ev.ExitCode)
	}
}

func TestListAdoptsAfterRuntimeRestart(t *testing.T) {
	e := newEnv(t)
	pod := newPod(t, "adopt")
	sb, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "app", Image: runtimetest.TestboxImage, Args: []string{"tick"}, RestartCount: 2})
	running := e.waitState(t, id, runtime.StateRunning, 10*time.Second)
	events := e.rt.Watch(context.Background())
	e.rt.Close()
	for range events { // Close ends the stream
	}
	// No agent: the container's output still reaches its log file.
	waitLogGrows(t, running.LogPath)

	// A new agent process: a new Runtime on the same containerd.
	rt := e.ctd.NewRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List = %d entries, want the sandbox and the container: %+v", len(list), list)
	}
	gotSB, gotApp := list[0], list[1]
	if gotSB.Kind != runtime.KindSandbox || gotSB.ID != sb.ID || gotSB.Pod != pod || gotSB.State != runtime.StateRunning || gotSB.PID != sb.PID {
		t.Errorf("sandbox entry = %+v", gotSB)
	}
	if gotApp.Kind != runtime.KindContainer || gotApp.ID != id || gotApp.Pod != pod || gotApp.Name != "app" ||
		gotApp.RestartCount != 2 || gotApp.State != runtime.StateRunning || gotApp.PID != running.PID ||
		gotApp.StartedAt.IsZero() || !strings.HasSuffix(gotApp.LogPath, "/app/2.log") {
		t.Errorf("container entry = %+v", gotApp)
	}
	// Adopting: creating it again finds it, starting it is a no-op.
	if _, err := rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: pod, Name: "app", Image: runtimetest.TestboxImage, RestartCount: 2}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("CreateContainer of an adopted container = %v, want AlreadyExists", err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Errorf("StartContainer of an adopted running container = %v", err)
	}
	if st, _ := rt.ContainerStatus(ctx, id); st.PID != running.PID || st.RestartCount != 2 {
		t.Errorf("after adoption: %+v", st)
	}
	// And a pod no longer bound is removed whole.
	if err := rt.RemoveSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if list, _ := rt.List(ctx); len(list) != 0 {
		t.Errorf("List after RemoveSandbox = %+v", list)
	}
	if _, err := os.Stat(running.LogPath); !os.IsNotExist(err) {
		t.Errorf("pod logs survive RemoveSandbox: %v", err)
	}
}

func waitLogGrows(t *testing.T, path string) {
	t.Helper()
	fi, _ := os.Stat(path)
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	eventstest.EventuallyErr(t, 5*time.Second, "log "+path+" grows", func() error {
		fi, err := os.Stat(path)
		if err == nil && fi.Size() <= size {
			err = fmt.Errorf("%d bytes", fi.Size())
		}
		return err
	})
}

func TestLogRotation(t *testing.T) {
	runtimetest.RequireRoot(t)
	imgs := runtimetest.Images(t)
	ctd := runtimetest.StartContainerd(t)
	cfg := ctd.RuntimeConfig()
	cfg.LogMaxBytes = 1 << 10
	cfg.LogMaxFiles = 3
	rt, err := runtime.New(ctxT(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	importImage(t, rt, imgs.Testbox)
	e := &env{ctd: ctd, rt: rt}

	pod := newPod(t, "chatty")
	_, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "tick", Image: runtimetest.TestboxImage, Args: []string{"tick"}})
	st := e.waitState(t, id, runtime.StateRunning, 10*time.Second)
	ctx := ctxT(t, time.Minute)

	for round := 1; round <= 3; round++ {
		eventstest.EventuallyErr(t, 20*time.Second, "log outgrows the limit", func() error {
			fi, err := os.Stat(st.LogPath)
			if err == nil && fi.Size() <= cfg.LogMaxBytes {
				err = fmt.Errorf("%s has %d bytes", fi.Name(), fi.Size())
			}
			return err
		})
		if err := rt.RotateLogs(ctx); err != nil {
			t.Fatal(err)
		}
		// The shim writes on into the truncated file from its start:
		// the file must not begin with a hole (zero bytes) where the old
		// content was.
		eventstest.EventuallyErr(t, 5*time.Second, "new lines after rotation", func() error {
			if b, _ := os.ReadFile(st.LogPath); !strings.Contains(string(b), "tick ") {
				return fmt.Errorf("log: %q", b)
			}
			return nil
		})
		b, _ := os.ReadFile(st.LogPath)
		if b[0] == 0 || int64(len(b)) > cfg.LogMaxBytes {
			t.Fatalf("round %d: live log after rotation starts %q and has %d bytes", round, b[:min(len(b), 16)], len(b))
		}
	}
	for _, suffix := range []string{".1", ".2"} {
		b, err := os.ReadFile(st.LogPath + suffix)
		if err != nil || !strings.HasPrefix(string(b), "tick ") {
			t.Errorf("rotated file %s: %v, starts %q", suffix, err, b[:min(len(b), 16)])
		}
	}
	if _, err := os.Stat(st.LogPath + ".3"); !os.IsNotExist(err) {
		t.Errorf("more than LogMaxFiles files kept: %v", err)
	}
}

func TestCreateDeleteCyclesLeakNothing(t *testing.T) {
	e := newEnv(t)
	client := e.ctd.Client(t)
	ctx := ctxT(t, 5*time.Minute)
	nsCtx := namespaces.WithNamespace(ctx, e.rt.Namespace())
	countSnapshots := func() int {
		n := 0
		client.SnapshotService(e.rt.Snapshotter()).Walk(nsCtx, func(context.Context, snapshots.Info) error { n++; return nil })
		return n
	}
	baseSnapshots, baseMounts := countSnapshots(), len(e.ctd.Mounts())

	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	for i := range cycles {
		pod := newPod(t, "cycle")
		_, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "c", Image: runtimetest.TestboxImage})
		if i%2 == 0 { // half stopped gracefully first, half removed running
			if _, err := e.rt.StopContainer(ctx, id, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.rt.RemoveSandbox(ctx, pod); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}

	if ctrs, err := client.Containers(nsCtx); err != nil || len(ctrs) != 0 {
		t.Errorf("containers left: %d (%v)", len(ctrs), err)
	}
	tasks, err := client.TaskService().List(nsCtx, &tasks.ListTasksRequest{})
	if err != nil || len(tasks.Tasks) != 0 {
		t.Errorf("tasks left: %v (%v)", tasks, err)
	}
	if n := countSnapshots(); n != baseSnapshots {
		t.Errorf("snapshots: %d after the cycles, %d before", n, baseSnapshots)
	}
	if m := e.ctd.Mounts(); len(m) != baseMounts {
		t.Errorf("mounts under the containerd dir: %d after, %d before: %v", len(m), baseMounts, m)
	}
	eventstest.EventuallyErr(t, 10*time.Second, "no shim left", func() error {
		if pids := e.ctd.ShimPIDs(); len(pids) != 0 {
			return fmt.Errorf("shims %v", pids)
		}
		return nil
	})
	if logs, _ := os.ReadDir(e.ctd.RuntimeConfig().LogDir); len(logs) != 0 {
		t.Errorf("%d pod log directories left", len(logs))
	}
}
