package scheduler

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"skiff.dev/events/live"
	"skiff.dev/events/metrics"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/telemetry"
	"skiff.dev/services/scheduler/internal/scheduling"
)

// replicaMetrics are one replica's instruments: the scheduling loop's (made once, kept across
// terms), whether it leads, and what is read from the projection when scraped.
type replicaMetrics struct {
	scheduling *scheduling.Metrics
	leader     prometheus.Gauge
}

// newReplicaMetrics registers the replica's metrics with reg (nil: nowhere); spans, when
// tracing is on, are the scheduling loop's spans.
func newReplicaMetrics(reg prometheus.Registerer, proj *live.Projection, st *store.Store, spans *telemetry.SpanBatcher) (*replicaMetrics, error) {
	sm, err := scheduling.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &replicaMetrics{
		scheduling: sm,
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_scheduler_leader",
			Help: "1 while this replica leads (its term began and its control loops run), else 0.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "skiff_scheduler_pending_pods",
		Help: "Pods waiting for a node, as this replica's projection shows them.",
	}, func() float64 {
		n := 0
		proj.View(func(s *state.State) { n = len(s.Pending()) })
		return float64(n)
	})
	err = errors.Join(reg.Register(m.leader), reg.Register(pending),
		metrics.RegisterProjection(reg, "skiff_scheduler", proj, st.Head))
	if spans != nil {
		err = errors.Join(err, registerSpanMetrics(reg, spans))
	}
	if err != nil {
		return nil, fmt.Errorf("scheduler metrics: %w", err)
	}
	return m, nil
}

// registerSpanMetrics counts the scheduling loop's spans that never reached the collector: the
// batcher drops a batch rather than wait when its queue is full, and an export can fail after
// the client's retries.
func registerSpanMetrics(reg prometheus.Registerer, spans *telemetry.SpanBatcher) error {
	lost := func(reason string, n func(telemetry.BatcherStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "skiff_scheduler_trace_spans_dropped_total",
			Help:        "Scheduling spans not delivered to the OTLP collector, by reason: queue_full (dropped, not waited for), export_failed.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(n(spans.Stats())) })
	}
	exported := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "skiff_scheduler_trace_spans_exported_total",
		Help: "Scheduling spans delivered to the OTLP collector.",
	}, func() float64 { return float64(spans.Stats().Exported) })
	return errors.Join(reg.Register(exported),
		reg.Register(lost("queue_full", func(s telemetry.BatcherStats) uint64 { return s.Dropped })),
		reg.Register(lost("export_failed", func(s telemetry.BatcherStats) uint64 { return s.Failed })))
}
