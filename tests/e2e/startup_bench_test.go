package e2e_test

import (
	"fmt"
	"os"
	"slices"
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

// startupPath is one way the node agent starts pods, selected by its flags.
type startupPath struct {
	name  string
	flags []string
}

// startupPaths are compared round by round on one node: "before" is how the agent started
// pods until December 2026 (runc, the loopback CNI plugin, a pause container with a seccomp
// filter), "pause" the default of 5 December 2026 until pinned sandboxes became it (crun when it
// works, lo brought up in-process, a pause container without a filter), "pinned" today's
// default (the same without a pause container: the pod's namespaces pinned as files).
var startupPaths = []startupPath{
	{"before", []string{"--oci-runtime", "runc", "--cni-loopback-plugin", "--sandbox", "pause", "--sandbox-seccomp"}},
	{"pause", []string{"--sandbox", "pause"}},
	{"pinned", nil},
}

// BenchmarkPodStartup measures pod start-up latency on one node with the image present: the
// time from each pod's PodCreated to its first PodStatusReported with phase Running, read from
// the log, for 10, 20 and 50 pods created at once (a Deployment scaled from 0), and for a single
// pod as the reference. Run it as
//
//	go test ./e2e -run '^$' -bench PodStartup -benchtime 1x -count 5
//
// and take the medians: one cluster serves the whole benchmark, and each size runs -count
// times on it, the Deployment scaled back to 0 (and every pod gone) in between. Each run is one
// round per path of startupPaths, in alternating order, the agent restarted with the path's
// flags in between, so that both paths see the same machine load; metrics are prefixed with the
// path ("pinned-p99-ms"). p99 of 10, 20 or 50 samples is their maximum. Besides latency it
// reports the node's CPU time per pod by process class (agent, CNI plugins, containerd, `shim
// start`, shims, runc or crun, the containers' own processes) and how busy the machine was; with SKIFF_E2E_LOG_LEVEL=debug it
// also logs where on the node the time went (see logBreakdown).
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

	current := "pinned" // the agent runs with the default flags
	use := func(p startupPath) {
		if current != p.name {
			c.RestartAgent("node1", p.flags...)
			current = p.name
		}
	}
	// One pod at a time is the reference: what the node needs when nothing else competes.
	for _, n := range []int{1, 10, 20, 50} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			results := map[string]*pathResult{}
			for _, p := range startupPaths {
				results[p.name] = &pathResult{}
			}
			for i := 0; i < b.N; i++ {
				order := slices.Clone(startupPaths)
				if results[order[0].name].rounds%2 == 1 {
					slices.Reverse(order)
				}
				for _, p := range order {
					use(p)
					results[p.name].add(startupRound(b, c, n, p.name))
				}
			}
			for _, p := range startupPaths {
				r := results[p.name]
				logBreakdown(b, p.name, c, r.pods, r.from, r.to)
				r.report(b, p.name)
			}
			b.ReportMetric(0, "ns/op") // the wall time of a round says nothing more than the above
		})
	}
}

// pathResult collects the rounds of one path.
type pathResult struct {
	rounds      int
	pods        []startup.Pod
	all         []time.Duration // from the scale command to the last pod running
	cpu         cluster.NodeCPU
	busy, total time.Duration
	from, to    time.Time
}

func (r *pathResult) add(o roundResult) {
	r.rounds++
	r.pods = append(r.pods, o.pods...)
	r.all = append(r.all, o.last.Sub(o.start))
	r.cpu = r.cpu.Add(o.cpu)
	r.busy, r.total = r.busy+o.busy, r.total+o.total
	if r.from.IsZero() {
		r.from = o.start
	}
	r.to = o.last
}

func (r *pathResult) report(b *testing.B, path string) {
	s := startup.Summarize(startup.Latencies(r.pods))
	m := func(v float64, unit string) { b.ReportMetric(v, path+"-"+unit) }
	m(msf(s.P50), "p50-ms")
	m(msf(s.P99), "p99-ms")
	m(msf(startup.Summarize(r.all).P50), "all-running-ms")
	m(msf(startup.Summarize(startup.StageLatencies(r.pods, startup.Stages[0])).P99), "schedule-p99-ms")
	per := r.cpu.Per(len(r.pods))
	m(msf(per.Total()), "node-cpu-ms/pod")
	for _, part := range []struct {
		name string
		d    time.Duration
	}{{"agent", per.Agent}, {"cni", per.CNI}, {"containerd", per.Containerd}, {"shimstart", per.ShimRun},
		{"shims", per.Shims}, {"oci", per.Runc}, {"containers", per.Containers}} {
		m(msf(part.d), part.name+"-cpu-ms/pod")
	}
	m(100*float64(r.busy)/float64(max(r.total, 1)), "machine-busy-%")
}

// roundResult is one round: n pods started at once and stopped again.
type roundResult struct {
	pods        []startup.Pod
	start, last time.Time
	cpu         cluster.NodeCPU
	busy, total time.Duration
}

// startupRound scales the bench Deployment to n, waits until all n pods run, measures, and
// scales it back to 0 (outside the timer). The agent's log lines of the round are added to its
// pods before the agent can restart.
func startupRound(b *testing.B, c *cluster.Cluster, n int, path string) roundResult {
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
	busy1, idle1 := cluster.MachineCPU()
	used := c.Node("node1").CPU().Sub(cpu0)
	startup.AddAgentLog(round, c.Node("node1").AgentLog())
	r := roundResult{pods: round, start: start, last: last, cpu: used, busy: busy1 - busy0, total: busy1 - busy0 + idle1 - idle0}
	b.Logf("%s: %d pods running after %v; CPU per pod on the node: %v; control plane %v in all; "+
		"the machine was busy %.0f%% of %v CPU time (%v busy); load average %s",
		path, n, ms(last.Sub(start)), used.Per(n), ms(c.ControlPlaneCPU()-cp0),
		100*float64(r.busy)/float64(max(r.total, 1)), ms(r.total), ms(r.busy), loadAverage())

	b.StopTimer()
	if _, err := c.Skiff("scale", "deployment", "bench", "--replicas", "0"); err != nil {
		b.Fatal(err)
	}
	waitGone(b, c, "bench-")
	b.StartTimer()
	return r
}

// loadAverage is the machine's 1-minute load average, from /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// logBreakdown logs where the start-up time of a path went, per stage: from the log's events,
// and, when the agent logs at debug level (SKIFF_E2E_LOG_LEVEL=debug), inside the node (the
// rounds added the agent's lines to their pods). It also counts podnet's Setup calls for pods
// whose network was already up ("pod network already set up", a debug line) in the agent's
// current log: work a pod worker repeats when it is woken again (many per pod before commit
// 604f335).
func logBreakdown(b *testing.B, path string, c *cluster.Cluster, pods []startup.Pod, from, to time.Time) {
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
	msg := fmt.Sprintf("%s: p50/p99 by stage: %s", path, line(startup.Stages))
	if nodeStages := line(startup.NodeStages); nodeStages != "" {
		resyncs := startup.CountLines(c.Node("node1").AgentLog(), "pod network already set up", from, to)
		msg += fmt.Sprintf("\non the node: %s; %d repeated network set-ups in the agent's current log", nodeStages, resyncs)
	}
	b.Log(msg)
}
