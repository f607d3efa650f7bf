package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/singleflight"
	clocktesting "k8s.io/utils/clock/testing"

	"skiff.dev/events"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/work"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const echo = "skiff.dev/echo:v1"

// withPullPolicy sets every container's imagePullPolicy.
func withPullPolicy(p events.Pod, policy string) events.Pod {
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].ImagePullPolicy = policy
	}
	return p
}

// testPod is a pod bound to node n1 whose containers run the echo image.
func testPod(name string, containers ...string) events.Pod {
	p := events.Pod{
		Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name},
		Spec:     events.PodSpec{NodeName: "n1"},
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, events.Container{Name: c, Image: echo})
	}
	return p
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// summary is a pod status in one line: "Running ip=10.88.0.2 app=running side=waiting:X".
func summary(st events.PodStatus) string {
	parts := []string{st.Phase}
	if st.PodIP != "" {
		parts = append(parts, "ip="+st.PodIP)
	}
	for _, c := range st.ContainerStatuses {
		parts = append(parts, containerSummary(c))
	}
	return strings.Join(parts, " ")
}

// containerSummary is one container's part of summary: "app=running(restarts=2)".
func containerSummary(c events.ContainerStatus) string {
	s := c.Name + "="
	switch {
	case c.State.Running != nil:
		s += "running"
	case c.State.Waiting != nil:
		s += "waiting:" + c.State.Waiting.Reason
	case c.State.Terminated != nil:
		s += "terminated:" + c.State.Terminated.Reason
	}
	if c.RestartCount > 0 {
		s += fmt.Sprintf("(restarts=%d)", c.RestartCount)
	}
	return s
}

// workerHarness runs one worker's passes by hand against fakes and a fake clock.
type workerHarness struct {
	t      *testing.T
	ctx    context.Context
	clock  *clocktesting.FakeClock
	calls  *callLog
	rt     *fakeRuntime
	net    *fakeNetwork
	status *statusRecorder
	env    *workerEnv
}

func newWorkerHarness(t *testing.T) *workerHarness {
	clk := clocktesting.NewFakeClock(t0)
	calls := &callLog{}
	h := &workerHarness{
		t: t, ctx: t.Context(), clock: clk, calls: calls,
		rt:     newFakeRuntime(clk, calls),
		net:    newFakeNetwork(netip.MustParsePrefix("10.88.0.0/24"), calls),
		status: &statusRecorder{},
	}
	h.env = &workerEnv{
		runtime: h.rt, images: h.rt, store: fakeImageStore{}, net: h.net, status: h.status, clock: clk,
		backoff: DefaultBackoff, imageRetry: 10 * time.Second, imports: &singleflight.Group{},
	}
	var err error
	if h.env.metrics, err = NewMetrics(nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *workerHarness) worker(p events.Pod) *worker {
	h.rt.learn(p)
	return newWorker(h.env, testLogger(h.t), &work.Pod{Pod: p})
}

// run runs w on its own goroutine until it returns or the test ends, and returns what run
// returned.
func (h *workerHarness) run(w *worker) <-chan bool {
	ctx, cancel := context.WithCancel(h.ctx)
	done, stopped := make(chan struct{}), make(chan bool, 1)
	go func() {
		defer close(done)
		stopped <- w.run(ctx)
	}()
	h.t.Cleanup(func() { cancel(); <-done })
	return stopped
}

// sync runs one pass of w over p and returns when it wants to look again, relative to now.
func (h *workerHarness) sync(w *worker, p events.Pod) (time.Duration, error) {
	next, err := w.sync(h.ctx, work.Pod{Pod: p})
	if next.IsZero() {
		return 0, err
	}
	return next.Sub(h.clock.Now()), err
}

// mustSync is sync for a pass that must not fail.
func (h *workerHarness) mustSync(w *worker, p events.Pod) time.Duration {
	h.t.Helper()
	next, err := h.sync(w, p)
	if err != nil {
		h.t.Fatalf("sync: %v", err)
	}
	return next
}

func TestWorkerSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		// pod is the pod to sync; web with one container app unless set.
		pod   events.Pod
		setup func(h *workerHarness, p events.Pod)
		// calls are what the pass asked of the runtime and the network, in order.
		calls   []string
		status  string
		message string // in the first container's waiting message
		next    time.Duration
		err     bool
	}{{
		name:  "new pod: sandbox, network, then each container created and started",
		pod:   testPod("web", "app", "side"),
		setup: func(h *workerHarness, p events.Pod) { h.rt.addImage(echo) },
		calls: []string{
			"CreateSandbox web", "Setup uid-web /proc/1001/ns/net",
			"CreateContainer web/app restart=0", "StartContainer web/app",
			"CreateContainer web/side restart=0", "StartContainer web/side",
		},
		status: "Running ip=10.88.0.2 app=running side=running",
	}, {
		name: "running sandbox and containers are adopted as they are",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.putSandbox(p, runtime.StateRunning)
			h.rt.putContainer(p, "app", runtime.StateRunning, 2)
		},
		// The network is set up once per sandbox, and that is idempotent.
		calls:  []string{"Setup uid-web /proc/1001/ns/net"},
		status: "Running ip=10.88.0.2 app=running(restarts=2)",
	}, {
		name: "stale sandbox, created and never started, is replaced",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.putSandbox(p, runtime.StateCreated)
		},
		calls: []string{
			"StopContainer web/app grace=0s", "RemoveContainer web/app", `Teardown uid-web ""`,
			"CreateSandbox web", "Setup uid-web /proc/1001/ns/net",
			"CreateContainer web/app restart=0", "StartContainer web/app",
		},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name: "dead sandbox: containers removed, pod started over in a new one",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.putSandbox(p, runtime.StateExited)
			h.rt.putContainer(p, "app", runtime.StateExited, 0)
		},
		calls: []string{
			"StopContainer web/app grace=0s", "RemoveContainer web/app", `Teardown uid-web ""`,
			"CreateSandbox web", "Setup uid-web /proc/1001/ns/net",
			"CreateContainer web/app restart=0", "StartContainer web/app",
		},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name: "container created but never started (agent died in between) is started",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.putSandbox(p, runtime.StateRunning)
			h.rt.putContainer(p, "app", runtime.StateCreated, 0)
		},
		calls:  []string{"Setup uid-web /proc/1001/ns/net", "StartContainer web/app"},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name: "image missing on the node is imported from the cluster's image store",
		setup: func(h *workerHarness, p events.Pod) {
			h.env.store = fakeImageStore{echo: echo}
		},
		calls: []string{
			"CreateSandbox web", "Setup uid-web /proc/1001/ns/net",
			"ImportImage " + echo, "CreateContainer web/app restart=0", "StartContainer web/app",
		},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name: "image the cluster's store does not have is pulled from its registry",
		pod: func() events.Pod {
			p := testPod("web", "app")
			p.Spec.Containers[0].Image = "nginx"
			return p
		}(),
		calls: []string{
			"CreateSandbox web", "Setup uid-web /proc/1001/ns/net",
			"PullImage docker.io/library/nginx:latest", "CreateContainer web/app restart=0", "StartContainer web/app",
		},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name:  "cluster's image store unavailable: pulled from the registry",
		setup: func(h *workerHarness, p events.Pod) { h.env.store = nil },
		calls: []string{
			"CreateSandbox web", "Setup uid-web /proc/1001/ns/net",
			"PullImage " + echo, "CreateContainer web/app restart=0", "StartContainer web/app",
		},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name:    "image nowhere: reported, and looked for again after ImageRetry",
		setup:   func(h *workerHarness, p events.Pod) { h.rt.fail("PullImage", 1, errUnavailable) },
		calls:   []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "PullImage " + echo},
		status:  "Pending ip=10.88.0.2 app=waiting:ErrImageNotFound",
		message: "it was never imported into the cluster (skiff image import FILE.tar), and pulling it from its registry failed",
		next:    10 * time.Second,
	}, {
		name: "image store's tarball that does not import is reported",
		setup: func(h *workerHarness, p events.Pod) {
			h.env.store = fakeImageStore{echo: ""}
		},
		calls:   []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "ImportImage "},
		status:  "Pending ip=10.88.0.2 app=waiting:ErrImageNotFound",
		message: "import image " + echo,
		next:    10 * time.Second,
	}, {
		name: "pull policy Never, image on the node: used, nothing fetched",
		pod:  withPullPolicy(testPod("web", "app"), events.PullNever),
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.env.store = fakeImageStore{echo: echo}
		},
		calls:  []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "CreateContainer web/app restart=0", "StartContainer web/app"},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name:    "pull policy Never, image missing: ErrImageNeverPull, nothing fetched though the store has it",
		pod:     withPullPolicy(testPod("web", "app"), events.PullNever),
		setup:   func(h *workerHarness, p events.Pod) { h.env.store = fakeImageStore{echo: echo} },
		calls:   []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net"},
		status:  "Pending ip=10.88.0.2 app=waiting:ErrImageNeverPull",
		message: `container image "` + echo + `" is not present with pull policy of Never`,
		next:    10 * time.Second,
	}, {
		name: "pull policy Always, the node's copy came from the store's tarball: used as it is",
		pod:  withPullPolicy(testPod("web", "app"), events.PullAlways),
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.labels[echo] = map[string]string{labelStoreDigest: "digest of " + echo}
			h.env.store = fakeImageStore{echo: echo}
		},
		calls:  []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "CreateContainer web/app restart=0", "StartContainer web/app"},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name: "pull policy Always, the store's tarball changed: imported again and remembered",
		pod:  withPullPolicy(testPod("web", "app"), events.PullAlways),
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.labels[echo] = map[string]string{labelStoreDigest: "digest of an older tarball"}
			h.env.store = fakeImageStore{echo: echo}
		},
		calls: []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "ImportImage " + echo,
			"SetImageLabel " + echo + " " + labelStoreDigest + "=digest of " + echo,
			"CreateContainer web/app restart=0", "StartContainer web/app"},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name: "pull policy Always, not in the store: pulled from the registry though on the node",
		pod:  withPullPolicy(testPod("web", "app"), events.PullAlways),
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
		},
		calls:  []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "PullImage " + echo, "CreateContainer web/app restart=0", "StartContainer web/app"},
		status: "Running ip=10.88.0.2 app=running",
	}, {
		name:    "pull policy Always, registry unreachable: the start fails though the node has the image",
		pod:     withPullPolicy(testPod("web", "app"), events.PullAlways),
		setup:   func(h *workerHarness, p events.Pod) { h.rt.addImage(echo); h.rt.fail("PullImage", 1, errUnavailable) },
		calls:   []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "PullImage " + echo},
		status:  "Pending ip=10.88.0.2 app=waiting:ErrImageNotFound",
		message: "has pull policy Always and is not in the cluster's image store, and pulling it from its registry failed",
		next:    10 * time.Second,
	}, {
		name:    "sandbox that cannot be created: every container waits, and the pass fails",
		setup:   func(h *workerHarness, p events.Pod) { h.rt.fail("CreateSandbox", 1, errUnavailable) },
		calls:   []string{"CreateSandbox web"},
		status:  "Pending app=waiting:ContainerCreating",
		message: "create sandbox: injected failure",
		err:     true,
	}, {
		name: "network that cannot be set up",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.net.fail("Setup", 1, errUnavailable)
		},
		calls:   []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net"},
		status:  "Pending app=waiting:NetworkNotReady",
		message: "injected failure",
		err:     true,
	}, {
		name: "container that cannot be created is tried again a second later",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.fail("CreateContainer", 1, errUnavailable)
		},
		calls:   []string{"CreateSandbox web", "Setup uid-web /proc/1001/ns/net", "CreateContainer web/app restart=0"},
		status:  "Pending ip=10.88.0.2 app=waiting:CreateContainerError",
		message: "injected failure",
		next:    time.Second,
	}, {
		name: "container that does not start",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.addImage(echo)
			h.rt.fail("StartContainer", 1, errUnavailable)
		},
		calls: []string{
			"CreateSandbox web", "Setup uid-web /proc/1001/ns/net",
			"CreateContainer web/app restart=0", "StartContainer web/app",
		},
		status: "Pending ip=10.88.0.2 app=waiting:CreateContainerError",
		next:   time.Second,
	}, {
		name: "containerd cannot say how a container is",
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.putSandbox(p, runtime.StateRunning)
			h.rt.fail("ContainerStatus", 1, errUnavailable)
		},
		calls:  []string{"Setup uid-web /proc/1001/ns/net"},
		status: "Pending ip=10.88.0.2 app=waiting:CreateContainerError",
		next:   time.Second,
	}, {
		name: "restartPolicy Never: a failed container stays failed",
		pod: func() events.Pod {
			p := testPod("web", "app")
			p.Spec.RestartPolicy = events.RestartNever
			return p
		}(),
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.putSandbox(p, runtime.StateRunning)
			h.rt.putContainer(p, "app", runtime.StateExited, 0)
		},
		calls:  []string{"Setup uid-web /proc/1001/ns/net"},
		status: "Failed ip=10.88.0.2 app=terminated:Error",
	}, {
		name: "restartPolicy OnFailure: a container that completed is done",
		pod: func() events.Pod {
			p := testPod("web", "app")
			p.Spec.RestartPolicy = events.RestartOnFailure
			return p
		}(),
		setup: func(h *workerHarness, p events.Pod) {
			h.rt.putSandbox(p, runtime.StateRunning)
			h.rt.putContainer(p, "app", runtime.StateRunning, 0)
			h.rt.exitSilently(h.t, p.Metadata.UID, "app", 0)
		},
		calls:  []string{"Setup uid-web /proc/1001/ns/net"},
		status: "Succeeded ip=10.88.0.2 app=terminated:Completed",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newWorkerHarness(t)
			p := tc.pod
			if p.Metadata.Name == "" {
				p = testPod("web", "app")
			}
			w := h.worker(p)
			if tc.setup != nil {
				tc.setup(h, p)
			}
			before := h.calls.len()
			next, err := h.sync(w, p)
			if (err != nil) != tc.err {
				t.Errorf("sync error = %v, want error: %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.calls, h.calls.since(before)); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			st := h.status.last(t)
			if got := summary(st); got != tc.status {
				t.Errorf("status = %q, want %q", got, tc.status)
			}
			if w := st.ContainerStatuses[0].State.Waiting; tc.message != "" && (w == nil || !strings.Contains(w.Message, tc.message)) {
				t.Errorf("waiting = %+v, want a message with %q", w, tc.message)
			}
			if next != tc.next {
				t.Errorf("next pass in %v, want %v", next, tc.next)
			}
		})
	}
}

// TestWorkerCrashLoopBackOff follows one container through crashes on the fake clock: each
// restart waits the back-off, which doubles, and a long run resets it.
func TestWorkerCrashLoopBackOff(t *testing.T) {
	h := newWorkerHarness(t)
	h.rt.addImage(echo)
	p := testPod("web", "app")
	w := h.worker(p)
	h.mustSync(w, p)
	first, _ := h.rt.container(p.Metadata.UID, "app")

	h.clock.Step(5 * time.Second)
	h.rt.crash(t, p.Metadata.UID, "app", 1)
	before := h.calls.len()
	if next := h.mustSync(w, p); next != 10*time.Second {
		t.Fatalf("after the first crash the next pass is in %v, want the back-off 10s", next)
	}
	st := h.status.last(t)
	if got := summary(st); got != "Running ip=10.88.0.2 app=waiting:CrashLoopBackOff" {
		t.Errorf("status = %q", got)
	}
	c := st.ContainerStatuses[0]
	if want := "back-off 10s restarting failed container=app pod=web_default(uid-web)"; c.State.Waiting.Message != want {
		t.Errorf("message = %q, want %q", c.State.Waiting.Message, want)
	}
	if l := c.LastTerminationState.Terminated; l == nil || l.ExitCode != 1 || l.Reason != "Error" || !l.FinishedAt.Equal(t0.Add(5*time.Second)) {
		t.Errorf("last termination = %+v, want exit 1 (Error) at t0+5s", l)
	}

	// A second before the back-off ends nothing happens, and nothing new is reported.
	h.clock.Step(9 * time.Second)
	reports := len(h.status.reports())
	if next := h.mustSync(w, p); next != time.Second {
		t.Errorf("a second before the back-off ends the next pass is in %v, want 1s", next)
	}
	if got := h.calls.since(before); len(got) != 0 {
		t.Errorf("calls during the back-off: %v", got)
	}
	if n := len(h.status.reports()); n != reports {
		t.Errorf("%d reports of an unchanged status", n-reports)
	}

	// When it ends: a new container of the same name and ID, restart count 1.
	h.clock.Step(time.Second)
	if next := h.mustSync(w, p); next != 0 {
		t.Errorf("after the restart the next pass is in %v, want none", next)
	}
	want := []string{"RemoveContainer web/app", "CreateContainer web/app restart=1", "StartContainer web/app"}
	if diff := cmp.Diff(want, h.calls.since(before)); diff != "" {
		t.Errorf("restart calls (-want +got):\n%s", diff)
	}
	second, _ := h.rt.container(p.Metadata.UID, "app")
	if second.status.ID != first.status.ID || second.config.RestartCount != 1 || !second.status.StartedAt.Equal(t0.Add(15*time.Second)) {
		t.Errorf("restarted container %s restart %d started %v; want %s restart 1 started t0+15s",
			second.status.ID, second.config.RestartCount, second.status.StartedAt, first.status.ID)
	}
	st = h.status.last(t)
	if got := summary(st); got != "Running ip=10.88.0.2 app=running(restarts=1)" {
		t.Errorf("status = %q", got)
	}
	if l := st.ContainerStatuses[0].LastTerminationState.Terminated; l == nil || l.ExitCode != 1 {
		t.Errorf("last termination after the restart = %+v, want the crash's", l)
	}

	// It crashes again at once: the back-off doubles.
	h.clock.Step(2 * time.Second)
	h.rt.crash(t, p.Metadata.UID, "app", 2)
	if next := h.mustSync(w, p); next != 20*time.Second {
		t.Errorf("after the second crash the next pass is in %v, want 20s", next)
	}
	h.clock.Step(20 * time.Second)
	h.mustSync(w, p)
	// Ten minutes of running resets it.
	h.clock.Step(10 * time.Minute)
	h.rt.crash(t, p.Metadata.UID, "app", 1)
	if next := h.mustSync(w, p); next != 10*time.Second {
		t.Errorf("after a long run the next pass is in %v, want the base back-off 10s", next)
	}
	if got := summary(h.status.last(t)); got != "Running ip=10.88.0.2 app=waiting:CrashLoopBackOff(restarts=2)" {
		t.Errorf("status = %q", got)
	}
}

// TestWorkerResumesFromReport: a worker of an agent that restarted resumes the restart counts
// and last terminations from what the node reported, and reports nothing while nothing changed.
func TestWorkerResumesFromReport(t *testing.T) {
	h := newWorkerHarness(t)
	h.rt.addImage(echo)
	p := testPod("web", "app")
	w := h.worker(p)
	h.mustSync(w, p)
	h.clock.Step(time.Minute)
	h.rt.crash(t, p.Metadata.UID, "app", 1)
	h.mustSync(w, p)
	h.clock.Step(time.Minute)
	h.mustSync(w, p)
	reported := h.status.last(t)
	if got := summary(reported); got != "Running ip=10.88.0.2 app=running(restarts=1)" {
		t.Fatalf("status = %q", got)
	}

	// A new agent: a new worker from the log's view, with the containers as they are.
	before, reports := h.calls.len(), len(h.status.reports())
	w2 := newWorker(h.env, testLogger(t), &work.Pod{Pod: p, Reported: &reported})
	h.mustSync(w2, p)
	if diff := cmp.Diff([]string{"Setup uid-web /proc/1001/ns/net"}, h.calls.since(before)); diff != "" {
		t.Errorf("calls of the new worker (-want +got):\n%s", diff)
	}
	if n := len(h.status.reports()); n != reports {
		t.Errorf("the new worker reported %d times; the status did not change", n-reports)
	}
	// Its next restart counts on from the report.
	h.rt.crash(t, p.Metadata.UID, "app", 1)
	h.clock.Step(time.Hour)
	h.mustSync(w2, p)
	h.clock.Step(time.Hour)
	h.mustSync(w2, p)
	if got := summary(h.status.last(t)); got != "Running ip=10.88.0.2 app=running(restarts=2)" {
		t.Errorf("status = %q", got)
	}
}

// TestWorkerStop: a pod asked to stop has its containers stopped with the grace period given,
// then removed, its network torn down while the sandbox still holds the namespace, the sandbox
// removed, and PodTerminated reported.
func TestWorkerStop(t *testing.T) {
	h := newWorkerHarness(t)
	h.rt.addImage(echo)
	p := testPod("web", "app", "side")
	w := h.worker(p)
	h.mustSync(w, p)
	ip := h.status.last(t).PodIP

	h.rt.fail("StopContainer", 1, errUnavailable)
	if err := w.stop(h.ctx, work.Pod{Pod: p, StopRequested: true, GracePeriodSeconds: 30}); err == nil {
		t.Fatal("stop succeeded although a container could not be stopped")
	}
	if h.status.terminated() {
		t.Fatal("PodTerminated reported although a container could not be stopped")
	}
	if _, held := h.net.ip(p.Metadata.UID); !held {
		t.Fatal("IP released although a container could not be stopped")
	}

	before := h.calls.len()
	if err := w.stop(h.ctx, work.Pod{Pod: p, StopRequested: true, GracePeriodSeconds: 30}); err != nil {
		t.Fatalf("stop: %v", err)
	}
	calls := h.calls.since(before)
	if len(calls) != 6 {
		t.Fatalf("calls = %v", calls)
	}
	// Containers stop in parallel.
	stops := slices.Sorted(slices.Values(calls[:4]))
	want := []string{"RemoveContainer web/app", "RemoveContainer web/side", "StopContainer web/app grace=30s", "StopContainer web/side grace=30s"}
	if diff := cmp.Diff(want, stops); diff != "" {
		t.Errorf("container calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{`Teardown uid-web "/proc/1001/ns/net"`, "RemoveSandbox web"}, calls[4:]); diff != "" {
		t.Errorf("pod calls (-want +got):\n%s", diff)
	}
	if !h.status.terminated() {
		t.Error("no PodTerminated reported")
	}
	if got, held := h.net.ip(p.Metadata.UID); held {
		t.Errorf("pod still holds IP %s (was %s)", got, ip)
	}
	if left := h.rt.podsLeft(); len(left) != 0 {
		t.Errorf("left in containerd: %v", left)
	}
}

// TestWorkerRun runs a worker on its own goroutine: an image that cannot be fetched is looked
// for again every ImageRetry of the fake clock, and a stop request ends the worker.
func TestWorkerRun(t *testing.T) {
	h := newWorkerHarness(t)
	h.env.store = nil
	h.rt.fail("PullImage", 3, errUnavailable)
	p := testPod("web", "app")
	w := h.worker(p)
	w.update(work.Pod{Pod: p})
	done := h.run(w)

	eventually(t, "the missing image reported", func() bool {
		rs := h.status.reports()
		return len(rs) > 0 && summary(rs[len(rs)-1]) == "Pending ip=10.88.0.2 app=waiting:ErrImageNotFound"
	})
	eventually(t, "the pod running once the image could be pulled", func() bool {
		h.clock.Step(time.Second)
		rs := h.status.reports()
		return summary(rs[len(rs)-1]) == "Running ip=10.88.0.2 app=running"
	})
	// Three failed pulls, then one that works: at least two of the retries waited ImageRetry
	// (the first may follow at once, woken by the update that started the worker).
	if n := h.calls.count("PullImage"); n != 4 {
		t.Errorf("%d pulls, want 4", n)
	}
	if waited := h.clock.Since(t0); waited < 20*time.Second {
		t.Errorf("the pod ran %v after it was bound, want two ImageRetry (20s) at least", waited)
	}

	w.update(work.Pod{Pod: p, StopRequested: true})
	select {
	case stopped := <-done:
		if !stopped {
			t.Error("run returned false after stopping the pod")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not end after stopping its pod")
	}
	if !h.status.terminated() {
		t.Error("no PodTerminated reported")
	}
}

// TestWorkerStartsFromItsPod: a worker's first pass syncs the pod it was made for, even before
// any update hands it the pod.
func TestWorkerStartsFromItsPod(t *testing.T) {
	h := newWorkerHarness(t)
	h.rt.addImage(echo)
	p := testPod("web", "app")
	w := h.worker(p)
	h.run(w)
	eventually(t, "web running", func() bool {
		rs := h.status.reports()
		return len(rs) > 0 && summary(rs[len(rs)-1]) == "Running ip=10.88.0.2 app=running"
	})
	if first := h.status.reports()[0]; len(first.ContainerStatuses) != 1 {
		t.Errorf("first report %+v, want one of the pod's container", first)
	}
}

func TestContainerConfig(t *testing.T) {
	ref := runtime.PodRef{UID: "u", Name: "web", Namespace: "default"}
	for _, tc := range []struct {
		name string
		c    events.Container
		want runtime.ContainerConfig
		err  bool
	}{{
		name: "command, args, env and working directory",
		c: events.Container{Name: "app", Command: []string{"/echo"}, Args: []string{"-port", "8080"}, WorkingDir: "/srv",
			Env: []events.EnvVar{{Name: "A", Value: "1"}, {Name: "B"}}},
		want: runtime.ContainerConfig{Pod: ref, Name: "app", Image: echo, Command: []string{"/echo"}, Args: []string{"-port", "8080"},
			WorkingDir: "/srv", Env: []string{"A=1", "B="}, RestartCount: 3},
	}, {
		name: "resources",
		c: events.Container{Name: "app", Resources: events.ResourceRequirements{
			Limits: events.ResourceList{"cpu": "500m", "memory": "64Mi"}, Requests: events.ResourceList{"cpu": "0.25"}}},
		want: runtime.ContainerConfig{Pod: ref, Name: "app", Image: echo, RestartCount: 3,
			CPULimitMillis: 500, CPURequestMillis: 250, MemoryLimitBytes: 64 << 20},
	}, {
		name: "env from the pod's fields and resources",
		c: events.Container{Name: "app", Resources: events.ResourceRequirements{Limits: events.ResourceList{"memory": "64Mi"}},
			Env: []events.EnvVar{
				{Name: "POD", ValueFrom: &events.EnvVarSource{FieldRef: &events.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "NS", ValueFrom: &events.EnvVarSource{FieldRef: &events.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				{Name: "IP", ValueFrom: &events.EnvVarSource{FieldRef: &events.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "HOST", ValueFrom: &events.EnvVarSource{FieldRef: &events.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
				{Name: "NODE", ValueFrom: &events.EnvVarSource{FieldRef: &events.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				{Name: "APP", ValueFrom: &events.EnvVarSource{FieldRef: &events.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
				{Name: "MEM_MI", ValueFrom: &events.EnvVarSource{ResourceFieldRef: &events.ResourceFieldSelector{Resource: "limits.memory", Divisor: "1Mi"}}},
				{Name: "CPUS", ValueFrom: &events.EnvVarSource{ResourceFieldRef: &events.ResourceFieldSelector{Resource: "limits.cpu"}}},
			}},
		want: runtime.ContainerConfig{Pod: ref, Name: "app", Image: echo, RestartCount: 3, MemoryLimitBytes: 64 << 20,
			Env: []string{"POD=web", "NS=default", "IP=10.88.0.7", "HOST=192.168.0.1", "NODE=n1", "APP=web", "MEM_MI=64", "CPUS=2"}},
	}, {
		name: "bad cpu limit",
		c:    events.Container{Name: "app", Resources: events.ResourceRequirements{Limits: events.ResourceList{"cpu": "lots"}}},
		err:  true,
	}, {
		name: "bad cpu request",
		c:    events.Container{Name: "app", Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "-"}}},
		err:  true,
	}, {
		name: "bad memory limit",
		c:    events.Container{Name: "app", Resources: events.ResourceRequirements{Limits: events.ResourceList{"memory": "1 GB"}}},
		err:  true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod("web", "app")
			pod.Metadata.Labels = map[string]string{"app": "web"}
			dw := downward{pod: &pod, podIP: "10.88.0.7", hostIP: "192.168.0.1", alloc: map[string]int64{"cpu": 2000, "memory": 4 << 30}}
			got, err := containerConfig(ref, &tc.c, echo, 3, dw)
			if (err != nil) != tc.err {
				t.Fatalf("error = %v, want error: %v", err, tc.err)
			}
			if err == nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("config (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// eventually polls cond until it holds, and fails the test if it does not within 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
