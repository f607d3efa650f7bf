package runtime_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	rt, _ := echoRuntime(b)

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

// BenchmarkSandboxCPU measures what a pod's sandbox (the pause container) costs the node
// against what its app container costs: b.N sandboxes are created one after another, then an
// echo container is created and started in each. It reports CPU per pod for each phase, by
// process: containerd with the `shim start` launchers it reaps, the shims, the OCI runtime runs
// the shims reap, the containers' own processes, and this process (the runtime's client side).
// The sandbox's share is what a pod without a pause process would save, less the start of the
// shim, which its first app container would then pay. Run it as
//
//	go test ./internal/runtime -run '^$' -bench SandboxCPU -benchtime 20x -count 3
//	SKIFF_TEST_OCI_RUNTIME=runc go test ./internal/runtime -run '^$' -bench SandboxCPU -benchtime 20x -count 3
func BenchmarkSandboxCPU(b *testing.B) {
	rt, ctd := echoRuntime(b)
	ctx := context.Background()
	pods := make([]runtime.PodRef, b.N)
	for i := range pods {
		uid := make([]byte, 8)
		rand.Read(uid)
		pods[i] = runtime.PodRef{UID: hex.EncodeToString(uid), Name: fmt.Sprintf("echo-%d", i), Namespace: "bench"}
	}
	defer func() {
		for _, pod := range pods {
			if err := rt.RemoveSandbox(ctx, pod); err != nil {
				b.Error(err)
			}
		}
	}()
	// One pod first, so that the image's facts are known as they are on a busy node.
	warm := runtime.PodRef{UID: "warmup", Name: "warmup", Namespace: "bench"}
	if _, err := rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: warm}); err != nil {
		b.Fatal(err)
	}
	if _, err := rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: warm, Name: "echo", Image: runtimetest.EchoImage}); err != nil {
		b.Fatal(err)
	}
	if err := rt.RemoveSandbox(ctx, warm); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	c0 := readNodeCPU(ctd)
	for _, pod := range pods {
		if _, err := rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod}); err != nil {
			b.Fatal(err)
		}
	}
	c1 := readNodeCPU(ctd)
	for _, pod := range pods {
		id, err := rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: pod, Name: "echo", Image: runtimetest.EchoImage})
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	c2 := readNodeCPU(ctd)
	b.StopTimer()
	report := func(prefix string, d nodeCPU) {
		n := float64(b.N)
		b.ReportMetric(ms(d.containerd)/n, prefix+"-containerd-ms")
		b.ReportMetric(ms(d.shims)/n, prefix+"-shims-ms")
		b.ReportMetric(ms(d.oci)/n, prefix+"-oci-ms")
		b.ReportMetric(ms(d.containers)/n, prefix+"-containers-ms")
		b.ReportMetric(ms(d.client)/n, prefix+"-client-ms")
		b.ReportMetric(ms(d.total())/n, prefix+"-cpu-ms")
	}
	report("sandbox", c1.sub(c0))
	report("app", c2.sub(c1))
	b.ReportMetric(0, "ns/op")
}

// nodeCPU is CPU time by process, as BenchmarkSandboxCPU reports it.
type nodeCPU struct{ containerd, shims, oci, containers, client time.Duration }

func (a nodeCPU) sub(o nodeCPU) nodeCPU {
	return nodeCPU{a.containerd - o.containerd, a.shims - o.shims, a.oci - o.oci, a.containers - o.containers, a.client - o.client}
}

func (a nodeCPU) total() time.Duration {
	return a.containerd + a.shims + a.oci + a.containers + a.client
}

func readNodeCPU(ctd *runtimetest.Containerd) nodeCPU {
	var c nodeCPU
	self, children := procCPU(ctd.PID())
	c.containerd = self + children
	for _, shim := range ctd.ShimPIDs() {
		self, children := procCPU(shim)
		c.shims += self
		c.oci += children
		for _, ctr := range childPIDs(shim) {
			self, children := procCPU(ctr)
			c.containers += self + children
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return c
}

// procCPU is utime + stime of pid, and cutime + cstime (its reaped children), from /proc.
func procCPU(pid int) (self, children time.Duration) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 15 {
		return 0, 0
	}
	tick := func(s string) time.Duration {
		v, _ := strconv.ParseInt(s, 10, 64)
		return time.Duration(v) * 10 * time.Millisecond // USER_HZ is 100
	}
	return tick(f[11]) + tick(f[12]), tick(f[13]) + tick(f[14])
}

func childPIDs(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// echoRuntime is a runtime on a containerd of the benchmark's own (returned too), with the echo image imported;
// it is closed when the benchmark ends. Root only: it fails without.
func echoRuntime(b *testing.B) (*runtime.Runtime, *runtimetest.Containerd) {
	b.Helper()
	runtimetest.RequireRoot(b)
	imgs := runtimetest.Images(b)
	ctd := runtimetest.StartContainerd(b)
	rt, err := runtime.New(context.Background(), ctd.RuntimeConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close() })
	f, err := os.Open(imgs.Echo)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := rt.ImportImage(context.Background(), f); err != nil {
		b.Fatal(err)
	}
	return rt, ctd
}
