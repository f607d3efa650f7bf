package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"skiff.dev/events/eventstest"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

func TestCommandArgsOverride(t *testing.T) {
	e := newEnv(t)
	pod := newPod(t, "args")
	// testbox's image has Entrypoint ["/testbox"] and Cmd ["sleep"].
	for _, tc := range []struct {
		name          string
		command, args []string
		want          string // printed by "testbox args"
	}{
		{name: "args-replace-cmd", args: []string{"args", "a b", "c"}, want: "a b\nc\n"},
		{name: "command-replaces-entrypoint", command: []string{"/testbox", "args", "from-command"}, want: "from-command\n"},
		{name: "command-and-args", command: []string{"/testbox", "args"}, args: []string{"x", "y"}, want: "x\ny\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, id := e.runPod(t, runtime.ContainerConfig{
				Pod: pod, Name: tc.name, Image: runtimetest.TestboxImage, Command: tc.command, Args: tc.args,
			})
			st := e.waitState(t, id, runtime.StateRunning, 10*time.Second)
			got := waitLog(t, st.LogPath, tc.want, 5*time.Second)
			if got != tc.want {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("image-default-cmd", func(t *testing.T) {
		_, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "default", Image: runtimetest.TestboxImage})
		st := e.waitState(t, id, runtime.StateRunning, 10*time.Second)
		// Right after start the process may still be between runc's init
		// and exec.
		eventstest.EventuallyErr(t, 5*time.Second, "argv is Entrypoint + Cmd", func() error {
			cmdline, _ := os.ReadFile(filepathProc(st.PID, "cmdline"))
			if got := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"); !slices.Equal(got, []string{"/testbox", "sleep"}) {
				return fmt.Errorf("argv %q", got)
			}
			return nil
		})
	})
}

func filepathProc(pid uint32, name string) string {
	return filepath.Join("/proc", strconv.FormatUint(uint64(pid), 10), name)
}

func TestEnvAndWorkingDir(t *testing.T) {
	e := newEnv(t)
	pod := newPod(t, "env-pod")
	_, id := e.runPod(t, runtime.ContainerConfig{
		Pod: pod, Name: "env", Image: runtimetest.TestboxImage, Args: []string{"env"},
		Env:        []string{"FOO=bar", "TESTBOX=overridden"},
		WorkingDir: "/work",
	})
	st := e.waitState(t, id, runtime.StateRunning, 10*time.Second)
	out := waitLog(t, st.LogPath, "PWD=", 5*time.Second)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range []string{
		"HOSTNAME=env-pod", "FOO=bar", "TESTBOX=overridden",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PWD=/work",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("environment lacks %s:\n%s", want, out)
		}
	}
	// The hostname (the sandbox's UTS namespace) is the pod name too.
	host, err := hostnameOf(st.PID)
	if err != nil {
		t.Fatal(err)
	}
	if host != "env-pod" {
		t.Errorf("hostname %q, want env-pod", host)
	}
}

func TestStopWithGracePeriod(t *testing.T) {
	e := newEnv(t)
	pod := newPod(t, "stop")
	_, trapID := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "trap", Image: runtimetest.TestboxImage, Args: []string{"trap-term"}})
	_, ignoreID := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "ignore", Image: runtimetest.TestboxImage, Args: []string{"ignore-term"}})
	for _, id := range []string{trapID, ignoreID} {
		st := e.waitState(t, id, runtime.StateRunning, 10*time.Second)
		waitLog(t, st.LogPath, "ready", 5*time.Second) // signal handling is set up
	}

	const grace = 2 * time.Second
	type result struct {
		st   runtime.ContainerStatus
		took time.Duration
		err  error
	}
	results := map[string]*result{trapID: {}, ignoreID: {}}
	var wg sync.WaitGroup
	for id, res := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			res.st, res.err = e.rt.StopContainer(ctxT(t, 30*time.Second), id, grace)
			res.took = time.Since(start)
		}()
	}
	wg.Wait()

	trap := results[trapID]
	if trap.err != nil {
		t.Fatalf("stop trapping container: %v", trap.err)
	}
	if trap.st.State != runtime.StateExited || trap.st.ExitCode != 0 || trap.took >= grace {
		t.Errorf("trapping container: state %s, exit %d after %v; want a clean exit 0 before the %v grace period",
			trap.st.State, trap.st.ExitCode, trap.took, grace)
	}
	if log, _ := os.ReadFile(trap.st.LogPath); !strings.Contains(string(log), "got SIGTERM") {
		t.Errorf("trapping container did not see SIGTERM; log %q", log)
	}
	ignore := results[ignoreID]
	if ignore.err != nil {
		t.Fatalf("stop ignoring container: %v", ignore.err)
	}
	if ignore.st.State != runtime.StateExited || ignore.st.ExitCode != 137 || ignore.took < grace {
		t.Errorf("ignoring container: state %s, exit %d after %v; want SIGKILL (137) after the %v grace period",
			ignore.st.State, ignore.st.ExitCode, ignore.took, grace)
	}
	if ignore.st.FinishedAt.Before(ignore.st.StartedAt) || ignore.st.OOMKilled {
		t.Errorf("ignoring container: started %v finished %v oom %v", ignore.st.StartedAt, ignore.st.FinishedAt, ignore.st.OOMKilled)
	}
	// Stopping again only reports.
	again, err := e.rt.StopContainer(ctxT(t, 5*time.Second), ignoreID, grace)
	if err != nil || again.ExitCode != 137 {
		t.Errorf("second stop: %+v, %v", again, err)
	}
}

func TestExitCodeAndEvents(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := e.rt.Watch(ctx)
	pod := newPod(t, "exit")
	_, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "exit3", Image: runtimetest.TestboxImage, Args: []string{"exit", "3"}})

	ev := watchFor(t, events, 10*time.Second, func(ev runtime.Event) bool {
		return ev.Type == runtime.EventExit && ev.ContainerID == id
	})
	if ev.ExitCode != 3 || ev.Pod != pod || ev.Name != "exit3" || ev.Kind != runtime.KindContainer || ev.ExitedAt.IsZero() {
		t.Errorf("exit event = %+v", ev)
	}
	st, err := e.rt.ContainerStatus(ctxT(t, 5*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateExited || st.ExitCode != 3 || st.OOMKilled || st.FinishedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("status = %+v", st)
	}
	// An exited container runs once; a restart is remove + create with
	// the next restart count, under the same ID.
	if err := e.rt.StartContainer(ctxT(t, 5*time.Second), id); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("StartContainer on an exited container = %v, want FailedPrecondition", err)
	}
	if err := e.rt.RemoveContainer(ctxT(t, 10*time.Second), id); err != nil {
		t.Fatal(err)
	}
	_, id2 := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "exit3", Image: runtimetest.TestboxImage,
		Args: []string{"exit", "4"}, RestartCount: 1})
	if id2 != id {
		t.Errorf("restarted container has ID %s, want %s", id2, id)
	}
	ev = watchFor(t, events, 10*time.Second, func(ev runtime.Event) bool {
		return ev.Type == runtime.EventExit && ev.ContainerID == id
	})
	st, _ = e.rt.ContainerStatus(ctxT(t, 5*time.Second), id)
	if ev.ExitCode != 4 || st.RestartCount != 1 || !strings.HasSuffix(st.LogPath, "/exit3/1.log") {
		t.Errorf("after restart: event %+v, status %+v", ev, st)
	}
}

func TestMemoryLimitOOMKilled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := e.rt.Watch(ctx)
	pod := newPod(t, "oom")
	_, id := e.runPod(t, runtime.ContainerConfig{
		Pod: pod, Name: "hog", Image: runtimetest.TestboxImage, Args: []string{"alloc", "256"},
		MemoryLimitBytes: 32 << 20, CPULimitMillis: 500,
	})
	watchFor(t, events, 30*time.Second, func(ev runtime.Event) bool {
		return ev.Type == runtime.EventExit && ev.ContainerID == id
	})
	st, err := e.rt.ContainerStatus(ctxT(t, 5*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateExited || !st.OOMKilled || st.ExitCode != 137 {
		t.Errorf("status = state %s exit %d oomKilled %v; want exited 137 OOM-killed", st.State, st.ExitCode, st.OOMKilled)
	}
	// A container within its limit is not reported OOM-killed.
	_, okID := e.runPod(t, runtime.ContainerConfig{
		Pod: pod, Name: "modest", Image: runtimetest.TestboxImage, Args: []string{"alloc", "4"},
		MemoryLimitBytes: 64 << 20, CPULimitMillis: 250,
	})
	okSt := e.waitState(t, okID, runtime.StateRunning, 10*time.Second)
	// The limits are in the container's cgroup.
	cg := e.ctd.CgroupParent + "/" + okID
	for _, c := range []struct{ v1, v2, want string }{
		{"cpu/" + cg + "/cpu.cfs_quota_us", cg + "/cpu.max", "25000"},
		{"cpu/" + cg + "/cpu.cfs_period_us", cg + "/cpu.max", "100000"},
		{"memory/" + cg + "/memory.limit_in_bytes", cg + "/memory.max", "67108864"},
	} {
		b, err := os.ReadFile("/sys/fs/cgroup/" + c.v1)
		if err != nil {
			b, err = os.ReadFile("/sys/fs/cgroup/" + c.v2)
		}
		if err != nil || !slices.Contains(strings.Fields(string(b)), c.want) {
			t.Errorf("cgroup %s = %q (%v), want %s", c.v1, b, err, c.want)
		}
	}
	waitLog(t, okSt.LogPath, "allocated 4 MiB", 10*time.Second)
	okSt, err = e.rt.StopContainer(ctxT(t, 10*time.Second), okID, 0)
	if err != nil || okSt.OOMKilled {
		t.Errorf("modest container: %+v, %v", okSt, err)
	}
}

func TestAlreadyExistsAndNotFound(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 30*time.Second)
	pod := newPod(t, "dup")
	cfg := runtime.ContainerConfig{Pod: pod, Name: "c", Image: runtimetest.TestboxImage}
	if _, err := e.rt.CreateContainer(ctx, cfg); !errdefs.IsNotFound(err) {
		t.Errorf("CreateContainer without a sandbox = %v, want NotFound", err)
	}
	e.runPod(t, cfg)
	if _, err := e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second CreateSandbox = %v, want AlreadyExists", err)
	}
	if _, err := e.rt.CreateContainer(ctx, cfg); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second CreateContainer = %v, want AlreadyExists", err)
	}
	cfg.RestartCount = 1
	if _, err := e.rt.CreateContainer(ctx, cfg); !errdefs.IsAlreadyExists(err) {
		t.Errorf("CreateContainer with the next restart count while the old one exists = %v, want AlreadyExists", err)
	}
	if _, err := e.rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: pod, Name: "other", Image: "skiff.dev/missing:v1"}); !errdefs.IsNotFound(err) {
		t.Errorf("CreateContainer with a missing image = %v, want NotFound", err)
	}
	if _, err := e.rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: pod, Name: "../x", Image: runtimetest.TestboxImage}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("CreateContainer with name ../x = %v, want InvalidArgument", err)
	}
	if _, err := e.rt.ContainerStatus(ctx, runtime.ContainerID(pod.UID, "nope")); !errdefs.IsNotFound(err) {
		t.Errorf("ContainerStatus of a missing container = %v, want NotFound", err)
	}
	if err := e.rt.RemoveContainer(ctx, runtime.ContainerID(pod.UID, "nope")); err != nil {
		t.Errorf("RemoveContainer of a missing container = %v, want nil", err)
	}
	if err := e.rt.StartContainer(ctx, runtime.ContainerID(pod.UID, "c")); err != nil {
		t.Errorf("StartContainer on a running container = %v, want nil", err)
	}
	if err := e.rt.RemoveSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveSandbox(ctx, pod); err != nil {
		t.Errorf("second RemoveSandbox = %v, want nil", err)
	}
	if _, err := e.rt.GetSandbox(ctx, pod.UID); !errdefs.IsNotFound(err) {
		t.Errorf("GetSandbox after removal = %v, want NotFound", err)
	}
}

// A pause sandbox's process runs without a seccomp filter unless SandboxSeccomp asks for one; app
// containers always have containerd's default profile. The kernel says which a process has
// (Seccomp: 0 none, 2 filter).
func TestSandboxSeccomp(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		sandboxSeccomp bool
		wantSandbox    string
	}{{false, "0"}, {true, "2"}} {
		t.Run(fmt.Sprintf("SandboxSeccomp=%v", tt.sandboxSeccomp), func(t *testing.T) {
			cfg := e.ctd.RuntimeConfig()
			cfg.Sandbox = runtime.SandboxPause
			cfg.SandboxSeccomp = tt.sandboxSeccomp
			rt, err := runtime.New(ctxT(t, 30*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			pe := &env{ctd: e.ctd, rt: rt}
			pod := newPod(t, "seccomp")
			sb, id := pe.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "app", Image: runtimetest.TestboxImage, Args: []string{"sleep"}})
			app := pe.waitState(t, id, runtime.StateRunning, 10*time.Second)
			for _, p := range []struct {
				what, exe string
				pid       uint32
				want      string
			}{{"sandbox", "/pause", sb.PID, tt.wantSandbox}, {"app container", "/testbox", app.PID, "2"}} {
				// A started container is running before its process has installed its filter
				// and executed its program (crun start does not wait): look once it has.
				eventstest.EventuallyErr(t, 10*time.Second, p.what+" executes "+p.exe, func() error {
					if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid)); err != nil || !strings.HasSuffix(exe, p.exe) {
						return fmt.Errorf("exe %q (%v)", exe, err)
					}
					return nil
				})
				if got := seccompMode(t, p.pid); got != p.want {
					t.Errorf("%s (pid %d): Seccomp %s, want %s", p.what, p.pid, got, p.want)
				}
			}
			if err := rt.RemoveSandbox(ctxT(t, 30*time.Second), pod); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// seccompMode is the Seccomp field of /proc/<pid>/status.
func seccompMode(t *testing.T, pid uint32) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Seccomp line in /proc/%d/status", pid)
	return ""
}
