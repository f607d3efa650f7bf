package podnet

import (
	"context"
	"fmt"
	"slices"
	"syscall"
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
	if podnettest.BenchInNodeNetns(b, "100x") {
		benchSetupTeardown(b, Config{})
	}
}

// BenchmarkSetupTeardownLoopbackPlugin is BenchmarkSetupTeardown with the pod's lo brought up
// by the loopback CNI plugin, as before: the baseline of the in-process way.
func BenchmarkSetupTeardownLoopbackPlugin(b *testing.B) {
	if podnettest.BenchInNodeNetns(b, "100x") {
		benchSetupTeardown(b, Config{LoopbackPlugin: true})
	}
}

func benchSetupTeardown(b *testing.B, cfg Config) {
	n := newTestNetwork(b, cfg)
	ctx := context.Background()
	// The first pod pays for creating the bridge; that is not what a pod costs.
	warm := podnettest.NewPodNetns(b)
	if _, err := n.Setup(ctx, "warmup", warm.Path); err != nil {
		b.Fatal(err)
	}
	if err := n.Teardown(ctx, "warmup", warm.Path); err != nil {
		b.Fatal(err)
	}
	// A fresh namespace per cycle, as a pod has: its lo starts down.
	pods := make([]*podnettest.Netns, b.N)
	for i := range pods {
		pods[i] = podnettest.NewPodNetns(b)
	}
	setups := make([]time.Duration, 0, b.N)
	teardowns := make([]time.Duration, 0, b.N)
	cycles := make([]time.Duration, 0, b.N)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-%d", i)
		t0 := time.Now()
		if _, err := n.Setup(ctx, id, pods[i].Path); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := n.Teardown(ctx, id, pods[i].Path); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		setups = append(setups, t1.Sub(t0))
		teardowns = append(teardowns, t2.Sub(t1))
		cycles = append(cycles, t2.Sub(t0))
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(cycles, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(cycles, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(setups, 50)), "setup-p50-ms")
	b.ReportMetric(ms(percentile(setups, 99)), "setup-p99-ms")
	b.ReportMetric(ms(percentile(teardowns, 50)), "teardown-p50-ms")
	b.ReportMetric(ms(percentile(teardowns, 99)), "teardown-p99-ms")
	b.ReportMetric(ms(cpu)/float64(b.N), "cpu-ms/cycle")
}

// cpuTime is the CPU time (user + system) of this process and of the children it has
// reaped: the CNI plugins.
func cpuTime(b *testing.B) time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// percentile is the nearest-rank percentile p of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}
