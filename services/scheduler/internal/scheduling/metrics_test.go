package scheduling

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

// failFirst refuses every write of the first AppendAll that carries a PodScheduled (the log was
// unavailable), then appends as the log does.
type failFirst struct {
	log    Appender
	mu     sync.Mutex
	failed bool
}

func (f *failFirst) AppendAll(ctx context.Context, ws []store.Write) []error {
	f.mu.Lock()
	fail := !f.failed && len(ws) > 0 && ws[0].Event.Type == "PodScheduled"
	f.failed = f.failed || fail
	f.mu.Unlock()
	if !fail {
		return f.log.AppendAll(ctx, ws)
	}
	errs := make([]error, len(ws))
	for i := range errs {
		errs[i] = events.Errorf(events.ErrUnavailable, "test: the log is away")
	}
	return errs
}

// The instruments count what the loop did: each attempt by its result, each PodBound that
// landed, each bound pod's time from creation, each pass with pending pods.
func TestMetricsCountWhatHappened(t *testing.T) {
	c := newTestCluster(t)
	// Room for 3 pods of 1Gi; the fourth and fifth fit nowhere.
	c.append(nodeEvent(t, nodeSpec{name: "n1", milliCPU: 4000, memory: 3 << 30}))
	var pods []*events.Event
	for i := range 5 {
		pods = append(pods, podEvent(t, podSpec{name: podName(i), memory: "1Gi"}))
	}
	c.append(pods...)

	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("the instruments registered twice with one registry")
	}
	const took = 3 * time.Second
	start := time.Now()
	c.start(Config{Metrics: m, Log: &failFirst{log: c.log}, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
		// Pods are created at testTime; the scheduler's clock starts 3 s later and runs (the
		// refused pods back off on it).
		Clock: func() time.Time { return testTime.Add(took + time.Since(start)) }})
	c.waitFor("3 pods bound", allBound(3))
	// The last PodBound's count is recorded just after the projection may show it.
	eventstest.Eventually(t, eventstest.Timeout, "3 PodBounds counted", func() bool { return testutil.ToFloat64(m.Bound) >= 3 })

	if got := testutil.ToFloat64(m.Scheduled); got != 3 {
		t.Errorf("attempts scheduled = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.Bound); got != 3 {
		t.Errorf("pods bound = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.Errors); got < 1 {
		t.Errorf("attempts error = %v, want at least 1 (the first batch was refused)", got)
	}
	if got := testutil.ToFloat64(m.Unschedulable); got < 2 {
		t.Errorf("attempts unschedulable = %v, want at least 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "skiff_scheduler_pod_scheduling_duration_seconds"); err != nil || n != 1 {
		t.Fatalf("latency histogram: %d series, %v", n, err)
	}
	count, sum := histogram(t, reg, "skiff_scheduler_pod_scheduling_duration_seconds")
	if elapsed := time.Since(start); count != 3 || sum < 3*took.Seconds() || sum > 3*(took+elapsed).Seconds() {
		t.Errorf("scheduling latency: %d observations summing %vs, want 3 summing %v to %vs", count, sum, 3*took.Seconds(), 3*(took+elapsed).Seconds())
	}
	if count, _ := histogram(t, reg, "skiff_scheduler_pass_duration_seconds"); count < 2 {
		t.Errorf("pass duration: %d observations, want at least 2 (a refused batch is decided again)", count)
	}
}

// histogram returns the observation count and sum of the histogram name in reg.
func histogram(t *testing.T, reg prometheus.Gatherer, name string) (uint64, float64) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0, 0
}

// BenchmarkMetricsPerPod is what the instruments cost per bound pod: an attempt counted, a
// PodBound counted, its latency observed (a pass's observation is shared by up to BatchSize
// pods and left out). It must not allocate.
func BenchmarkMetricsPerPod(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	created := testTime
	landed := testTime.Add(1500 * time.Millisecond)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Scheduled.Inc()
			m.Bound.Inc()
			m.Latency.Observe(landed.Sub(created).Seconds())
		}
	})
}
