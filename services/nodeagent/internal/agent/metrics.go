package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"skiff.dev/events"
)

// Metrics are the agent's instruments, label values resolved when made: recording is a few
// atomic adds. Every pod worker records into the same set.
type Metrics struct {
	// Startup is each pod's time from when this agent first saw its binding to the status
	// report that says Running. Pods this agent already reported on before it (re)started are
	// not timed: their binding was seen by an earlier run.
	Startup prometheus.Observer
	// ContainerRestarts counts containers restarted after they exited (restart policy).
	ContainerRestarts prometheus.Counter
	// ImageFromStore and ImageFromRegistry time each image brought to the node that was not
	// there, from the cluster's image store or pulled from its registry.
	ImageFromStore, ImageFromRegistry prometheus.Observer
	// Running is how many of this node's pods were last reported Running.
	Running prometheus.Gauge
}

// NewMetrics makes the instruments and registers them with reg; nil reg: registered nowhere.
// Errors: prometheus.AlreadyRegisteredError when reg holds them already.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	startup := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "skiff_nodeagent_pod_startup_duration_seconds",
		Help:    "Time from the agent first seeing a pod's binding (PodBound) to its report that the pod is Running.",
		Buckets: prometheus.ExponentialBuckets(0.025, 2, 14), // 25 ms to 205 s
	})
	restarts := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_nodeagent_container_restarts_total",
		Help: "Containers the agent restarted after they exited.",
	})
	fetch := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "skiff_nodeagent_image_fetch_duration_seconds",
		Help:    "Time to bring a missing image onto the node, by source: store (the cluster's image store) or registry.",
		Buckets: prometheus.ExponentialBuckets(0.025, 2, 14),
	}, []string{"source"})
	running := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "skiff_nodeagent_pods_running",
		Help: "Pods of this node whose last reported phase is Running.",
	})
	if reg != nil {
		if err := errors.Join(reg.Register(startup), reg.Register(restarts), reg.Register(fetch), reg.Register(running)); err != nil {
			return nil, fmt.Errorf("node agent metrics: %w", err)
		}
	}
	return &Metrics{
		Startup:           startup,
		ContainerRestarts: restarts,
		ImageFromStore:    fetch.WithLabelValues("store"),
		ImageFromRegistry: fetch.WithLabelValues("registry"),
		Running:           running,
	}, nil
}

// reported records a pod's status report going from old (nil: none yet) to st. seen is when
// the agent first saw the pod's binding, zero once timed (or not to be timed).
func (m *Metrics) reported(old, st *events.PodStatus, seen *time.Time, now time.Time) {
	was := old != nil && old.Phase == events.PodRunning
	is := st != nil && st.Phase == events.PodRunning
	switch {
	case is && !was:
		m.Running.Inc()
	case was && !is:
		m.Running.Dec()
	}
	if is && !seen.IsZero() {
		m.Startup.Observe(now.Sub(*seen).Seconds())
		*seen = time.Time{}
	}
}
