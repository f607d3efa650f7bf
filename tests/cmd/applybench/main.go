// Command applybench measures what a user feels when applying one large Deployment (issue 9):
// from `skiff apply` of a Deployment of -replicas pods to the last PodBound, with the whole stack
// as real processes, the binaries `make build` puts in bin/:
//
//	make build && cd tests && go run ./cmd/applybench                 # 1,000 nodes, 30,000 pods, 3 runs
//	go run ./cmd/applybench -nodes 100 -replicas 3000 -runs 1         # a quick one
//	go run ./cmd/applybench -topology split                          # the scheduler's own RSS
//
// Each run starts from nothing: a fresh data dir and a control plane on free loopback ports,
// laid out by -topology:
//
//   - up (the default): `skiff up --control-plane-only`, embedded NATS and the scheduler in one
//     process, plain text, writes synced at the server's interval. Its peak RSS is both's.
//   - split: as on real machines, a stock nats-server (bin/nats-server) configured by `skiff
//     cluster init --server n1=127.0.0.1:PORT` (TLS, JWTs, sync_interval: always) and run from
//     its servers/n1 directory, the log made by `skiff cluster bootstrap --replicas 1`, and
//     skiff-scheduler with the scheduler's creds. Their peak RSS are apart: issue 9 bounds the
//     scheduler's.
//
// Then `skiff-nodeagent --simulate NODES` with admin's creds (one process, one connection for
// all simulated nodes: only admin may write every node's subjects); it waits until every node
// is Ready, then execs `skiff apply -f` (as the CLI user) and follows the log as admin from the
// head before the apply, until every pod of the Deployment is bound or -timeout passes.
//
// Times are the log's own (each event's time, written by admission and the scheduler's loops on
// this machine's clock): DeploymentApplied → the last PodBound (the headline), the deployments
// controller's phase (first → last PodCreated), and when 50 %, 99 % and 100 % of the pods were
// bound, so a tail shows as the gap between p99 and 100 %. Besides: this process's wall time
// from exec of `skiff apply` to seeing the last PodBound, the `skiff apply` process's own time,
// `skiff get pods -A` once all are bound, -gets times (exec to exit, output drained; the median), and the peak RSS
// (VmHWM) of the control plane's processes. It prints one table row per run and the medians.
//
// Everything started is stopped by its PID (SIGTERM, then SIGKILL), and the data dir removed,
// also when a run fails; the processes' logs stay in a directory it names.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"skiff.dev/events/client"
	"skiff.dev/events/store"
)

type options struct {
	bin, topology        string
	runs, nodes, gets    int
	verify               bool
	replicas             int
	timeout, setup, stop time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "directory holding skiff and skiff-nodeagent, and for -topology split nats-server and skiff-scheduler (default: bin/ of the checkout, beside the tests module)")
	flag.StringVar(&o.topology, "topology", "up", "the control plane's processes: up (skiff up, NATS and the scheduler in one) or split (nats-server and skiff-scheduler apart)")
	flag.IntVar(&o.runs, "runs", 3, "runs, each on a fresh cluster")
	flag.IntVar(&o.gets, "gets", 3, "how many times each run lists every pod with skiff get pods -A (its median is reported)")
	flag.BoolVar(&o.verify, "verify", false, "after each run, time skiff events verify (every decision made again from the log) and skiff explain of one pod")
	flag.IntVar(&o.nodes, "nodes", 1000, "simulated nodes")
	flag.IntVar(&o.replicas, "replicas", 30000, "replicas of the Deployment")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long a run may take from exec of skiff apply to the last PodBound")
	flag.DurationVar(&o.setup, "setup-timeout", 5*time.Minute, "how long starting the control plane, and then the nodes, may each take")
	flag.DurationVar(&o.stop, "stop-timeout", 45*time.Second, "how long a process may take to exit after SIGTERM before it gets SIGKILL")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := bench(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "applybench:", err)
		os.Exit(1)
	}
}

// The Deployment every run applies.
const (
	namespace  = "default"
	deployment = "applybench"
)

func bench(ctx context.Context, o options) error {
	if o.runs < 1 || o.nodes < 1 || o.replicas < 1 || o.gets < 1 {
		return errors.New("-runs, -nodes, -replicas and -gets must be at least 1")
	}
	topo, ok := topologies[o.topology]
	if !ok {
		return fmt.Errorf("-topology %q: want one of %s", o.topology, strings.Join(slices.Sorted(maps.Keys(topologies)), ", "))
	}
	bin, err := binDir(o.bin)
	if err != nil {
		return err
	}
	for _, b := range append(topo.binaries(), nameNodeAgent) {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%w (run make build, or point -bin at the binaries)", err)
		}
	}
	logDir, err := os.MkdirTemp("", "applybench-logs-")
	if err != nil {
		return err
	}
	fmt.Printf("applybench: %d nodes, Deployment of %d replicas, %d run(s), topology %s; binaries %s; logs %s\n", o.nodes, o.replicas, o.runs, o.topology, bin, logDir)
	fmt.Printf("machine: %d CPUs, %s/%s, load average at start %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, loadavg())
	fmt.Println()
	fmt.Println(header(topo.measured()))
	var rs []result
	var failed []string
	for i := 1; i <= o.runs && ctx.Err() == nil; i++ {
		r, err := runOnce(ctx, o, topo, &cluster{bin: bin, logDir: logDir, n: i})
		if err != nil {
			fmt.Printf("| %d | FAILED: %v |\n", i, firstLine(err))
			fmt.Fprintf(os.Stderr, "run %d failed: %v\n", i, err)
			failed = append(failed, strconv.Itoa(i))
			continue
		}
		rs = append(rs, r)
		fmt.Println(r.row(strconv.Itoa(i)))
	}
	if len(rs) > 0 {
		fmt.Println(medians(rs).row(fmt.Sprintf("median of %d", len(rs))))
	}
	fmt.Printf("\nload average at end %s\n", loadavg())
	if len(failed) > 0 {
		return fmt.Errorf("run(s) %s failed (logs in %s)", strings.Join(failed, ", "), logDir)
	}
	return nil
}

// binDir resolves -bin; without it, bin/ at the root of the checkout (the directory holding
// go.work), found from the working directory upwards, so it runs from the repo or tests/.
func binDir(flagged string) (string, error) {
	if flagged != "" {
		return filepath.Abs(flagged)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "bin"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run from the checkout or give -bin")
		}
		dir = parent
	}
}

// result is one run's numbers.
type result struct {
	timings
	// wall is exec of skiff apply → this process saw the last PodBound, createdSeen → it saw the
	// last PodCreated; applyCLI is the skiff apply process's exec → exit; getPods is skiff get
	// pods -A's.
	wall, createdSeen, applyCLI, getPods time.Duration
	// peakRSS is the peak RSS in bytes of each of the topology's measured processes.
	peakRSS []int64
}

// header is the table's, with a peak RSS column for each of the measured processes.
func header(measured []string) string {
	var h, rule strings.Builder
	h.WriteString("| run | apply→last bound | pods/s | created first→last | apply→first created | apply→50% | apply→99% | apply→100% | 99%→100% | exec apply→last created seen | exec apply→last bound seen | skiff apply | get pods -A |")
	rule.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, m := range measured {
		fmt.Fprintf(&h, " %s peak RSS |", m)
		rule.WriteString("---|")
	}
	return h.String() + "\n" + rule.String()
}

func (r result) row(name string) string {
	s := fmt.Sprintf("| %s | **%s** | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
		name, secs(r.applyToLast), r.podsPerSec, secs(r.createPhase), secs(r.applyToFirstCreated),
		secs(r.applyToP50), secs(r.applyToP99), secs(r.applyToLast), secs(r.applyToLast-r.applyToP99),
		secs(r.createdSeen), secs(r.wall), secs(r.applyCLI), secs(r.getPods))
	for _, b := range r.peakRSS {
		s += fmt.Sprintf(" %d MiB |", b>>20)
	}
	return s
}

// medians is each column's median over the runs (columns separately, so not one run's row).
func medians(rs []result) result {
	d := func(f func(result) time.Duration) time.Duration {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	var m result
	m.applyToLast = d(func(r result) time.Duration { return r.applyToLast })
	m.createPhase = d(func(r result) time.Duration { return r.createPhase })
	m.applyToFirstCreated = d(func(r result) time.Duration { return r.applyToFirstCreated })
	m.applyToP50 = d(func(r result) time.Duration { return r.applyToP50 })
	m.applyToP99 = d(func(r result) time.Duration { return r.applyToP99 })
	m.wall = d(func(r result) time.Duration { return r.wall })
	m.createdSeen = d(func(r result) time.Duration { return r.createdSeen })
	m.applyCLI = d(func(r result) time.Duration { return r.applyCLI })
	m.getPods = d(func(r result) time.Duration { return r.getPods })
	// Every run of a topology measures the same processes.
	for i := range rs[0].peakRSS {
		m.peakRSS = append(m.peakRSS, int64(d(func(r result) time.Duration { return time.Duration(r.peakRSS[i]) })))
	}
	rates := make([]float64, len(rs))
	for i, r := range rs {
		rates[i] = r.podsPerSec
	}
	m.podsPerSec = median(rates)
	return m
}

// median of v: the middle value, or the mean of the two middle ones.
func median[T ~int64 | ~float64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// runOnce is one run on a cluster of its own: c has no directory and no process yet.
func runOnce(ctx context.Context, o options, topo topology, c *cluster) (r result, err error) {
	if c.dir, err = os.MkdirTemp("", "applybench-data-"); err != nil {
		return r, err
	}
	defer os.RemoveAll(c.dir)
	// Stop what was started before the directory goes, also what a failed start left.
	defer func() {
		for _, serr := range c.stop(o.stop) {
			c.status("%v", serr)
		}
		if err != nil {
			for _, p := range c.procs {
				err = fmt.Errorf("%w\n  %s's log (%s) ends:\n%s", err, p.name, p.logPath, tail(p.logPath, 30))
			}
		}
	}()

	started := time.Now()
	cp, err := topo.start(ctx, c, o)
	if err != nil {
		return r, err
	}
	// The table's columns are named before any run: the processes must be those.
	names := make([]string, len(cp.measured))
	for i, p := range cp.measured {
		names[i] = p.name
	}
	if !slices.Equal(names, topo.measured()) {
		return r, fmt.Errorf("the control plane measures %q, the table names %q", names, topo.measured())
	}
	err = poll(ctx, "control plane answering", o.setup, 100*time.Millisecond, func() (string, error) {
		if err := c.running(); err != nil {
			return "", err
		}
		out, err := run(ctx, 10*time.Second, c.skiff(), "--config", cp.admin, "get", "nodes")
		if err != nil {
			return firstLine(fmt.Errorf("%w: %s", err, out)), errNotYet
		}
		return "", nil
	})
	if err != nil {
		return r, err
	}
	c.status("control plane answers after %s", secs(time.Since(started)))

	started = time.Now()
	agent, err := c.start(nameNodeAgent, "nodeagent", "", filepath.Join(c.bin, nameNodeAgent),
		"--simulate", strconv.Itoa(o.nodes), "--config", cp.admin, "--log-level", "warn")
	if err != nil {
		return r, err
	}
	err = poll(ctx, fmt.Sprintf("%d nodes Ready", o.nodes), o.setup, 500*time.Millisecond, func() (string, error) {
		if err := c.running(); err != nil {
			return "", err
		}
		out, err := run(ctx, 30*time.Second, c.skiff(), "--config", cp.admin, "get", "nodes")
		if err != nil {
			return firstLine(fmt.Errorf("%w: %s", err, out)), errNotYet
		}
		ready := readyNodes(out)
		if ready < o.nodes {
			return fmt.Sprintf("%d Ready", ready), errNotYet
		}
		return "", nil
	})
	if err != nil {
		return r, err
	}
	c.status("%d simulated nodes (pid %d) Ready after %s", o.nodes, agent.pid(), secs(time.Since(started)))

	// Follow the log from its head: everything the apply causes comes after.
	nc, err := client.Connect(client.Options{Config: cp.admin, Name: "applybench"})
	if err != nil {
		return r, fmt.Errorf("connect as admin: %w", err)
	}
	defer nc.Close()
	st, err := store.Attach(ctx, nc, store.Config{})
	if err != nil {
		return r, err
	}
	head, err := st.Head(ctx)
	if err != nil {
		return r, err
	}
	w := newWatch(namespace, deployment, o.replicas, time.Now)
	fctx, fcancel := context.WithCancel(ctx)
	followed := make(chan error, 1)
	caughtUp := make(chan struct{})
	go func() {
		followed <- st.Follow(fctx, store.FollowOptions{Filters: w.filters(), From: head + 1,
			CaughtUp: func(uint64) { close(caughtUp) }}, w.handle)
	}()
	// Stop following before the connection closes.
	defer func() { fcancel(); <-followed }()
	select {
	case <-caughtUp:
	case err := <-followed:
		followed <- err
		return r, fmt.Errorf("follow the log: %w", err)
	case <-ctx.Done():
		return r, ctx.Err()
	}

	manifest := filepath.Join(c.dir, "deployment.yaml")
	if err := os.WriteFile(manifest, []byte(deploymentYAML(o.replicas)), 0o644); err != nil {
		return r, err
	}
	t0 := time.Now()
	out, err := run(ctx, time.Minute, c.skiff(), "--config", cp.user, "apply", "-f", manifest)
	r.applyCLI = time.Since(t0)
	if err != nil {
		return r, fmt.Errorf("skiff apply: %w: %s", err, out)
	}
	c.status("skiff apply took %s: %s", secs(r.applyCLI), strings.TrimSpace(out))

	deadline := time.NewTimer(o.timeout - time.Since(t0))
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-w.all:
			break wait
		case <-tick.C:
			c.status("+%s: %v", secs(time.Since(t0)), w.progress())
			if err := c.running(); err != nil {
				return r, fmt.Errorf("during the apply: %w (%v)", err, w.progress())
			}
		case err := <-followed:
			followed <- err
			return r, fmt.Errorf("following the log stopped: %w (%v)", err, w.progress())
		case <-deadline.C:
			return r, fmt.Errorf("timed out: not every pod bound within %s of exec of skiff apply: %v", o.timeout, w.progress())
		case <-ctx.Done():
			return r, fmt.Errorf("interrupted: %w (%v)", ctx.Err(), w.progress())
		}
	}
	r.wall, r.createdSeen = w.seenAll.Sub(t0), w.lastCreated.Sub(t0)
	if r.timings, err = w.timings(); err != nil {
		return r, err
	}
	if p := w.progress(); p.unsched > 0 {
		c.status("note: %d PodUnschedulable events for the Deployment's pods", p.unsched)
	}
	c.status("PodCreated by controller pass (event time after the apply → pods): %s", w.createdPasses(10))
	c.status("tail: %s", w.tail(5))

	// What a user does next: list them all, a few times (the first right after the last bind,
	// while the nodes' status reports may still be folding); the median counts.
	var gets []time.Duration
	for range o.gets {
		lines := &lineCounter{}
		t1 := time.Now()
		get := exec.CommandContext(ctx, c.skiff(), "--config", cp.user, "get", "pods", "-A")
		get.Stdout = lines
		var stderr strings.Builder
		get.Stderr = &stderr
		if err := get.Run(); err != nil {
			return r, fmt.Errorf("skiff get pods -A: %w: %s", err, stderr.String())
		}
		gets = append(gets, time.Since(t1))
		if lines.n != o.replicas+1 {
			c.status("note: skiff get pods -A printed %d lines (%d bytes), want %d pods and a header", lines.n, lines.bytes, o.replicas)
		}
	}
	c.status("skiff get pods -A, exec to exit: %v", gets)
	r.getPods = median(gets)
	if o.verify {
		if err := timeVerify(ctx, c, cp.user, o.replicas); err != nil {
			return r, err
		}
	}

	for _, p := range cp.measured {
		rss, err := p.peakRSS()
		if err != nil {
			return r, fmt.Errorf("%s's peak RSS: %w", p.name, err)
		}
		r.peakRSS = append(r.peakRSS, rss)
	}
	if rss, err := agent.peakRSS(); err == nil {
		c.status("skiff-nodeagent (%d simulated nodes) peak RSS %d MiB", o.nodes, rss>>20)
	}
	for _, p := range c.procs {
		if note := logNotes(p.logPath); note != "" {
			c.status("%s's log %s has warnings or errors:\n%s", p.name, p.logPath, note)
		}
	}
	return r, nil
}

// timeVerify times what a user runs to check the scheduler's decisions after an upgrade (skiff
// events verify: all of them made again) and to ask about one pod (skiff explain), exec to exit.
func timeVerify(ctx context.Context, c *cluster, user string, replicas int) error {
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, c.skiff(), "--config", user, "events", "verify").CombinedOutput()
	took := time.Since(t0)
	if err != nil {
		return fmt.Errorf("skiff events verify: %w: %s", err, out)
	}
	want := fmt.Sprintf("%d the same, 0 different", replicas)
	if !strings.Contains(string(out), want) {
		return fmt.Errorf("skiff events verify said %q, want %q", oneLine(string(out)), want)
	}
	c.status("skiff events verify, exec to exit: %v (%s)", took.Round(time.Millisecond), oneLine(string(out)))
	names, err := exec.CommandContext(ctx, c.skiff(), "--config", user, "get", "pods", "-o", "name").Output()
	if err != nil {
		return fmt.Errorf("skiff get pods -o name: %w", err)
	}
	last := strings.Fields(string(names))
	if len(last) == 0 {
		return errors.New("skiff get pods -o name listed no pod")
	}
	t0 = time.Now()
	out, err = exec.CommandContext(ctx, c.skiff(), "--config", user, "explain", last[len(last)-1], "--replay").CombinedOutput()
	if err != nil {
		return fmt.Errorf("skiff explain %s --replay: %w: %s", last[len(last)-1], err, out)
	}
	c.status("skiff explain %s --replay, exec to exit: %v", last[len(last)-1], time.Since(t0).Round(time.Millisecond))
	return nil
}

// deploymentYAML is a Deployment of replicas small pods: 30 of them fit a simulated node many
// times over, so the scheduler never runs out of room.
func deploymentYAML(replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: %[3]d
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
        - name: echo
          image: skiff.dev/echo:v1
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
`, deployment, namespace, replicas)
}

// run runs a command to its end, within timeout, and returns its combined output.
func run(ctx context.Context, timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// readyNodes counts the rows of `skiff get nodes` whose STATUS is Ready.
func readyNodes(table string) int {
	n := 0
	for line := range strings.Lines(table) {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "Ready" {
			n++
		}
	}
	return n
}

// lineCounter drains output, counting bytes and lines.
type lineCounter struct{ n, bytes int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.bytes += len(p)
	c.n += strings.Count(string(p), "\n")
	return len(p), nil
}

var _ io.Writer = (*lineCounter)(nil)

// warnMarks mark the warnings and errors of a log: slog's text handler's (Skiff's programs) and
// nats-server's.
var warnMarks = []string{"level=WARN", "level=ERROR", "[WRN]", "[ERR]", "[FTL]"}

// logNotes is the count and the first few of the warning and error lines in a log.
func logNotes(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var hits []string
	for line := range strings.Lines(string(data)) {
		if slices.ContainsFunc(warnMarks, func(m string) bool { return strings.Contains(line, m) }) {
			hits = append(hits, strings.TrimSpace(line))
		}
	}
	if len(hits) == 0 {
		return ""
	}
	shown := hits[:min(len(hits), 5)]
	return fmt.Sprintf("    %d such lines; the first %d:\n    %s", len(hits), len(shown), strings.Join(shown, "\n    "))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// secs formats a duration for the table: milliseconds below a second, else seconds.
func secs(d time.Duration) string {
	if d < time.Second && d > -time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// oneLine is s's lines joined with "; ".
func oneLine(s string) string {
	return strings.Join(strings.Split(strings.TrimSpace(s), "\n"), "; ")
}
