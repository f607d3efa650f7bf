package scheduling

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// testCluster is a real embedded JetStream log with a live projection following it.
type testCluster struct {
	t    *testing.T
	log  *store.Store
	proj *live.Projection
	ctx  context.Context
}

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	st, _, _ := eventstest.NewStore(t)
	return &testCluster{t: t, log: st, proj: eventstest.Follow(t, st), ctx: t.Context()}
}

// append writes events (at most one per subject) conditional on the projection's view of their
// subjects and waits until the projection has applied them.
func (c *testCluster) append(evs ...*events.Event) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, eventstest.Timeout)
	defer cancel()
	if _, err := eventstest.Append(ctx, c.log, c.proj, evs...); err != nil {
		c.t.Fatal(err)
	}
}

func mustEvent(t testing.TB, obj events.ObjectRef, node string, p events.Payload) *events.Event {
	t.Helper()
	ev, err := events.New(testTime, events.Meta{Actor: "test"}, obj, node, p)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

type nodeSpec struct {
	name             string
	milliCPU, memory int64
	maxPods          int32
	labels           map[string]string
	taints           []events.Taint
}

func nodeEvent(t testing.TB, n nodeSpec) *events.Event {
	if n.maxPods == 0 {
		n.maxPods = 110
	}
	return mustEvent(t, events.ObjectRef{Kind: events.KindNode, Name: n.name}, "", &events.NodeRegistered{
		Labels: n.labels, Taints: n.taints, MilliCPU: n.milliCPU, Memory: n.memory, MaxPods: n.maxPods,
	})
}

type podSpec struct {
	name        string
	cpu, memory string
	owner       string
	selector    map[string]string
	tolerations []events.Toleration
}

func podEvent(t testing.TB, p podSpec) *events.Event {
	pod := events.Pod{
		Metadata: events.ObjectMeta{Name: p.name, Namespace: "default", UID: "uid-" + p.name},
		Spec: events.PodSpec{
			Containers:   []events.Container{{Name: "app", Image: "demo"}},
			NodeSelector: p.selector,
			Tolerations:  p.tolerations,
		},
	}
	if p.cpu != "" || p.memory != "" {
		req := events.ResourceList{}
		if p.cpu != "" {
			req["cpu"] = p.cpu
		}
		if p.memory != "" {
			req["memory"] = p.memory
		}
		pod.Spec.Containers[0].Resources.Requests = req
	}
	if p.owner != "" {
		pod.Metadata.OwnerReferences = []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: p.owner, UID: "uid-" + p.owner, Controller: true}}
	}
	return mustEvent(t, events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: p.name, UID: pod.Metadata.UID}, "", &events.PodCreated{Pod: pod})
}

// start runs a scheduler until the test ends.
func (c *testCluster) start(cfg Config) {
	c.t.Helper()
	if cfg.Log == nil {
		cfg.Log = c.log
	}
	cfg.Projection = c.proj
	if cfg.Clock == nil {
		cfg.Clock = func() time.Time { return testTime }
	}
	ctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := New(cfg).Run(ctx); err != nil {
			c.t.Errorf("scheduler: %v", err)
		}
	})
	c.t.Cleanup(func() { cancel(); wg.Wait() })
}

// waitFor waits until cond holds for the projection's state.
func (c *testCluster) waitFor(what string, cond func(st *state.State) bool) {
	c.t.Helper()
	eventstest.WaitState(c.t, c.proj, eventstest.Timeout, what, cond)
}

// history returns the types of the events on subject, in order.
func (c *testCluster) history(subject string) []string {
	c.t.Helper()
	evs, err := c.log.History(c.ctx, subject)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func allBound(n int) func(st *state.State) bool {
	return func(st *state.State) bool {
		bound := 0
		for _, p := range st.Pods {
			if p.Bound {
				bound++
			}
		}
		return bound == n
	}
}

func podName(i int) string { return fmt.Sprintf("p-%04d", i) }

// startOn runs a scheduler on its own projection until the test ends.
func (c *testCluster) startOn(proj *live.Projection, cfg Config) {
	c.t.Helper()
	cfg.Log = c.log
	cfg.Projection = proj
	ctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = New(cfg).Run(ctx) })
	c.t.Cleanup(func() { cancel(); wg.Wait() })
}

// countByPod reads the whole log and counts, per pod name, the events of each type on its pod
// and bind subjects (whatever node).
func (c *testCluster) countByPod() map[string]map[string]int {
	c.t.Helper()
	out := map[string]map[string]int{}
	err := c.log.Read(c.ctx, store.ReadOptions{Filters: []string{events.KindFilter(events.KindPod), events.KindFilter(events.KindBind)}},
		func(ev *events.Event) error {
			sub, err := events.ParseSubject(ev.Subject)
			if err != nil {
				return err
			}
			if out[sub.Name] == nil {
				out[sub.Name] = map[string]int{}
			}
			out[sub.Name][ev.Type]++
			return nil
		})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *testCluster) pod(name string) state.Pod {
	var p state.Pod
	c.proj.View(func(st *state.State) {
		if sp := st.Pods[state.Key{Namespace: "default", Name: name}]; sp != nil {
			p = *sp
		}
	})
	return p
}

func ref(kind, name string) events.ObjectRef {
	ns := "default"
	if kind == events.KindNode {
		ns = ""
	}
	return events.ObjectRef{Kind: kind, Namespace: ns, Name: name, UID: "uid-" + name}
}

// logWatch is a slog handler that lets a test wait for log records with a given message.
type logWatch struct {
	mu     sync.Mutex
	counts map[string]int
	ch     chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{counts: map[string]int{}, ch: make(chan struct{})} }

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }
func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts[r.Message]++
	close(w.ch)
	w.ch = make(chan struct{})
	return nil
}

// waitCount waits until msg was logged at least n times.
func (w *logWatch) waitCount(t *testing.T, msg string, n int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		got, ch := w.counts[msg], w.ch
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d log records %q (saw %d)", n, msg, got)
		}
	}
}

func isBound(st *state.State, name string) bool {
	p := st.Pods[state.Key{Namespace: "default", Name: name}]
	return p != nil && p.Bound
}
