package e2e_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/telemetry/telemetrytest"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/startup"
)

const benchDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
spec:
  replicas: 0
  selector:
    matchLabels:
      app: bench
  template:
    metadata:
      labels:
        app: bench
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: skiff.dev/echo:v1
`

// BenchmarkPodStartup measures pod start-up latency on one node with the image present: the
// time from each pod's PodCreated to its first PodStatusReported with phase Running, read from
// the log, for 10 and for 50 pods created at once (a Deployment scaled from 0), and for a single
// pod as the reference. Run it as
//
//	go test ./e2e -run '^$' -bench PodStartup -benchtime 1x -count 5
//
// and take the medians: one cluster serves the whole benchmark, and each size runs -count
// times on it, the Deployment scaled back to 0 (and every pod gone) in between. p99 of 10 or 50
// samples is their maximum. Besides latency it reports the node's CPU time per pod (agent, CNI
// plugins, containerd, shims, runc) and how busy the machine was; with SKIFF_E2E_LOG_LEVEL=debug
// it also logs where on the node the time went (see logBreakdown).
//
// With SKIFF_E2E_TRACE=1 every process traces, exporting over OTLP/gRPC to a receiver in the
// control plane's namespace that counts the spans: the same benchmark with tracing's cost.
func BenchmarkPodStartup(b *testing.B) {
	var opts cluster.Options
	if os.Getenv("SKIFF_E2E_TRACE") != "" {
		opts.Prepare = func(c *cluster.Cluster) {
			recv, stop, err := telemetrytest.Serve(c.ListenControlPlane, cluster.ControlPlaneAddress, false)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { stop(); b.Logf("trace receiver: %d spans", recv.Count()) })
			for _, kv := range recv.Env("grpc") {
				k, v, _ := strings.Cut(kv, "=")
				b.Setenv(k, v)
			}
			b.Setenv("OTEL_BSP_SCHEDULE_DELAY", "") // the SDK's default, 5 s
		}
	}
	c := cluster.New(b, opts)
	// The image is imported and unpacked by a first pod: the benchmark measures start-up with
	// the image present, as the issue asks.
	c.Apply(podSpec{name: "warmup", image: echoImage, grace: 1}.manifest())
	waitRunning(b, c, "warmup")
	if _, err := c.Skiff("delete", "pod", "warmup"); err != nil {
		b.Fatal(err)
	}
	waitGone(b, c, "warmup")
	c.Apply(benchDeployment)

	// One pod at a time is the reference: what the node needs when nothing else competes.
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			var pods []startup.Pod
			var all []time.Duration // from the scale command to the last pod running
			var nodeCPU cluster.NodeCPU
			var busy, total time.Duration
			var windowFrom, windowTo time.Time // of the rounds, for the agent's log
			for i := 0; i < b.N; i++ {
				from := c.Head()
				cpu0, cp0 := c.Node("node1").CPU(), c.ControlPlaneCPU()
				busy0, idle0 := cluster.MachineCPU()
				start := time.Now()
				if _, err := c.Skiff("scale", "deployment", "bench", "--replicas", strconv.Itoa(n)); err != nil {
					b.Fatal(err)
				}
				var round []startup.Pod
				c.WaitFor(fmt.Sprintf("%d bench pods running", n), func() bool {
					round = startup.FromEvents(c.EventsSince(from, events.KindFilter(events.KindPod),
						events.KindFilter(events.KindBind), events.KindFilter(events.KindStatus)))
					return len(startup.Latencies(round)) == n
				})
				last := time.Time{}
				for _, p := range round {
					if p.Running.After(last) {
						last = p.Running
					}
				}
				all = append(all, last.Sub(start))
				if windowFrom.IsZero() {
					windowFrom = start
				}
				windowTo = last
				busy1, idle1 := cluster.MachineCPU()
				used := c.Node("node1").CPU().Sub(cpu0)
				nodeCPU = nodeCPU.Add(used)
				busy, total = busy+busy1-busy0, total+busy1-busy0+idle1-idle0
				b.Logf("round %d: %d pods running after %v; CPU per pod on the node: %v; control plane %v in all; "+
					"the machine was busy %.0f%% of %v CPU time (%v busy)",
					i, n, ms(last.Sub(start)), used.Per(n), ms(c.ControlPlaneCPU()-cp0),
					100*float64(busy1-busy0)/float64(busy1-busy0+idle1-idle0), ms(busy1-busy0+idle1-idle0), ms(busy1-busy0))
				pods = append(pods, round...)

				b.StopTimer()
				if _, err := c.Skiff("scale", "deployment", "bench", "--replicas", "0"); err != nil {
					b.Fatal(err)
				}
				waitGone(b, c, "bench-")
				b.StartTimer()
			}
			s := startup.Summarize(startup.Latencies(pods))
			logBreakdown(b, c, pods, windowFrom, windowTo)
			b.ReportMetric(msf(s.P50), "p50-ms")
			b.ReportMetric(msf(s.P99), "p99-ms")
			b.ReportMetric(msf(startup.Summarize(all).P50), "all-running-ms")
			for _, st := range startup.Stages {
				b.ReportMetric(msf(startup.Summarize(startup.StageLatencies(pods, st)).P99), st.Name+"-p99-ms")
			}
			b.ReportMetric(msf(nodeCPU.Per(len(pods)).Total()), "node-cpu-ms/pod")
			b.ReportMetric(100*float64(busy)/float64(max(total, 1)), "machine-busy-%")
			b.ReportMetric(0, "ns/op") // the wall time of a round says nothing more than the above
		})
	}
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// logBreakdown logs where the start-up time went, per stage: from the log's events, and, when the
// agent logs at debug level (SKIFF_E2E_LOG_LEVEL=debug), inside the node. It also counts podnet's
// Setup calls for pods whose network was already up ("pod network already set up", a debug
// line): work a pod worker repeats when it is woken again (many per pod before commit 604f335).
func logBreakdown(b *testing.B, c *cluster.Cluster, pods []startup.Pod, from, to time.Time) {
	log := c.Node("node1").AgentLog()
	startup.AddAgentLog(pods, log)
	line := func(stages []startup.Stage) string {
		var parts []string
		for _, st := range stages {
			s := startup.Summarize(startup.StageLatencies(pods, st))
			if s.N > 0 {
				parts = append(parts, fmt.Sprintf("%s %v/%v", st.Name, s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond)))
			}
		}
		return strings.Join(parts, ", ")
	}
	msg := fmt.Sprintf("p50/p99 by stage: %s", line(startup.Stages))
	if nodeStages := line(startup.NodeStages); nodeStages != "" {
		resyncs := startup.CountLines(log, "pod network already set up", from, to)
		msg += fmt.Sprintf("\non the node: %s; %d repeated network set-ups (%.1f per pod)",
			nodeStages, resyncs, float64(resyncs)/float64(max(len(pods), 1)))
	}
	b.Log(msg)
}
