package rules

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// Each sync is counted and timed by its mode, with the elements and chains it changed; a failed
// one is counted as an error and makes the next one full.
func TestMetricsFollowSyncs(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFake()
	s := newFakeSyncer(t, f, Config{Metrics: m})
	ctx := context.Background()
	one := []ServicePort{svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.2", 8080))}
	two := append(one, svc("db", "10.96.0.2", TCP, 5432, ep("10.88.0.3", 5432), ep("10.88.0.4", 5432)))

	type counts struct{ full, incremental, fullSyncs, errors float64 }
	now := func() counts {
		return counts{
			full:        float64(histCount(t, reg, "full")),
			incremental: float64(histCount(t, reg, "incremental")),
			fullSyncs:   testutil.ToFloat64(m.FullSyncs),
			errors:      testutil.ToFloat64(m.SyncErrors),
		}
	}
	steps := []struct {
		name    string
		fail    bool
		desired []ServicePort
		want    counts
		// changes is how much RuleChanges grows: map elements plus new lb-N chains.
		changes float64
	}{
		// A new table: one service-ips and one endpoints element, and chain lb-1.
		{name: "first sync is full", desired: one, want: counts{full: 1, fullSyncs: 1}, changes: 3},
		{name: "nothing changed", desired: one, want: counts{full: 1, incremental: 1, fullSyncs: 1}, changes: 0},
		// db: a service-ips element, two endpoints elements and chain lb-2.
		{name: "one Service more", desired: two, want: counts{full: 1, incremental: 2, fullSyncs: 1}, changes: 4},
		{name: "the kernel refuses", fail: true, desired: one, want: counts{full: 1, incremental: 2, fullSyncs: 1, errors: 1}},
		{name: "after a failure, full", desired: one, want: counts{full: 2, incremental: 2, fullSyncs: 2, errors: 1}, changes: 3},
	}
	for _, step := range steps {
		before := testutil.ToFloat64(m.RuleChanges)
		if step.fail {
			f.FailNextTransaction(unix.ENOBUFS)
		}
		err := s.Sync(ctx, step.desired)
		if (err != nil) != step.fail {
			t.Fatalf("%s: Sync = %v", step.name, err)
		}
		if got := now(); got != step.want {
			t.Errorf("%s: counts %+v, want %+v", step.name, got, step.want)
		}
		if got := testutil.ToFloat64(m.RuleChanges) - before; got != step.changes {
			t.Errorf("%s: rule changes grew by %v, want %v", step.name, got, step.changes)
		}
	}
}

// histCount is the observation count of the sync duration histogram for mode.
func histCount(t *testing.T, reg prometheus.Gatherer, mode string) uint64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "skiff_netproxy_sync_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "mode" && l.GetValue() == mode {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no sync duration series for mode %s", mode)
	return 0
}
