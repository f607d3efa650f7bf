package podnet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"skiff.dev/services/nodeagent/internal/podnet/podnettest"
)

// BenchmarkSetupTeardown measures one pod's Setup followed by its Teardown (the pod's
// namespace stays alive, as when the agent stops a running pod). Each run of it is one fresh
// node namespace doing 100 cycles; run it as
//
//	go test -run '^$' -bench SetupTeardown -benchtime=1x -count=5 ./internal/podnet
//
// and take the median of the runs. It reports the latency percentiles of the cycles.
func BenchmarkSetupTeardown(b *testing.B) {
	if !podnettest.BenchInNodeNetns(b, "100x") {
		return
	}
	n := newTestNetwork(b, Config{})
	pod := podnettest.NewNetns(b)
	ctx := context.Background()
	// The first pod pays for creating the bridge; that is not what a pod costs.
	if _, err := n.Setup(ctx, "warmup", pod.Path); err != nil {
		b.Fatal(err)
	}
	if err := n.Teardown(ctx, "warmup", pod.Path); err != nil {
		b.Fatal(err)
	}
	setups := make([]time.Duration, 0, b.N)
	teardowns := make([]time.Duration, 0, b.N)
	cycles := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-%d", i)
		t0 := time.Now()
		if _, err := n.Setup(ctx, id, pod.Path); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := n.Teardown(ctx, id, pod.Path); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		setups = append(setups, t1.Sub(t0))
		teardowns = append(teardowns, t2.Sub(t1))
		cycles = append(cycles, t2.Sub(t0))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(cycles, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(cycles, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(setups, 50)), "setup-p50-ms")
	b.ReportMetric(ms(percentile(setups, 99)), "setup-p99-ms")
	b.ReportMetric(ms(percentile(teardowns, 50)), "teardown-p50-ms")
	b.ReportMetric(ms(percentile(teardowns, 99)), "teardown-p99-ms")
}

// percentile is the nearest-rank percentile p of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}
