package rules

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Syncer's instruments, label values resolved when made: recording a sync is a
// few atomic adds.
type Metrics struct {
	// FullSync and IncrementalSync time each successful Sync (one that replaced the table, or
	// one that changed only what differed, possibly nothing).
	FullSync, IncrementalSync prometheus.Observer
	// FullSyncs counts the syncs that replaced the table: one per start, and one after each
	// failed sync.
	FullSyncs prometheus.Counter
	// RuleChanges counts the map elements the transactions added or deleted, and the lb-N
	// chains they created.
	RuleChanges prometheus.Counter
	// SyncErrors counts the transactions the kernel refused or did not acknowledge.
	SyncErrors prometheus.Counter
}

// NewMetrics makes the instruments and registers them with reg; nil reg: registered nowhere.
// Errors: prometheus.AlreadyRegisteredError when reg holds them already.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "skiff_netproxy_sync_duration_seconds",
		Help:    "Time a successful sync of the nftables table took, from planning to the kernel's acknowledgement, by mode: full (the table replaced) or incremental.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms to 3.3 s
	}, []string{"mode"})
	full := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_netproxy_full_syncs_total",
		Help: "Syncs that replaced the whole nftables table (at start and after a failed sync).",
	})
	changes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_netproxy_rule_changes_total",
		Help: "Map elements and chains the net proxy's transactions added or deleted.",
	})
	errs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_netproxy_sync_errors_total",
		Help: "Syncs whose transaction the kernel refused or did not acknowledge (the next one is full).",
	})
	if reg != nil {
		if err := errors.Join(reg.Register(duration), reg.Register(full), reg.Register(changes), reg.Register(errs)); err != nil {
			return nil, fmt.Errorf("net proxy metrics: %w", err)
		}
	}
	return &Metrics{
		FullSync:        duration.WithLabelValues("full"),
		IncrementalSync: duration.WithLabelValues("incremental"),
		FullSyncs:       full,
		RuleChanges:     changes,
		SyncErrors:      errs,
	}, nil
}
