package scheduling

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduling loop's instruments. Their label values are resolved when they are
// made, so recording is an atomic add, without allocation. The loop's goroutine and the writer
// both record.
type Metrics struct {
	// Attempts by result: a PodScheduled that landed, a pod that fit no node, a PodScheduled
	// the log refused (a conflict: the pod changed meanwhile; or the log failed).
	Scheduled, Unschedulable, Errors prometheus.Counter
	// Bound counts the PodBounds that landed, those of gaps finished too.
	Bound prometheus.Counter
	// Latency is each bound pod's time from its creation (PodCreated) to its PodBound landing.
	Latency prometheus.Observer
	// Pass is how long a pass over pending pods took to decide and hand out its batches.
	Pass prometheus.Observer
}

// NewMetrics makes the instruments and registers them with reg; nil reg: registered nowhere.
// Errors: prometheus.AlreadyRegisteredError when reg holds them already.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skiff_scheduler_schedule_attempts_total",
		Help: "Pods the scheduler tried to place, by result: scheduled (PodScheduled landed), unschedulable (fit no node), error (the log refused the PodScheduled).",
	}, []string{"result"})
	bound := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_scheduler_pods_bound_total",
		Help: "PodBound events this scheduler wrote that landed.",
	})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "skiff_scheduler_pod_scheduling_duration_seconds",
		Help:    "Time from a pod's creation (PodCreated) to its PodBound landing in the log.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms to 33 s
	})
	pass := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "skiff_scheduler_pass_duration_seconds",
		Help:    "Time a scheduling pass with pending pods took to decide them and hand them to the writer.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1 ms to 13 s
	})
	if reg != nil {
		if err := errors.Join(reg.Register(attempts), reg.Register(bound), reg.Register(latency), reg.Register(pass)); err != nil {
			return nil, fmt.Errorf("scheduling metrics: %w", err)
		}
	}
	return &Metrics{
		Scheduled:     attempts.WithLabelValues("scheduled"),
		Unschedulable: attempts.WithLabelValues("unschedulable"),
		Errors:        attempts.WithLabelValues("error"),
		Bound:         bound,
		Latency:       latency,
		Pass:          pass,
	}, nil
}
