package agent

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"skiff.dev/events"
	"skiff.dev/services/nodeagent/internal/work"
)

// The workers' instruments follow a pod's life: its start-up timed from when its binding was
// seen to its Running report, the image fetched from the store timed, a restart counted, pods
// running counted up (also one resumed from an earlier run's report, which is not timed) and
// down when a pod stops.
func TestWorkerMetrics(t *testing.T) {
	h := newWorkerHarness(t)
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.env.metrics = m
	h.env.store = fakeImageStore{echo: echo}

	type counts struct {
		startups, startupSeconds, fromStore, fromRegistry, restarts, running float64
	}
	now := func() counts {
		c := counts{restarts: testutil.ToFloat64(m.ContainerRestarts), running: testutil.ToFloat64(m.Running)}
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			for _, mt := range f.GetMetric() {
				h := mt.GetHistogram()
				switch f.GetName() {
				case "skiff_nodeagent_pod_startup_duration_seconds":
					c.startups, c.startupSeconds = float64(h.GetSampleCount()), h.GetSampleSum()
				case "skiff_nodeagent_image_fetch_duration_seconds":
					if mt.GetLabel()[0].GetValue() == "store" {
						c.fromStore = float64(h.GetSampleCount())
					} else {
						c.fromRegistry = float64(h.GetSampleCount())
					}
				}
			}
		}
		return c
	}
	check := func(step string, want counts) {
		t.Helper()
		if got := now(); got != want {
			t.Errorf("%s: %+v, want %+v", step, got, want)
		}
	}

	p := testPod("web", "app")
	w := h.worker(p) // the binding is seen now
	check("bound, nothing done yet", counts{})
	h.clock.Step(2 * time.Second)
	h.mustSync(w, p)
	check("running", counts{startups: 1, startupSeconds: 2, fromStore: 1, running: 1})

	h.clock.Step(5 * time.Second)
	h.rt.crash(t, p.Metadata.UID, "app", 1)
	h.mustSync(w, p) // back-off
	h.clock.Step(10 * time.Second)
	h.mustSync(w, p) // restarted
	check("restarted once", counts{startups: 1, startupSeconds: 2, fromStore: 1, restarts: 1, running: 1})

	// An agent that restarts resumes a pod it reported Running: counted, not timed again.
	reported := events.PodStatus{Phase: events.PodRunning}
	newWorker(h.env, testLogger(t), &work.Pod{Pod: testPod("db", "app"), Reported: &reported})
	check("a running pod resumed", counts{startups: 1, startupSeconds: 2, fromStore: 1, restarts: 1, running: 2})

	if err := w.stop(h.ctx, work.Pod{Pod: p, StopRequested: true}); err != nil {
		t.Fatal(err)
	}
	check("web stopped", counts{startups: 1, startupSeconds: 2, fromStore: 1, restarts: 1, running: 1})
}
