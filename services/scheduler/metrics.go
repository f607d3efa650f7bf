package scheduler

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"skiff.dev/events/live"
	"skiff.dev/events/metrics"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/services/scheduler/internal/scheduling"
)

// replicaMetrics are one replica's instruments: the scheduling loop's (made once, kept across
// terms), whether it leads, and what is read from the projection when scraped.
type replicaMetrics struct {
	scheduling *scheduling.Metrics
	leader     prometheus.Gauge
}

// newReplicaMetrics registers the replica's metrics with reg (nil: nowhere).
func newReplicaMetrics(reg prometheus.Registerer, proj *live.Projection, st *store.Store) (*replicaMetrics, error) {
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
	if err != nil {
		return nil, fmt.Errorf("scheduler metrics: %w", err)
	}
	return m, nil
}
