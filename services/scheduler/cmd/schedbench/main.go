// Command schedbench measures how fast the scheduler binds pods: pods bound per second from the
// start of scheduling (pods already in the log as PodCreated, nodes registered, projection
// synced) until the projection shows every pod bound, and the time until the simulated nodes
// reported them all Running.
//
// It runs an embedded NATS server, the scheduler and the projection in this process, and the
// simulated nodes as a separate process (simnodes, built from the nodeagent module), so the two
// sides talk only through JetStream as in a real cluster, on the same cores.
//
//	go run ./services/scheduler/cmd/schedbench -nodes 5000 -pods-per-node 30 -runs 5
//
// With --server (or --config), it runs against that cluster instead: each run deletes the stream
// and the lease bucket and bootstraps them again with --replicas, so the creds must be admin's
// (only the bootstrap step creates the log); the simulated nodes connect with the same settings.
// The scheduler writes as the leader does, fenced on a term it begins (store.Fenced); -unfenced
// writes plain conditional appends, for comparison. -compare-embedded runs the embedded baseline
// before each cluster run, on the same machine in the same invocation:
//
//	schedbench --config DIR/config/admin.yaml --replicas 3 -compare-embedded -runs 5
//
// -compare-metrics runs each run twice, without and then with metrics: the scheduler's
// instruments and the projection's registered in a registry, served on a loopback port and
// scraped every -scrape-interval, as skiff-scheduler --metrics-addr under Prometheus does.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/client"
	"skiff.dev/events/live"
	"skiff.dev/events/metrics"
	"skiff.dev/events/natsserver"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
	"skiff.dev/services/scheduler/internal/leader"
	"skiff.dev/services/scheduler/internal/scheduling"
)

type options struct {
	nodes, podsPerNode, ownerSize, runs int
	batch, inflight, percent, writers   int
	sim, cpuProfile, dir                string
	verbose, unfenced                   bool
	compareMetrics                      bool
	// traceCompare runs, in each run, the scheduler untraced and traced (exporting to an
	// in-process OTLP receiver).
	traceCompare bool
	// receiverInProcess serves the OTLP receiver in this process (its CPU counted with the
	// scheduler's), not in a child process of its own as a collector would run.
	receiverInProcess bool
	memProfile        string
	scrapeInterval    time.Duration

	// cluster: the NATS cluster to run against; empty Server and Config: an embedded server.
	cluster         client.Options
	replicas        int
	compareEmbedded bool
}

// remote reports whether the runs go to a cluster rather than an embedded server.
func (o options) remote() bool { return o.cluster.Server != "" || o.cluster.Config != "" }

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 1000, "simulated nodes")
	flag.IntVar(&o.podsPerNode, "pods-per-node", 30, "pods per node")
	flag.IntVar(&o.ownerSize, "owner-size", 100, "pods per owning Deployment")
	flag.IntVar(&o.runs, "runs", 1, "runs, each on a fresh server")
	flag.IntVar(&o.batch, "batch", 0, "scheduler BatchSize (0: default)")
	flag.IntVar(&o.inflight, "inflight", 0, "scheduler MaxInFlight (0: default)")
	flag.IntVar(&o.writers, "writers", 0, "scheduler Writers (0: default)")
	flag.IntVar(&o.percent, "percent", 0, "scheduler PercentageOfNodesToScore (0: adaptive)")
	flag.StringVar(&o.sim, "sim", "", "simnodes binary (default: go build it)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the scheduling phase of the first run")
	flag.StringVar(&o.dir, "dir", "", "directory for the server's data (default: a temporary one)")
	flag.BoolVar(&o.verbose, "v", false, "log scheduler and server warnings")
	flag.BoolVar(&o.compareMetrics, "compare-metrics", false, "run each run without and with metrics (registered, served and scraped)")
	flag.DurationVar(&o.scrapeInterval, "scrape-interval", time.Second, "with -compare-metrics: how often the metrics are scraped")
	flag.BoolVar(&o.unfenced, "unfenced", false, "write plain conditional appends, not batches fenced on a leader term (as before fencing)")
	o.cluster.Flags(flag.CommandLine)
	flag.IntVar(&o.replicas, "replicas", 3, "with --server/--config: replicas of the stream and buckets each run bootstraps")
	flag.BoolVar(&o.compareEmbedded, "compare-embedded", false, "with --server/--config: run the embedded baseline before each cluster run")
	flag.BoolVar(&o.traceCompare, "trace-compare", false, "run each run untraced and tracing every pod, exported over OTLP/gRPC to an in-process receiver")
	flag.BoolVar(&o.receiverInProcess, "receiver-in-process", false, "with -trace-compare: serve the OTLP receiver in this process (its CPU counted as the scheduler's), not in a process of its own")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile of the scheduling phase of the first run (the last target of it): allocations since scheduling began")
	receiverChild := flag.Bool("otlp-receiver", false, "internal: serve a counting OTLP receiver (schedbench starts itself so for -trace-compare)")
	flag.Parse()
	if *receiverChild {
		if err := serveReceiver(); err != nil {
			fmt.Fprintln(os.Stderr, "schedbench receiver:", err)
			os.Exit(1)
		}
		return
	}
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		os.Exit(1)
	}
}

func bench(o options) error {
	tmp, err := os.MkdirTemp(o.dir, "schedbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.sim == "" {
		o.sim = filepath.Join(tmp, "simnodes")
		build := exec.Command("go", "build", "-o", o.sim, "skiff.dev/services/nodeagent/internal/simulate/simnodes")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build simnodes: %w", err)
		}
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s/%s, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("nodes=%d pods-per-node=%d pods=%d owner-size=%d\n", o.nodes, o.podsPerNode, o.nodes*o.podsPerNode, o.ownerSize)
	type target struct {
		name    string
		remote  bool
		metrics bool
		traced  bool
	}
	targets := []target{{"embedded-R1", false, false, false}}
	if o.remote() {
		targets = []target{{fmt.Sprintf("cluster-R%d", o.replicas), true, false, false}}
		if o.compareEmbedded {
			targets = append([]target{{"embedded-R1", false, false, false}}, targets...)
		}
	}
	if o.compareMetrics {
		for _, tg := range slices.Clone(targets) {
			targets = append(targets, target{tg.name + "+metrics", tg.remote, true, false})
		}
	}
	var recv receiver
	if o.traceCompare {
		var env []string
		if o.receiverInProcess {
			r, stop, err := telemetrytest.Serve(net.Listen, "127.0.0.1", false)
			if err != nil {
				return err
			}
			defer stop()
			recv, env = inProcessReceiver{r}, r.Env("grpc")
		} else {
			c, err := startReceiver()
			if err != nil {
				return err
			}
			defer c.stop()
			recv, env = c, c.env
		}
		defer func() {
			n, _, _ := recv.stats()
			fmt.Printf("trace receiver: %d spans received\n", n)
		}()
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
		// The SDK's default batch delay (5 s), not the tests' 100 ms.
		os.Unsetenv("OTEL_BSP_SCHEDULE_DELAY")
		for _, tg := range slices.Clone(targets) {
			targets = append(targets, target{tg.name + "+traced", tg.remote, tg.metrics, true})
		}
	}
	rates, bound, running, cpus, recvCPUs := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for i := range o.runs {
		order := targets
		if (o.compareMetrics || o.traceCompare) && i%2 == 1 {
			// Every other run with metrics first: the second of a pair runs in a process that
			// has just done the first's work, which must not count against one side.
			order = slices.Clone(targets)
			slices.Reverse(order)
		}
		for ti, tg := range order {
			// A data directory per run and target: an embedded server must start from an empty log.
			var rv receiver
			if tg.traced {
				rv = recv
			}
			r, err := once(o, tg.remote, tg.metrics, tg.traced, rv, filepath.Join(tmp, fmt.Sprintf("run%d-%d", i, ti)), i == 0 && ti == len(order)-1)
			if err != nil {
				return fmt.Errorf("run %d (%s): %w", i+1, tg.name, err)
			}
			traceNote := ""
			if rv != nil {
				traceNote = fmt.Sprintf("; receiver: %d spans, CPU %.2fs; batcher: %d dropped, %d failed", r.spans, r.recvCPU.Seconds(), r.lost.Dropped, r.lost.Failed)
				if o.receiverInProcess {
					traceNote = fmt.Sprintf("; receiver (in this process, in the CPU): %d spans", r.spans)
				}
			}
			fmt.Printf("run %d %s: %d pods bound in %.2fs = %.0f pods/s (CPU %.2fs); all Running after %.2fs (setup %.1fs)%s\n",
				i+1, tg.name, r.pods, r.bound.Seconds(), float64(r.pods)/r.bound.Seconds(), r.cpu.Seconds(), r.running.Seconds(), r.setup.Seconds(), traceNote)
			cpus[tg.name] = append(cpus[tg.name], r.cpu.Seconds())
			recvCPUs[tg.name] = append(recvCPUs[tg.name], r.recvCPU.Seconds())
			rates[tg.name] = append(rates[tg.name], float64(r.pods)/r.bound.Seconds())
			bound[tg.name] = append(bound[tg.name], r.bound.Seconds())
			running[tg.name] = append(running[tg.name], r.running.Seconds())
		}
	}
	for _, tg := range targets {
		recvNote := ""
		if tg.traced && !o.receiverInProcess {
			recvNote = fmt.Sprintf(" + receiver CPU %.2fs", median(recvCPUs[tg.name]))
		}
		fmt.Printf("median of %d %s: %.0f pods/s bound, %.2fs to bind all (CPU %.2fs%s), %.2fs to all Running\n",
			o.runs, tg.name, median(rates[tg.name]), median(bound[tg.name]), median(cpus[tg.name]), recvNote, median(running[tg.name]))
	}
	// The cost within each pair, whose halves ran back to back: less moved by the load other
	// work puts on a shared machine, which drifts from pair to pair, than the medians' ratio.
	for _, tg := range targets {
		if !tg.traced {
			continue
		}
		base := strings.TrimSuffix(tg.name, "+traced")
		var rate, cpu []float64
		for i := range rates[tg.name] {
			rate = append(rate, rates[tg.name][i]/rates[base][i]-1)
			cpu = append(cpu, cpus[tg.name][i]/cpus[base][i]-1)
		}
		fmt.Printf("tracing cost (%s), median of %d pairs: %+.1f%% pods/s, %+.1f%% CPU of this process\n",
			base, len(rate), 100*median(rate), 100*median(cpu))
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type runResult struct {
	pods                  int
	setup, bound, running time.Duration
	// cpu is the CPU time this process (server, projection, scheduler) spent until all were
	// bound (traced: and their spans exported): less disturbed than the wall clock by other
	// work on a shared machine.
	cpu time.Duration
	// recvCPU is the CPU time the receiver's own process spent over the same interval (traced
	// runs with the receiver out of this process); spans is how many spans it received from
	// the run, counted after the provider's shutdown flushed them.
	recvCPU time.Duration
	spans   int
	// lost are the scheduling spans the batcher counted as dropped (its queue full) or failed.
	lost telemetry.BatcherStats
}

// cpuTime is the CPU time (user and system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func once(o options, remote, withMetrics, traced bool, recv receiver, dir string, profile bool) (runResult, error) {
	setupStart := time.Now()
	logLevel := slog.LevelError
	if o.verbose {
		logLevel = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		nc      *nats.Conn
		simArgs []string
		err     error
	)
	replicas := 1
	if remote {
		replicas = o.replicas
		o.cluster.Name = "schedbench"
		if nc, err = client.Connect(o.cluster); err != nil {
			return runResult{}, err
		}
		if err := reset(ctx, nc); err != nil {
			return runResult{}, err
		}
		simArgs = clusterArgs(o.cluster)
	} else {
		srv, err := natsserver.Start(natsserver.Config{DataDir: dir})
		if err != nil {
			return runResult{}, err
		}
		defer srv.Stop()
		if nc, err = nats.Connect(srv.URL()); err != nil {
			return runResult{}, err
		}
		simArgs = []string{"-nats", srv.URL()}
	}
	defer nc.Close()
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{Replicas: replicas, Logger: logger})
	if err != nil {
		return runResult{}, err
	}
	log := res.Store

	// Simulated nodes, in their own process.
	sim := exec.CommandContext(ctx, o.sim, append(simArgs, "-nodes", fmt.Sprint(o.nodes), "-lease-interval", "10s")...)
	sim.Stderr = os.Stderr
	out, err := sim.StdoutPipe()
	if err != nil {
		return runResult{}, err
	}
	if err := sim.Start(); err != nil {
		return runResult{}, fmt.Errorf("start simnodes: %w", err)
	}
	defer func() {
		_ = sim.Process.Signal(os.Interrupt)
		_ = sim.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		return runResult{}, fmt.Errorf("simnodes did not get ready: %q %v", line, err)
	}

	n := o.nodes * o.podsPerNode
	if err := createPods(ctx, log, n, o.ownerSize); err != nil {
		return runResult{}, err
	}

	// The projection the scheduler decides from; the hook counts what the benchmark waits for.
	proj := live.New(state.New(), logger)
	var nBound, nRunning atomic.Int64
	allBound, allRunning := make(chan time.Time, 1), make(chan time.Time, 1)
	proj.OnEvent(func(st *state.State, ev *events.Event) {
		switch d := ev.Data.(type) {
		case *events.PodBound:
			if nBound.Add(1) == int64(n) {
				allBound <- time.Now()
			}
		case *events.PodStatusReported:
			if d.Status.Phase == events.PodRunning {
				if nRunning.Add(1) == int64(n) {
					allRunning <- time.Now()
				}
			}
		}
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = proj.Run(ctx, log, nil) })
	if err := proj.WaitSynced(ctx); err != nil {
		return runResult{}, err
	}
	var pending int
	proj.View(func(st *state.State) { pending = len(st.Pending()) })
	if pending != n {
		return runResult{}, fmt.Errorf("projection shows %d pending pods, want %d", pending, n)
	}
	setup := time.Since(setupStart)

	if profile && o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return runResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return runResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	if profile && o.memProfile != "" {
		// The heap profile counts allocations since the process started: the scheduling
		// phase's are the difference from this one (go tool pprof -base).
		runtime.GC()
		if err := writeHeapProfile(o.memProfile + ".base"); err != nil {
			return runResult{}, err
		}
	}
	// As the leader does: a term, and the scheduling loop's writes fenced on it.
	var appender scheduling.Appender = log
	if !o.unfenced {
		_, term, err := leader.Begin(ctx, log, "bench", events.Meta{Actor: "scheduler/bench"}, time.Now())
		if err != nil {
			return runResult{}, err
		}
		appender = log.Fenced(term.Term, "scheduling", term.Fence("scheduler/bench", nil))
	}
	var sm *scheduling.Metrics
	if withMetrics {
		if sm, err = serveMetrics(ctx, &wg, proj, log, o.scrapeInterval); err != nil {
			return runResult{}, err
		}
	}
	tp := telemetry.Disabled()
	if traced {
		if tp, err = telemetry.Setup(ctx, telemetry.Config{Service: telemetry.ServiceScheduler, Instance: "bench", Batcher: true}); err != nil {
			return runResult{}, err
		}
		defer func() { _ = tp.Shutdown(context.Background()) }()
	}
	var spansStart int
	var recvStart time.Duration
	if recv != nil {
		if spansStart, recvStart, err = recv.stats(); err != nil {
			return runResult{}, err
		}
	}
	start, cpuStart := time.Now(), cpuTime()
	sched := scheduling.New(scheduling.Config{
		Log: appender, Projection: proj, Actor: "scheduler/bench", Logger: logger, Metrics: sm, Spans: tp.Batcher(),
		BatchSize: o.batch, MaxInFlight: o.inflight, Writers: o.writers, PercentageOfNodesToScore: o.percent,
	})
	wg.Go(func() { _ = sched.Run(ctx) })

	timeout := time.After(10 * time.Minute)
	var tBound, tRunning time.Time
	var cpu time.Duration
	select {
	case tBound = <-allBound:
		if traced {
			// The spans of the run that the batcher still holds are part of its cost:
			// exported before the CPU is read (the rate is from tBound, unaffected).
			if err := tp.ForceFlush(ctx); err != nil {
				return runResult{}, fmt.Errorf("flush spans: %w", err)
			}
		}
		cpu = cpuTime() - cpuStart
	case <-timeout:
		return runResult{}, fmt.Errorf("timed out: %d of %d pods bound", nBound.Load(), n)
	}
	var recvCPU time.Duration
	if recv != nil {
		_, c, err := recv.stats()
		if err != nil {
			return runResult{}, err
		}
		recvCPU = c - recvStart
	}
	if profile && o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if profile && o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return runResult{}, err
		}
	}
	select {
	case tRunning = <-allRunning:
	case <-timeout:
		return runResult{}, fmt.Errorf("timed out: %d of %d pods running", nRunning.Load(), n)
	}
	result := runResult{pods: n, setup: setup, bound: tBound.Sub(start), running: tRunning.Sub(start), cpu: cpu, recvCPU: recvCPU}
	if recv != nil {
		// Count what arrived (flushed above; anything later, too).
		if err := tp.Shutdown(ctx); err != nil {
			return runResult{}, err
		}
		spans, _, err := recv.stats()
		if err != nil {
			return runResult{}, err
		}
		result.spans = spans - spansStart
		result.lost = tp.Batcher().Stats()
	}
	return result, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// serveMetrics registers the scheduling loop's and the projection's metrics, as skiff-scheduler
// --metrics-addr does, serves them on a loopback port and scrapes them every interval until ctx
// ends.
func serveMetrics(ctx context.Context, wg *sync.WaitGroup, proj *live.Projection, log *store.Store, interval time.Duration) (*scheduling.Metrics, error) {
	reg := metrics.NewRegistry()
	sm, err := scheduling.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if err := metrics.RegisterProjection(reg, "skiff_scheduler", proj, log.Head); err != nil {
		return nil, err
	}
	srv, err := metrics.Start(ctx, "127.0.0.1:0", reg, nil)
	if err != nil {
		return nil, err
	}
	url := "http://" + srv.Addr().String() + metrics.Path
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if resp, err := http.Get(url); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
	return sm, nil
}

// reset deletes the stream and the lease bucket a previous run left, so each run starts from an
// empty log as it does on a fresh embedded server. Deleting needs admin's creds.
func reset(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for _, name := range []string{store.DefaultStream, "KV_" + api.LeaseBucket} {
		err := js.DeleteStream(ctx, name)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s (schedbench starts each run from an empty log: it needs admin's creds): %w", name, err)
		}
	}
	return nil
}

// clusterArgs are the connection flags of o for simnodes, resolved (environment and config file)
// here so both processes connect alike.
func clusterArgs(o client.Options) []string {
	r, err := o.Resolve()
	if err != nil {
		return nil
	}
	args := []string{"--server", r.Server}
	if r.Creds != "" {
		args = append(args, "--creds", r.Creds)
	}
	if r.CA != "" {
		args = append(args, "--tls-ca", r.CA)
	}
	return args
}

// createPods appends n PodCreated events, pipelined, owned by Deployments of ownerSize pods.
func createPods(ctx context.Context, log *store.Store, n, ownerSize int) error {
	const chunk = 2000 // under jetstream's default PublishAsyncMaxPending (4000)
	now := time.Now()
	for start := 0; start < n; start += chunk {
		var ws []store.Write
		for i := start; i < min(start+chunk, n); i++ {
			owner := fmt.Sprintf("deploy-%05d", i/max(ownerSize, 1))
			name := fmt.Sprintf("%s-%06d", owner, i)
			pod := events.Pod{
				Metadata: events.ObjectMeta{
					Name: name, Namespace: "default", UID: events.NewID(),
					Labels:          map[string]string{"app": owner},
					OwnerReferences: []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner, UID: "uid-" + owner, Controller: true}},
				},
				Spec: events.PodSpec{Containers: []events.Container{{
					Name: "app", Image: "skiff.dev/echo:latest",
					Ports:     []events.ContainerPort{{ContainerPort: 8080}},
					Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "100m", "memory": "128Mi"}},
				}}},
			}
			// Every pod belongs to a traced rollout, traced or not: the scheduler continues the
			// trace (traced) or passes the traceparent on (untraced).
			ev, err := events.New(now, events.Meta{Actor: "bench", Traceparent: traceparent(owner)}, events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: pod.Metadata.UID}, "", &events.PodCreated{Pod: pod})
			if err != nil {
				return err
			}
			ws = append(ws, store.Write{Event: ev})
		}
		for _, err := range log.AppendAll(ctx, ws) {
			if err != nil {
				return fmt.Errorf("create pods: %w", errors.Join(err))
			}
		}
	}
	return nil
}

// traceparent is a sampled trace context standing for owner's rollout.
func traceparent(owner string) string {
	h := sha256.Sum256([]byte(owner))
	return "00-" + hex.EncodeToString(h[:16]) + "-" + hex.EncodeToString(h[16:24]) + "-01"
}
