package runtime_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// BenchmarkPodStart measures, per pod, the time from "create sandbox" to
// "app task running" (StartContainer returned: runc has exec'd the echo
// binary) with the image already imported. One op is one pod; run it with
// -benchtime=50x for 50 pods. It reports p50 and p99 over the pods of the
// run, and the sandbox's share (CreateSandbox alone).
//
//	go test ./internal/runtime -run '^$' -bench PodStart -benchtime 50x -count 5
func BenchmarkPodStart(b *testing.B) {
	runtimetest.RequireRoot(b)
	imgs := runtimetest.Images(b)
	ctd := runtimetest.StartContainerd(b)
	cfg := ctd.RuntimeConfig()
	rt, err := runtime.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	f, err := os.Open(imgs.Echo)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rt.ImportImage(context.Background(), f); err != nil {
		b.Fatal(err)
	}
	f.Close()

	for _, parallel := range []int{1, 10} {
		name := "sequential"
		if parallel > 1 {
			name = fmt.Sprintf("parallel-%d", parallel)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var (
				mu               sync.Mutex
				total, sandboxes []time.Duration
				pods             []runtime.PodRef
			)
			startPod := func(i int) error {
				uid := make([]byte, 8)
				rand.Read(uid)
				pod := runtime.PodRef{UID: hex.EncodeToString(uid), Name: fmt.Sprintf("echo-%d", i), Namespace: "bench"}
				mu.Lock()
				pods = append(pods, pod)
				mu.Unlock()
				start := time.Now()
				if _, err := rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod}); err != nil {
					return err
				}
				sandboxDone := time.Since(start)
				id, err := rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: pod, Name: "echo", Image: runtimetest.EchoImage})
				if err != nil {
					return err
				}
				if err := rt.StartContainer(ctx, id); err != nil {
					return err
				}
				took := time.Since(start)
				mu.Lock()
				total, sandboxes = append(total, took), append(sandboxes, sandboxDone)
				mu.Unlock()
				return nil
			}
			// Remove the pods even when the benchmark fails.
			defer func() {
				for _, pod := range pods {
					if err := rt.RemoveSandbox(ctx, pod); err != nil {
						b.Error(err)
					}
				}
			}()
			b.ResetTimer()
			for i := 0; i < b.N; i += parallel {
				var wg sync.WaitGroup
				errs := make(chan error, parallel)
				for j := i; j < min(i+parallel, b.N); j++ {
					wg.Add(1)
					go func() { defer wg.Done(); errs <- startPod(j) }()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(ms(percentile(total, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(total, 99)), "p99-ms")
			b.ReportMetric(ms(percentile(sandboxes, 50)), "sandbox-p50-ms")
			b.ReportMetric(0, "ns/op") // wall time per op mixes in the parallelism; the percentiles say it
		})
	}
}

// percentile is the nearest-rank percentile.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
