package agent

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"
	clocktesting "k8s.io/utils/clock/testing"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/images"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/work"
)

// agentHarness runs agents of node n1 against a real, in-process log, with a fake runtime, a
// fake network and a fake clock that outlive each agent, as containerd and the node's network
// outlive an agent that restarts.
type agentHarness struct {
	t     *testing.T
	ctx   context.Context
	log   *store.Store
	nodes *live.Projection
	clock *clocktesting.FakeClock
	calls *callLog
	rt    *fakeRuntime
	net   *fakeNetwork

	mu sync.Mutex
	// statuses are the events on the status subjects, by subject, as a follower of the log
	// sees them: polling the log itself costs a consumer a read.
	statuses map[string][]*events.Event
	// tracer, if set, traces the agent.
	tracer trace.Tracer
}

const podCIDR = "10.88.1.0/24"

func newAgentHarness(t *testing.T) *agentHarness {
	t.Helper()
	st, _, _ := eventstest.NewStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	nodes := live.New(state.New(), nil)
	var wg sync.WaitGroup
	wg.Go(func() { _ = nodes.Run(ctx, st, []string{events.KindFilter(events.KindNode)}) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := nodes.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(t0)
	calls := &callLog{}
	h := &agentHarness{
		t: t, ctx: ctx, log: st, nodes: nodes, clock: clk, calls: calls,
		rt:       newFakeRuntime(clk, calls),
		net:      newFakeNetwork(netip.MustParsePrefix(podCIDR), calls),
		statuses: map[string][]*events.Event{},
	}
	wg.Go(func() {
		_ = st.Follow(ctx, store.FollowOptions{Filters: []string{events.SubjectRoot + "." + events.KindStatus + ".>"}},
			func(ev *events.Event) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.statuses[ev.Subject] = append(h.statuses[ev.Subject], ev)
			})
	})
	return h
}

// append writes an event conditionally on its subject's last sequence.
func (h *agentHarness) append(obj events.ObjectRef, node string, p events.Payload) {
	h.t.Helper()
	ev, err := events.New(h.clock.Now(), events.Meta{Actor: "test"}, obj, node, p)
	if err != nil {
		h.t.Fatal(err)
	}
	last, err := h.log.LastSeq(h.ctx, ev.Subject)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.log.Append(h.ctx, ev, last); err != nil {
		h.t.Fatalf("append %s: %v", ev.Type, err)
	}
}

// addNode registers a node and, unless cidr is empty, assigns it a pod CIDR.
func (h *agentHarness) addNode(name, address, cidr string) {
	h.t.Helper()
	ref := events.ObjectRef{Kind: events.KindNode, Name: name}
	h.append(ref, "", &events.NodeRegistered{Address: address, MilliCPU: 2000, Memory: 4 << 30, MaxPods: 110})
	if cidr != "" {
		h.append(ref, "", &events.NodePodCIDRAssigned{PodCIDR: cidr})
	}
}

func podRef(p events.Pod) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: p.Metadata.Namespace, Name: p.Metadata.Name, UID: p.Metadata.UID}
}

// bind hands the pod to node, as the scheduler does.
func (h *agentHarness) bind(p events.Pod, node string) {
	h.t.Helper()
	h.rt.learn(p)
	p.Spec.NodeName = node
	h.append(podRef(p), node, &events.PodBound{Pod: p})
}

// stopPod asks n1 to stop the pod, as the pod lifecycle controller does.
func (h *agentHarness) stopPod(p events.Pod, grace int64) {
	h.t.Helper()
	h.append(podRef(p), "n1", &events.PodStopRequested{UID: p.Metadata.UID, GracePeriodSeconds: grace})
}

// reports returns what node reported about the pod as far as the harness's follower has seen:
// its statuses and whether it terminated.
func (h *agentHarness) reports(p events.Pod, node string) (statuses []events.PodStatus, terminated bool) {
	h.mu.Lock()
	evs := slices.Clone(h.statuses[events.StatusSubject(node, p.Metadata.Namespace, p.Metadata.Name)])
	h.mu.Unlock()
	return statusesOf(evs)
}

// history is reports read from the log itself, for checks that must not miss a late event.
func (h *agentHarness) history(p events.Pod, node string) (statuses []events.PodStatus, terminated bool) {
	h.t.Helper()
	evs, err := h.log.History(h.ctx, events.StatusSubject(node, p.Metadata.Namespace, p.Metadata.Name))
	if err != nil {
		h.t.Fatal(err)
	}
	return statusesOf(evs)
}

func statusesOf(evs []*events.Event) (statuses []events.PodStatus, terminated bool) {
	for _, ev := range evs {
		switch d := ev.Data.(type) {
		case *events.PodStatusReported:
			statuses = append(statuses, d.Status)
		case *events.PodTerminated:
			terminated = true
		}
	}
	return statuses, terminated
}

// lastSummary is the summary of the last status n1 reported about the pod, "" if none.
func (h *agentHarness) lastSummary(p events.Pod) string {
	sts, _ := h.reports(p, "n1")
	if len(sts) == 0 {
		return ""
	}
	return summary(sts[len(sts)-1])
}

func (h *agentHarness) waitStatus(p events.Pod, want string) {
	h.t.Helper()
	eventually(h.t, p.Metadata.Name+" reported "+want, func() bool { return h.lastSummary(p) == want })
}

// runningAgent is an agent of n1 running on its own goroutine.
type runningAgent struct {
	*Agent
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// run starts an agent of n1; wait for a.Ready() or call start.
func (h *agentHarness) run() *runningAgent {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	a := &runningAgent{cancel: cancel, done: make(chan struct{})}
	a.Agent = New(Config{
		Node: "n1", Address: "10.0.0.1", Log: h.log, Nodes: h.nodes, JetStream: h.log.JetStream(), Runtime: h.rt,
		Network: func(ctx context.Context, cidr netip.Prefix) (Network, error) {
			if cidr.String() != podCIDR {
				h.t.Errorf("the agent builds its network for %s, want the node's pod CIDR %s", cidr, podCIDR)
			}
			return h.net, nil
		},
		Clock: h.clock, Logger: testLogger(h.t), Tracer: h.tracer,
	})
	go func() {
		defer close(a.done)
		a.err = a.Run(ctx)
	}()
	h.t.Cleanup(a.stop)
	return a
}

// start runs an agent of n1 and waits until it is ready.
func (h *agentHarness) start() *runningAgent {
	h.t.Helper()
	a := h.run()
	select {
	case <-a.Ready():
	case <-a.done:
		h.t.Fatalf("agent ended before it was ready: %v", a.err)
	case <-time.After(20 * time.Second):
		h.t.Fatal("agent not ready")
	}
	return a
}

// stop ends the agent and waits until it and its workers have returned.
func (a *runningAgent) stop() {
	a.cancel()
	<-a.done
}

// TestAgentRunsPodsBoundToItsNode: a pod bound to the node runs, with its image imported from
// the cluster's image store, and is reported Running; a pod bound to another node is not
// touched.
func TestAgentRunsPodsBoundToItsNode(t *testing.T) {
	h := newAgentHarness(t)
	h.addNode("n1", "10.0.0.1", podCIDR)
	obs, err := images.OpenBucket(h.ctx, h.log.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutString(h.ctx, echo, echo); err != nil {
		t.Fatal(err)
	}
	h.start()

	other, web := testPod("other", "app"), testPod("web", "app", "side")
	h.bind(other, "n2")
	h.bind(web, "n1")
	h.waitStatus(web, "Running ip=10.88.1.2 app=running side=running")

	if n := h.calls.count("ImportImage " + echo); n != 1 {
		t.Errorf("image imported %d times, want once", n)
	}
	sb, _ := h.rt.sandbox(web.Metadata.UID)
	st, _ := h.reports(web, "n1")
	last := st[len(st)-1]
	app, _ := h.rt.container(web.Metadata.UID, "app")
	if got, want := last.ContainerStatuses[0].ContainerID, "containerd://"+app.status.ID; got != want {
		t.Errorf("reported container ID %s, want %s", got, want)
	}
	if sb.ID != runtime.SandboxID(web.Metadata.UID) {
		t.Errorf("sandbox ID %s", sb.ID)
	}
	if got := h.rt.podsLeft(); !slices.Equal(got, []string{web.Metadata.UID}) {
		t.Errorf("pods in containerd: %v, want only web's", got)
	}
	if sts, term := h.history(other, "n1"); len(sts) > 0 || term {
		t.Errorf("n1 reported on a pod bound to n2: %v", sts)
	}
}

// TestAgentStopsPod: a pod asked to stop has its containers stopped with its grace period,
// its IP released and its sandbox removed, and is reported terminated; its worker ends.
func TestAgentStopsPod(t *testing.T) {
	h := newAgentHarness(t)
	h.addNode("n1", "10.0.0.1", podCIDR)
	h.rt.addImage(echo)
	a := h.start()
	web := testPod("web", "app", "side")
	h.bind(web, "n1")
	h.waitStatus(web, "Running ip=10.88.1.2 app=running side=running")

	before := h.calls.len()
	h.stopPod(web, 30)
	eventually(t, "web terminated", func() bool {
		_, term := h.reports(web, "n1")
		return term
	})
	calls := h.calls.since(before)
	for _, want := range []string{"StopContainer web/app grace=30s", "StopContainer web/side grace=30s",
		`Teardown uid-web "/proc/1001/ns/net"`, "RemoveSandbox web"} {
		if !slices.Contains(calls, want) {
			t.Errorf("calls %v lack %q", calls, want)
		}
	}
	if i, j := slices.Index(calls, `Teardown uid-web "/proc/1001/ns/net"`), slices.Index(calls, "RemoveSandbox web"); i > j {
		t.Errorf("the network was torn down after the sandbox went: %v", calls)
	}
	if ip, held := h.net.ip(web.Metadata.UID); held {
		t.Errorf("web still holds %s", ip)
	}
	if left := h.rt.podsLeft(); len(left) != 0 {
		t.Errorf("left in containerd: %v", left)
	}
	eventually(t, "web's worker gone", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.workers) == 0
	})
}

// TestAgentRestartsCrashedContainer: a container that exits is restarted after the back-off,
// on the fake clock.
func TestAgentRestartsCrashedContainer(t *testing.T) {
	h := newAgentHarness(t)
	h.addNode("n1", "10.0.0.1", podCIDR)
	h.rt.addImage(echo)
	h.start()
	web := testPod("web", "app")
	h.bind(web, "n1")
	h.waitStatus(web, "Running ip=10.88.1.2 app=running")

	h.clock.Step(time.Minute)
	crashed := h.clock.Now()
	h.rt.crash(t, web.Metadata.UID, "app", 1)
	h.waitStatus(web, "Running ip=10.88.1.2 app=waiting:CrashLoopBackOff")
	eventually(t, "web restarted", func() bool {
		h.clock.Step(time.Second)
		return h.lastSummary(web) == "Running ip=10.88.1.2 app=running(restarts=1)"
	})
	app, _ := h.rt.container(web.Metadata.UID, "app")
	if waited := app.status.StartedAt.Sub(crashed); waited < DefaultBackoff.Base {
		t.Errorf("restarted %v after the crash, before the back-off of %v", waited, DefaultBackoff.Base)
	}
}

// settle brings web's worker to where nothing is pending for it: no pass queued, no timer
// armed. A worker may owe passes (for the update that started it, say) that would notice a
// change on their own; a test of what wakes it starts from here. It crashes web's container
// (an exit event wakes the worker), waits for the back-off to end on the fake clock, and
// returns the status reported after the restart.
func (h *agentHarness) settle(web events.Pod) string {
	h.t.Helper()
	h.rt.crash(h.t, web.Metadata.UID, "app", 1)
	h.waitStatus(web, "Running ip=10.88.1.2 app=waiting:CrashLoopBackOff")
	settled := "Running ip=10.88.1.2 app=running(restarts=1)"
	eventually(h.t, "web restarted", func() bool {
		h.clock.Step(time.Second)
		return h.lastSummary(web) == settled
	})
	return settled
}

// TestAgentResyncs: an exit that containerd's events missed is noticed when they come back
// (EventResync), or at the latest at the next periodic resync.
func TestAgentResyncs(t *testing.T) {
	for _, tc := range []struct {
		name string
		// notice makes the agent notice the exit: it returns when a status other than settled
		// was reported.
		notice func(h *agentHarness, web events.Pod, settled string)
	}{{
		name: "containerd came back",
		notice: func(h *agentHarness, web events.Pod, settled string) {
			h.rt.resync()
			h.waitStatus(web, "Running ip=10.88.1.2 app=waiting:CrashLoopBackOff(restarts=1)")
		},
	}, {
		name: "periodic resync",
		notice: func(h *agentHarness, web events.Pod, settled string) {
			eventually(h.t, "a resync", func() bool {
				h.clock.Step(time.Second)
				return h.lastSummary(web) != settled
			})
			// The resync ticker started with the agent, at t0.
			if now := h.clock.Since(t0); now < 30*time.Second {
				h.t.Errorf("noticed at t0+%v, before the first resync at t0+30s", now)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newAgentHarness(t)
			h.addNode("n1", "10.0.0.1", podCIDR)
			h.rt.addImage(echo)
			h.start()
			web := testPod("web", "app")
			h.bind(web, "n1")
			h.waitStatus(web, "Running ip=10.88.1.2 app=running")
			settled := h.settle(web)
			h.rt.exitSilently(t, web.Metadata.UID, "app", 1)
			tc.notice(h, web, settled)
		})
	}
}

// TestAgentAdoptsAfterRestart: an agent that restarts finds its pods' sandboxes and containers
// and adopts them as they are: same IDs, same processes, same IP, nothing recreated or
// reported again.
func TestAgentAdoptsAfterRestart(t *testing.T) {
	h := newAgentHarness(t)
	h.addNode("n1", "10.0.0.1", podCIDR)
	h.rt.addImage(echo)
	first := h.start()
	web := testPod("web", "app", "side")
	h.bind(web, "n1")
	h.waitStatus(web, "Running ip=10.88.1.2 app=running side=running")
	first.stop()

	sb, _ := h.rt.sandbox(web.Metadata.UID)
	app, _ := h.rt.container(web.Metadata.UID, "app")
	side, _ := h.rt.container(web.Metadata.UID, "side")
	reported, _ := h.history(web, "n1")
	before := h.calls.len()

	reads := h.rt.statusReads(web.Metadata.UID, "side")
	second := h.start()
	// The new worker's first pass looks at each container in turn; once it looked at the last,
	// it has nothing left to do but report (nothing, as nothing changed).
	eventually(t, "the new worker's first pass", func() bool {
		return h.rt.statusReads(web.Metadata.UID, "side") > reads
	})
	second.stop()

	if diff := cmp.Diff([]string{"Setup uid-web /proc/1001/ns/net"}, h.calls.since(before)); diff != "" {
		t.Errorf("calls after the restart (-want +got):\n%s", diff)
	}
	sb2, _ := h.rt.sandbox(web.Metadata.UID)
	app2, _ := h.rt.container(web.Metadata.UID, "app")
	side2, _ := h.rt.container(web.Metadata.UID, "side")
	if sb2 != sb || app2.status.PID != app.status.PID || side2.status.PID != side.status.PID ||
		!app2.status.StartedAt.Equal(app.status.StartedAt) {
		t.Errorf("after the restart: sandbox %+v, app %+v, side %+v; before: %+v, %+v, %+v",
			sb2, app2.status, side2.status, sb, app.status, side.status)
	}
	if ip, _ := h.net.ip(web.Metadata.UID); ip.String() != "10.88.1.2" {
		t.Errorf("web holds %s after the restart, want 10.88.1.2", ip)
	}
	if now, _ := h.history(web, "n1"); len(now) != len(reported) {
		t.Errorf("%d statuses reported after the restart; nothing changed", len(now)-len(reported))
	}
}

// TestAgentReplacesStaleSandbox: a sandbox an earlier agent created and was killed before
// starting (issue 8: it stayed in state created, and every retry to create one under the same
// ID failed) is replaced, and the pod runs.
func TestAgentReplacesStaleSandbox(t *testing.T) {
	h := newAgentHarness(t)
	h.addNode("n1", "10.0.0.1", podCIDR)
	h.rt.addImage(echo)
	web := testPod("web", "app")
	h.bind(web, "n1")
	stale := h.rt.putSandbox(web, runtime.StateCreated)
	h.start()
	h.waitStatus(web, "Running ip=10.88.1.2 app=running")
	sb, _ := h.rt.sandbox(web.Metadata.UID)
	if sb.ID != stale.ID || sb.State != runtime.StateRunning || sb.PID == 0 {
		t.Errorf("sandbox %+v, want %s running", sb, stale.ID)
	}
	if n := h.calls.count("CreateSandbox web"); n != 1 {
		t.Errorf("sandbox created %d times, want once", n)
	}
}

// TestAgentReconcile: before any worker runs, containerd is made to match the log: what is
// left of pods no longer bound here goes, with their IPs; live pods' containers stay.
func TestAgentReconcile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *agentHarness)
		// calls are those of the reconcile, leaving out those about the live pod web.
		calls []string
		left  []string // pods with anything in containerd afterwards
		ips   []string // pods holding an IP afterwards
	}{{
		name: "a pod the log does not have: containers killed and removed, IP released, sandbox removed",
		setup: func(h *agentHarness) {
			gone := testPod("gone", "app")
			h.rt.learn(gone)
			sb := h.rt.putSandbox(gone, runtime.StateRunning)
			h.rt.putContainer(gone, "app", runtime.StateRunning, 0)
			h.net.hold(gone.Metadata.UID, sb.NetNSPath())
		},
		calls: []string{"StopContainer gone/app grace=0s", "RemoveContainer gone/app",
			`Teardown uid-gone "/proc/1001/ns/net"`, "RemoveSandbox gone"},
	}, {
		name: "a pod the log says terminated",
		setup: func(h *agentHarness) {
			done := testPod("done", "app")
			h.bind(done, "n1")
			h.append(podRef(done), "n1", &events.PodTerminated{UID: done.Metadata.UID})
			h.rt.putSandbox(done, runtime.StateExited)
		},
		calls: []string{`Teardown uid-done ""`, "RemoveSandbox done"},
	}, {
		name:  "an IP held by no pod",
		setup: func(h *agentHarness) { h.net.hold("uid-ghost", "") },
		calls: []string{`Teardown uid-ghost ""`},
	}, {
		name: "a live pod's sandbox and containers stay for its worker",
		setup: func(h *agentHarness) {
			web := testPod("web", "app")
			h.bind(web, "n1")
			sb := h.rt.putSandbox(web, runtime.StateRunning)
			h.rt.putContainer(web, "app", runtime.StateRunning, 0)
			h.net.hold(web.Metadata.UID, sb.NetNSPath())
		},
		left: []string{"uid-web"},
		ips:  []string{"uid-web"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newAgentHarness(t)
			h.addNode("n1", "10.0.0.1", podCIDR)
			h.rt.addImage(echo)
			tc.setup(h)
			before := h.calls.len()
			h.start()
			var calls []string
			for _, c := range h.calls.since(before) {
				if !strings.Contains(c, "web") {
					calls = append(calls, c)
				}
			}
			if diff := cmp.Diff(tc.calls, calls); diff != "" {
				t.Errorf("reconcile calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.left, h.rt.podsLeft()); diff != "" {
				t.Errorf("pods left in containerd (-want +got):\n%s", diff)
			}
			allocs, _ := h.net.Allocations(h.ctx)
			var ips []string
			for _, a := range allocs {
				ips = append(ips, a.PodID)
			}
			if diff := cmp.Diff(tc.ips, ips); diff != "" {
				t.Errorf("pods holding IPs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAgentWaitsForPodCIDR: the agent runs nothing until the control plane assigned the node a
// pod CIDR, and routes other nodes' pod CIDRs to their addresses as they come.
func TestAgentWaitsForPodCIDRAndRoutes(t *testing.T) {
	h := newAgentHarness(t)
	h.addNode("n1", "10.0.0.1", "")
	h.addNode("n2", "10.0.0.2", "10.88.2.0/24")
	a := h.run()
	select {
	case <-a.Ready():
		t.Fatal("ready without a pod CIDR")
	case <-a.done:
		t.Fatalf("agent ended: %v", a.err)
	default:
	}
	h.append(events.ObjectRef{Kind: events.KindNode, Name: "n1"}, "", &events.NodePodCIDRAssigned{PodCIDR: podCIDR})
	eventually(t, "agent ready", func() bool {
		select {
		case <-a.Ready():
			return true
		default:
			return false
		}
	})
	n2 := map[netip.Prefix]netip.Addr{netip.MustParsePrefix("10.88.2.0/24"): netip.MustParseAddr("10.0.0.2")}
	eventually(t, "a route to n2's pods", func() bool { return maps.Equal(h.net.routeTable(), n2) })
	h.addNode("n3", "10.0.0.3", "10.88.3.0/24")
	n2[netip.MustParsePrefix("10.88.3.0/24")] = netip.MustParseAddr("10.0.0.3")
	eventually(t, "routes to n2's and n3's pods", func() bool { return maps.Equal(h.net.routeTable(), n2) })
}

// TestAgentStartFails: an agent that cannot build its pod network, or reconcile containerd,
// returns the error at once, rather than when its context ends.
func TestAgentStartFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		network func(h *agentHarness) (Network, error)
	}{
		{"no pod network", func(h *agentHarness) (Network, error) { return nil, errUnavailable }},
		{"containerd cannot list", func(h *agentHarness) (Network, error) {
			h.rt.fail("List", 1, errUnavailable)
			return h.net, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newAgentHarness(t)
			h.addNode("n1", "10.0.0.1", podCIDR)
			a := New(Config{Node: "n1", Log: h.log, Nodes: h.nodes, JetStream: h.log.JetStream(), Runtime: h.rt, Clock: h.clock,
				Network: func(context.Context, netip.Prefix) (Network, error) { return tc.network(h) }})
			ctx, cancel := context.WithCancel(h.ctx)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- a.Run(ctx) }()
			select {
			case err := <-errc:
				if !errors.Is(err, events.ErrUnavailable) {
					t.Errorf("Run = %v, want the injected error", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return the error")
			}
		})
	}
}

// TestAppendConflict: a status append that conflicts (a write this agent's view has not seen,
// such as one of its previous incarnation) is retried after the subject's last sequence.
func TestAppendConflict(t *testing.T) {
	h := newAgentHarness(t)
	a := New(Config{Node: "n1", Log: h.log, Clock: h.clock})
	web := testPod("web", "app")
	key := keyOf(web)
	if err := a.append(h.ctx, key, &events.PodStatusReported{UID: web.Metadata.UID}); err != nil {
		t.Fatal(err)
	}
	// Written behind the agent's back.
	h.append(podRef(web), "n1", &events.PodStatusReported{UID: web.Metadata.UID, Status: events.PodStatus{Phase: events.PodPending}})
	if err := a.append(h.ctx, key, &events.PodTerminated{UID: web.Metadata.UID}); err != nil {
		t.Fatalf("append after a conflict: %v", err)
	}
	sts, term := h.history(web, "n1")
	if len(sts) != 2 || !term {
		t.Errorf("statuses %v, terminated %v; want 2 and true", sts, term)
	}
}

func keyOf(p events.Pod) work.Key {
	return work.Key{Namespace: p.Metadata.Namespace, Name: p.Metadata.Name}
}
