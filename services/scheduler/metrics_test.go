package scheduler_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/telemetry/telemetrytest"
	"skiff.dev/services/scheduler"
)

// A replica's registry holds its metrics and they follow what it does: it leads, folds the log
// (no lag once caught up), binds the Deployment's pods and has none pending; a second replica
// on the same registry is refused, since a process serves each family once.
func TestReplicaMetrics(t *testing.T) {
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	reg := prometheus.NewPedanticRegistry()
	conn, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	startConfig(t, scheduler.Config{Conn: conn, ID: "a", Metrics: reg})
	registerNode(t, st, "n1")
	if resp := apply(t, nc, fmt.Sprintf(deployment, "web", 3)); resp.Error != nil {
		t.Fatal(resp.Error)
	}

	value := func(name string) float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			total := 0.0
			for _, m := range f.GetMetric() {
				switch {
				case m.Counter != nil:
					total += m.GetCounter().GetValue()
				case m.Gauge != nil:
					total += m.GetGauge().GetValue()
				case m.Histogram != nil:
					total += float64(m.GetHistogram().GetSampleCount())
				}
			}
			return total
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	eventstest.Eventually(t, eventstest.Timeout, "3 pods bound and counted", func() bool {
		return value("skiff_scheduler_pods_bound_total") == 3
	})
	head, err := st.Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, eventstest.Timeout, "the projection at the log's head", func() bool {
		return value("skiff_scheduler_projection_lag_events") == 0
	})
	for name, want := range map[string]float64{
		"skiff_scheduler_leader":                          1,
		"skiff_scheduler_pending_pods":                    0,
		"skiff_scheduler_pod_scheduling_duration_seconds": 3,
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value("skiff_scheduler_events_folded_total"); got < float64(head) {
		t.Errorf("events folded = %v, want at least the log's head then, %d", got, head)
	}
	if got := value("skiff_scheduler_schedule_attempts_total"); got != 3 {
		t.Errorf("attempts = %v, want 3 (all scheduled)", got)
	}
	// Every result is exported from the start, at 0 until it happens (rate() needs the 0).
	if n, err := testutil.GatherAndCount(reg, "skiff_scheduler_schedule_attempts_total"); err != nil || n != 3 {
		t.Errorf("attempts series = %d, %v; want 3 (scheduled, unschedulable, error)", n, err)
	}

	conn2, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if err := scheduler.Run(t.Context(), scheduler.Config{Conn: conn2, ID: "b", Metrics: reg}); err == nil {
		t.Fatal("a second replica registered its metrics with the same registry")
	}
}

// Traced, the replica counts the scheduling loop's spans: each one exported, none lost, and the
// receiver has them.
func TestReplicaSpanMetrics(t *testing.T) {
	recv := telemetrytest.New(t)
	for _, kv := range recv.Env("grpc") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	reg := prometheus.NewPedanticRegistry()
	conn, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	startConfig(t, scheduler.Config{Conn: conn, ID: "a", Metrics: reg})
	registerNode(t, st, "n1")
	if resp := apply(t, nc, fmt.Sprintf(deployment, "web", 3)); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	received := func() float64 {
		n := 0
		for _, s := range recv.Spans() {
			switch s.Name {
			case "schedule pod", "filter", "score", "schedule batch":
				n++
			}
		}
		return float64(n)
	}
	// Three spans a pod and at least one batch span, exported after the receiver's 100 ms delay.
	eventstest.Eventually(t, eventstest.Timeout, "the scheduling spans exported and counted", func() bool {
		return received() >= 10 && sum(t, reg, "skiff_scheduler_trace_spans_exported_total") == received()
	})
	if n, err := testutil.GatherAndCount(reg, "skiff_scheduler_trace_spans_dropped_total"); err != nil || n != 2 {
		t.Errorf("dropped series = %d, %v; want 2 (queue_full, export_failed)", n, err)
	}
	if got := sum(t, reg, "skiff_scheduler_trace_spans_dropped_total"); got != 0 {
		t.Errorf("%v scheduling spans dropped, want none", got)
	}
}

// sum is the sum of the counter name's series in reg.
func sum(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue()
			}
			return total
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
