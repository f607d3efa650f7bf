package natscluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

var (
	schedRuns  = flag.Int("schedbench.runs", 3, "BenchmarkSchedule: runs of each target")
	schedNodes = flag.Int("schedbench.nodes", 1000, "BenchmarkSchedule: simulated nodes")
	schedPods  = flag.Int("schedbench.pods-per-node", 30, "BenchmarkSchedule: pods per node")
)

// BenchmarkSchedule runs schedbench against the 3-server R3 cluster (TLS, admin's creds, sync
// always), with the embedded R1 baseline before each run in the same invocation. schedbench and
// the simulated nodes run in the client namespace; the numbers are in its output (pods bound per
// second from the start of scheduling):
//
//	go test -run '^$' -bench Schedule -benchtime 1x -v ./natscluster -schedbench.runs 5
func BenchmarkSchedule(b *testing.B) {
	c := Start(b, Options{})
	c.Bootstrap(3)
	bin := b.TempDir()
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", bin+"/", "skiff.dev/services/scheduler/cmd/schedbench", "skiff.dev/services/nodeagent/internal/simulate/simnodes")
	build.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build schedbench: %v\n%s", err, out)
	}
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		out, err := c.Exec(ctx, filepath.Join(bin, "schedbench"),
			"--config", c.Config("admin"), "--replicas", "3", "-compare-embedded",
			"-runs", fmt.Sprint(*schedRuns), "-nodes", fmt.Sprint(*schedNodes), "-pods-per-node", fmt.Sprint(*schedPods),
			"-sim", filepath.Join(bin, "simnodes"), "-dir", bin)
		cancel()
		b.Logf("schedbench:\n%s", out)
		if err != nil {
			b.Fatalf("schedbench: %v", err)
		}
	}
}
