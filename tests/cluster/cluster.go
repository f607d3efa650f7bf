package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events/api"
	"skiff.dev/events/client"
	"skiff.dev/events/images"
	"skiff.dev/events/store"
)

// Options shape a cluster. The zero value is one node and `skiff up --control-plane-only`.
type Options struct {
	// Nodes is how many nodes to run, 1 to 3; default 1.
	Nodes int
	// Schedulers, when > 0, runs the control plane as a NATS server process plus this many
	// skiff-scheduler processes (ids sched1, sched2, ...), so a test can kill one; when 0 the
	// control plane is one `skiff up --control-plane-only` process.
	Schedulers int
	// LeaderTTL is the leader bucket's TTL, set by the bootstrap step (e2enats --leader-ttl).
	LeaderTTL time.Duration
	// BackoffBase and BackoffCap bound crash-loop back-off; default 1 s and 4 s, so crash-loop
	// tests see several restarts quickly.
	BackoffBase, BackoffCap time.Duration
	// Timeout bounds WaitFor and cluster start-up; default 60 s.
	Timeout time.Duration
	// LogLevel of every Skiff process; default $SKIFF_E2E_LOG_LEVEL, else info. At debug the
	// agent logs each pod's sandbox and container creation (what the start-up benchmark's
	// breakdown reads).
	LogLevel string
	// AgentArgs are more flags for every node agent, such as "--oci-runtime", "runc".
	AgentArgs []string
	// NATSDiskSize, when > 0, puts the control plane's NATS data directory (JetStream's files,
	// the keys and creds) on a tmpfs of this many bytes, mounted under the cluster's directory
	// in the host's mount namespace and unmounted at cleanup (and by the stale sweep): a disk a
	// test can fill (NATSDataDir). The project's images go into it too (about 5 MiB).
	NATSDiskSize int64
	// Metrics gives every process --metrics-addr on 127.0.0.1 of its namespace (see
	// Cluster.Metrics).
	Metrics bool
	// Jaeger runs skiff up (Schedulers must be 0) with --jaeger: Jaeger all-in-one in the control
	// plane's namespace, every part of skiff up exporting its traces there (see JaegerBinary).
	Jaeger bool
	// Prepare, if set, runs once the cluster's network exists and before any process starts:
	// for a server the processes must reach from the start (ListenControlPlane), or environment
	// every process inherits (t.Setenv).
	Prepare func(*Cluster)
}

func (o *Options) defaults() error {
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.Nodes < 1 || o.Nodes > 3 {
		return fmt.Errorf("Options.Nodes is %d: want 1 to 3", o.Nodes)
	}
	if o.Jaeger && o.Schedulers > 0 {
		return fmt.Errorf("Options.Jaeger runs skiff up's Jaeger: want Schedulers 0, not %d", o.Schedulers)
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffCap == 0 {
		o.BackoffCap = 4 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.LogLevel == "" {
		o.LogLevel = cmp.Or(os.Getenv("SKIFF_E2E_LOG_LEVEL"), "info")
	}
	return nil
}

// Cluster is a running Skiff cluster made of real processes, each node in its own network
// namespace. Create it with New; it is torn down when the test ends.
type Cluster struct {
	// RunID prefixes every name the cluster makes on the machine.
	RunID string
	// Dir holds every file of the cluster: logs, NATS data, containerd roots, node state.
	Dir string
	// Server is the NATS URL, reachable from the cluster's namespaces (not from the host's).
	Server string
	// ControlPlaneNetns names the control plane's network namespace (under /run/netns).
	ControlPlaneNetns string
	// AuthDir holds the cluster's keys and creds (localauth's layout, as cluster init's).
	AuthDir string
	Bin     Binaries

	t     testing.TB
	opts  Options
	lan   string
	nodes []*Node
	// controlPlane is skiff up, or NATS followed by the schedulers.
	controlPlane []*proc
	schedulers   map[string]*proc
	// natsDataDir is the data directory of the NATS server (skiff up's or e2enats's).
	natsDataDir string
	// metricsTargets: where each process serves its metrics (metrics.go), by process name.
	metricsTargets sync.Map

	connOnce sync.Once
	nc       *nats.Conn
	connErr  error
	stMu     sync.Mutex
	st       *store.Store
}

// Node is one node of a cluster: a network namespace with its own containerd and node agent.
type Node struct {
	Name    string
	Address string
	Netns   string
	Dir     string
	// ContainerdAddress is the node's containerd socket.
	ContainerdAddress string
	// StateDir and LogDir are the agent's --state-dir and --log-dir.
	StateDir, LogDir string

	containerd *proc
	agent      *proc
}

var runSeq atomic.Int64

// New starts a cluster and registers its teardown with t.Cleanup. It fails t when not root (never skips), and
// fails it when a tool is missing or the cluster does not come up within Options.Timeout.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: makes network namespaces, runs containerd, runc and CNI plugins (run the tests as root)")
	}
	if err := opts.defaults(); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"ip", "nsenter", "containerd", "ctr"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (scripts/setup.sh installs it): %v", tool, err)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		if _, err2 := os.Stat("/opt/cni/bin/bridge"); err2 != nil {
			t.Fatalf("CNI plugins not found in /usr/lib/cni or /opt/cni/bin (Debian: containernetworking-plugins)")
		}
	}
	sweepStale(t.Logf)
	bin := Build(t)

	runID := fmt.Sprintf("%s%d-%d", runPrefix, os.Getpid(), runSeq.Add(1))
	c := &Cluster{
		RunID:             runID,
		Dir:               filepath.Join(os.TempDir(), runID),
		Server:            fmt.Sprintf("nats://%s:%d", ControlPlaneAddress, NATSPort),
		ControlPlaneNetns: runID + "-cp",
		Bin:               bin,
		t:                 t,
		opts:              opts,
		lan:               runID + "-lan",
		schedulers:        map[string]*proc{},
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, ownerFile), []byte(processIdentity(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)

	members := []member{{netns: c.ControlPlaneNetns, veth: "v-cp", address: ControlPlaneAddress}}
	for i := 1; i <= opts.Nodes; i++ {
		name := fmt.Sprintf("node%d", i)
		dir := filepath.Join(c.Dir, name)
		n := &Node{
			Name: name, Address: NodeAddress(i), Netns: runID + "-" + name, Dir: dir,
			ContainerdAddress: filepath.Join(dir, "containerd", "containerd.sock"),
			StateDir:          filepath.Join(dir, "state"), LogDir: filepath.Join(dir, "logs"),
		}
		c.nodes = append(c.nodes, n)
		members = append(members, member{netns: n.Netns, veth: "v-" + name, address: n.Address})
	}
	if err := setupLAN(c.lan, members); err != nil {
		t.Fatalf("cluster network: %v", err)
	}
	if opts.Prepare != nil {
		opts.Prepare(c)
	}
	start := time.Now()
	c.startControlPlane()
	for _, n := range c.nodes {
		c.startContainerd(n)
	}
	for _, n := range c.nodes {
		n.agent = c.agentProc(n)
		if err := n.agent.start(c.pidsPath()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		c.waitAgentReady(n)
	}
	t.Logf("cluster %s: %d node(s) up in %v (dir %s)", runID, len(c.nodes), time.Since(start).Round(time.Millisecond), c.Dir)
	return c
}

func (c *Cluster) pidsPath() string { return filepath.Join(c.Dir, pidsFile) }

func (c *Cluster) newProc(name, netns string, argv ...string) *proc {
	return &proc{name: name, netns: netns, argv: argv, logPath: filepath.Join(c.Dir, name+".log")}
}

// startControlPlane starts NATS and the scheduler(s) and waits until a scheduler answers
// queries and the project's images are in the cluster's image store.
func (c *Cluster) startControlPlane() {
	t := c.t
	listen := fmt.Sprintf("%s:%d", ControlPlaneAddress, NATSPort)
	c.natsDataDir = filepath.Join(c.Dir, "nats")
	if c.opts.Schedulers == 0 {
		c.natsDataDir = filepath.Join(c.Dir, "cp")
	}
	if c.opts.NATSDiskSize > 0 {
		if err := mountTmpfs(c.natsDataDir, c.opts.NATSDiskSize); err != nil {
			t.Fatal(err)
		}
	}
	if c.opts.Schedulers == 0 {
		c.AuthDir = filepath.Join(c.Dir, "cp", "auth")
		upArgs := []string{c.Bin.Skiff, "up", "--control-plane-only",
			"--listen", listen, "--data-dir", c.natsDataDir, "--images-dir", c.Bin.Images,
			"--log-level", c.opts.LogLevel, "--client-config="}
		if c.opts.LeaderTTL > 0 {
			upArgs = append(upArgs, "--leader-ttl", c.opts.LeaderTTL.String())
		}
		if c.opts.Jaeger {
			upArgs = append(upArgs, "--jaeger", "--jaeger-bin", JaegerBinary(t))
		}
		upArgs = append(upArgs, c.metricsArgs("skiff-up", c.ControlPlaneNetns, ControlPlaneMetricsPort)...)
		up := c.newProc("skiff-up", c.ControlPlaneNetns, upArgs...)
		c.controlPlane = append(c.controlPlane, up)
		c.schedulers["up"] = up
		if err := up.start(c.pidsPath()); err != nil {
			t.Fatal(err)
		}
	} else {
		c.AuthDir = filepath.Join(c.Dir, "nats", "auth")
		natsArgs := []string{c.Bin.NATS, "--listen", listen, "--data-dir", c.natsDataDir}
		if c.opts.LeaderTTL > 0 {
			natsArgs = append(natsArgs, "--leader-ttl", c.opts.LeaderTTL.String())
		}
		natsd := c.newProc("nats", c.ControlPlaneNetns, natsArgs...)
		c.controlPlane = append(c.controlPlane, natsd)
		if err := natsd.start(c.pidsPath()); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= c.opts.Schedulers; i++ {
			id := fmt.Sprintf("sched%d", i)
			args := []string{c.Bin.Scheduler, "--server", c.Server, "--creds", c.Creds("scheduler"), "--id", id, "--log-level", c.opts.LogLevel}
			args = append(args, c.metricsArgs(id, c.ControlPlaneNetns, ControlPlaneMetricsPort+i)...)
			p := c.newProc(id, c.ControlPlaneNetns, args...)
			c.controlPlane = append(c.controlPlane, p)
			c.schedulers[id] = p
		}
	}
	// The schedulers connect once NATS answers and e2enats has bootstrapped the log;
	// skiff-scheduler fails fast without either.
	nc := c.Conn()
	c.mintCreds()
	if c.opts.Schedulers > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		var lastErr error
		ok := PollContext(ctx, func() bool {
			_, lastErr = store.Attach(ctx, nc, store.Config{})
			return lastErr == nil
		})
		cancel()
		if !ok {
			t.Fatalf("the log was not bootstrapped within %v: %v\n%s", c.opts.Timeout, lastErr, c.logTails(40))
		}
	}
	for _, p := range c.controlPlane[1:] {
		if err := p.start(c.pidsPath()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	c.waitSchedulerAnswers(ctx)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	tars, _ := filepath.Glob(filepath.Join(c.Bin.Images, "*.tar"))
	if c.opts.Schedulers == 0 && c.waitUpImported(ctx, js, tars) {
		return
	}
	// Without skiff up (or when its import failed): do what it does.
	obs, err := images.OpenBucket(ctx, js)
	if err != nil {
		t.Fatalf("image store: %v", err)
	}
	for _, tar := range tars {
		if _, err := images.Put(ctx, obs, tar); err != nil {
			t.Fatalf("import %s: %v", tar, err)
		}
	}
}

// waitSchedulerAnswers waits until a scheduler answers queries.
func (c *Cluster) waitSchedulerAnswers(ctx context.Context) {
	var lastErr error
	ok := PollContext(ctx, func() bool {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		defer qcancel()
		lastErr = api.Get(qctx, c.Conn(), api.GetRequest{Kind: "nodes"}, func(*api.GetChunk) error { return nil })
		return lastErr == nil
	})
	if !ok {
		c.t.Fatalf("no scheduler answered within %v: %v\n%s", c.opts.Timeout, lastErr, c.logTails(40))
	}
}

// NATSLog is what the control plane's NATS server (e2enats, or skiff up) logged since it was
// last started.
func (c *Cluster) NATSLog() string { return c.controlPlane[0].log() }

// NATSDataDir is the control plane's NATS data directory: JetStream's files under it, and the
// auth directory (on the tmpfs of Options.NATSDiskSize when that is set).
func (c *Cluster) NATSDataDir() string { return c.natsDataDir }

// RestartNATS stops the control plane's NATS server (SIGTERM) and starts it again on the same
// data directory, as an operator restarts nats-server, and waits until a scheduler answers
// queries again. With Options.Schedulers the scheduler processes keep running and reconnect;
// without, NATS is embedded in skiff up, which restarts whole, scheduler included. It returns
// how long the restart took, from the signal to the first answer.
func (c *Cluster) RestartNATS() time.Duration {
	c.t.Helper()
	start := time.Now()
	p := c.controlPlane[0]
	p.stop(30 * time.Second)
	if p.running() {
		c.t.Fatalf("%s did not exit", p.name)
	}
	if err := p.start(c.pidsPath()); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	c.waitSchedulerAnswers(ctx)
	return time.Since(start)
}

// waitUpImported waits until skiff up has put every image of tars into the image store, and
// reports whether it did: a pod started before that would wait for the agent's image retry.
// skiff up gives up for good when its import fails (it only logs a warning); then this returns
// false for the harness to import them. It only opens the store, never creates it, so as not to
// race skiff up's creation of it.
func (c *Cluster) waitUpImported(ctx context.Context, js jetstream.JetStream, tars []string) bool {
	t := c.t
	var names []string
	for _, tar := range tars {
		n, err := images.NamesInTarball(tar)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n...)
	}
	failed := func() bool { return strings.Contains(c.controlPlane[0].log(), upImportFailed) }
	var obs jetstream.ObjectStore
	ok := PollContext(ctx, func() bool {
		if failed() {
			return true
		}
		if obs == nil {
			var err error
			if obs, err = js.ObjectStore(ctx, api.ImageBucket); err != nil {
				obs = nil
				return false
			}
		}
		for _, name := range names {
			if _, err := obs.GetInfo(ctx, name); err != nil {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("skiff up did not import %v within %v\n%s", names, c.opts.Timeout, c.logTails(40))
	}
	if failed() {
		t.Logf("cluster: skiff up logged %q; the harness imports the images itself", upImportFailed)
		return false
	}
	return true
}

// upImportFailed is what skiff up logs when it could not put the images into the image store.
const upImportFailed = "could not import the project's images"

// containerdConfig is a private containerd: its own root, state and socket, and only the plugins
// the runtime uses (no CRI, which would want its own CNI config and pause image).
const containerdConfig = `version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q
`

func (c *Cluster) startContainerd(n *Node) {
	t := c.t
	dir := filepath.Join(n.Dir, "containerd")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"), n.ContainerdAddress)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Before containerd's mount namespace is made (containerdArgv): pinned pod namespaces are
	// bind mounts the agent makes later, which reach containerd only under a shared mount.
	if err := sharePinRoot(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(n.PinDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	n.containerd = c.newProc(n.Name+"-containerd", n.Netns, containerdArgv("--config", cfg)...)
	if err := n.containerd.start(c.pidsPath()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if !PollContext(ctx, func() bool {
		_, err := os.Stat(n.ContainerdAddress)
		return err == nil && n.containerd.running()
	}) {
		t.Fatalf("containerd of %s did not serve %s:\n%s", n.Name, n.ContainerdAddress, tail(n.containerd.log(), 40))
	}
}

func (c *Cluster) agentProc(n *Node, extra ...string) *proc {
	argv := []string{c.Bin.NodeAgent,
		"--server", c.Server, "--creds", c.Creds("node:" + n.Name), "--tls-ca", c.CA(), "--node-name", n.Name, "--address", n.Address,
		"--containerd-address", n.ContainerdAddress, "--state-dir", n.StateDir, "--log-dir", n.LogDir,
		"--runc-root", filepath.Join(n.StateDir, "runc"), "--pin-dir", n.PinDir(),
		"--backoff-base", c.opts.BackoffBase.String(), "--backoff-cap", c.opts.BackoffCap.String(),
		"--log-level", c.opts.LogLevel}
	argv = append(argv, c.metricsArgs(n.Name+"-agent", n.Netns, AgentMetricsPort)...)
	argv = append(append(argv, c.opts.AgentArgs...), extra...)
	return c.newProc(n.Name+"-agent", n.Netns, argv...)
}

// RestartAgent stops the node's agent (SIGTERM) and starts it again with extra flags (after
// Options.AgentArgs; none: as the cluster started it), and waits until it is ready. The
// start-up benchmark uses it to compare the agent's ways of starting pods on one node.
func (c *Cluster) RestartAgent(node string, extra ...string) {
	c.t.Helper()
	n := c.Node(node)
	if n.agent.running() {
		c.KillAgent(node, syscall.SIGTERM)
	}
	n.agent = c.agentProc(n, extra...)
	c.StartAgent(node)
}

// waitAgentReady waits for the agent's current run to log that it is ready: it has registered,
// has its pod CIDR, has reconciled containerd against the log and runs its pods.
func (c *Cluster) waitAgentReady(n *Node) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if !PollContext(ctx, func() bool {
		return strings.Contains(n.agent.log(), "node agent ready") || !n.agent.running()
	}) || !n.agent.running() {
		c.t.Fatalf("agent of %s not ready within %v:\n%s", n.Name, c.opts.Timeout, tail(n.agent.log(), 60))
	}
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node called name, failing the test if there is none.
func (c *Cluster) Node(name string) *Node {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q in the cluster", name)
	return nil
}

// AgentPID is the PID of the node's agent, 0 when it is not running.
func (n *Node) AgentPID() int { return n.agent.pid() }

// AgentLog is what the node's agent logged since it was last started.
func (n *Node) AgentLog() string { return n.agent.log() }

// KillAgent sends sig to the node's agent. For SIGKILL, SIGTERM and SIGINT it waits until the
// agent has exited.
func (c *Cluster) KillAgent(node string, sig syscall.Signal) {
	c.t.Helper()
	n := c.Node(node)
	wait := time.Duration(0)
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		wait = 30 * time.Second
	}
	if !n.agent.running() {
		c.t.Fatalf("agent of %s is not running", node)
	}
	if !n.agent.signal(sig, wait) && wait > 0 {
		c.t.Fatalf("agent of %s did not exit within %v of %v", node, wait, sig)
	}
}

// StartAgent starts the node's agent again and waits until it is ready.
func (c *Cluster) StartAgent(node string) {
	c.t.Helper()
	n := c.Node(node)
	if err := n.agent.start(c.pidsPath()); err != nil {
		c.t.Fatal(err)
	}
	c.waitAgentReady(n)
}

// SchedulerIDs are the ids of the cluster's scheduler processes ("up" for skiff up).
func (c *Cluster) SchedulerIDs() []string { return sortedKeys(boolKeys(c.schedulers)) }

// KillScheduler sends sig to scheduler id and, for SIGKILL and SIGTERM, waits until it exits.
// It returns the time the signal was sent.
func (c *Cluster) KillScheduler(id string, sig syscall.Signal) time.Time {
	c.t.Helper()
	p := c.schedulers[id]
	if p == nil || !p.running() {
		c.t.Fatalf("scheduler %q is not running", id)
	}
	at := time.Now()
	if !p.signal(sig, 30*time.Second) && (sig == syscall.SIGKILL || sig == syscall.SIGTERM) {
		c.t.Fatalf("scheduler %s did not exit within 30s of %v", id, sig)
	}
	return at
}

// SchedulerLog is what scheduler id logged since it was last started.
func (c *Cluster) SchedulerLog(id string) string {
	if p := c.schedulers[id]; p != nil {
		return p.log()
	}
	return ""
}

// leaderKey is the key the scheduler's control loops' leader holds in api.LeaderBucket
// (services/scheduler/internal/leader.Key, which this module cannot import).
const leaderKey = "controllers"

// Leader returns the id of the scheduler replica that holds the control loops' leadership, or
// "" when none does.
func (c *Cluster) Leader() (string, error) {
	js, err := jetstream.New(c.Conn())
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, api.LeaderBucket)
	if err != nil {
		return "", fmt.Errorf("leader bucket: %w", err)
	}
	e, err := kv.Get(ctx, leaderKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

// Conn is a NATS connection from the test process to the cluster, through a dialer that makes
// its socket inside the control plane's namespace. Closed at cleanup.
func (c *Cluster) Conn() *nats.Conn {
	c.t.Helper()
	c.connOnce.Do(func() {
		d := netnsDialer{path: netnsPath(c.ControlPlaneNetns), timeout: 2 * time.Second}
		deadline := time.Now().Add(c.opts.Timeout)
		for {
			c.nc, c.connErr = client.Connect(client.Options{Server: c.Server, Creds: c.Creds("admin"), CA: c.CA(), Dialer: d, Name: "e2e-test"})
			if c.connErr == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if c.connErr != nil {
		c.t.Fatalf("connect to NATS at %s: %v\n%s", c.Server, c.connErr, c.logTails(40))
	}
	return c.nc
}

// Creds is the creds file of identity ("admin", "scheduler", "node:NAME" or the test user
// "e2e") in AuthDir.
func (c *Cluster) Creds(identity string) string {
	stem := identity
	switch {
	case strings.HasPrefix(identity, "node:"):
		stem = "node-" + strings.TrimPrefix(identity, "node:")
	case identity != "admin" && identity != "scheduler":
		stem = "user-" + identity
	}
	return filepath.Join(c.AuthDir, "creds", stem+".creds")
}

// CA is the CA file of the control plane's TLS ("" when it has none: e2enats runs plain text;
// skiff up listens beyond loopback, so it runs TLS).
func (c *Cluster) CA() string {
	p := filepath.Join(c.AuthDir, "ca.pem")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// mintCreds mints, with the CLI as an operator would, the creds of every node and of the test's
// CLI user "e2e".
func (c *Cluster) mintCreds() {
	c.t.Helper()
	args := []string{"node", "creds", "--dir", c.AuthDir}
	for _, n := range c.nodes {
		args = append(args, n.Name)
	}
	if len(c.nodes) > 0 {
		if out, err := run("", c.Bin.Skiff, args...); err != nil {
			c.t.Fatalf("mint node creds: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat(c.Creds(e2eUser)); err != nil {
		if out, err := run("", c.Bin.Skiff, "user", "creds", e2eUser, "--dir", c.AuthDir); err != nil {
			c.t.Fatalf("mint user creds: %v\n%s", err, out)
		}
	}
}

// e2eUser is the identity the harness's CLI commands run as.
const e2eUser = "e2e"

// Store is the cluster's event log, opened from the test process.
func (c *Cluster) Store() *store.Store {
	c.t.Helper()
	c.stMu.Lock()
	defer c.stMu.Unlock()
	if c.st == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := store.Attach(ctx, c.Conn(), store.Config{})
		if err != nil {
			c.t.Fatalf("open the event log: %v", err)
		}
		c.st = st
	}
	return c.st
}

// cleanup tears the cluster down; it runs even when the test failed or was skipped midway.
func (c *Cluster) cleanup() {
	t := c.t
	if t.Failed() {
		t.Logf("cluster %s: logs of a failed test:\n%s", c.RunID, c.logTails(80))
	}
	for _, n := range c.nodes {
		if n.agent != nil {
			n.agent.stop(10 * time.Second)
		}
	}
	// Removing containers through containerd lets runc remove their cgroups and the
	// snapshotter unmount their root filesystems; what survives is swept below.
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.containerd == nil || !n.containerd.running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.removeAllContainers(n)
			n.containerd.stop(10 * time.Second)
		}()
	}
	wg.Wait()
	if c.nc != nil {
		c.nc.Close()
	}
	for i := len(c.controlPlane) - 1; i >= 0; i-- {
		c.controlPlane[i].stop(10 * time.Second)
	}
	sweepRun(c.Dir, c.RunID, t.Logf)
}

// removeAllContainers deletes every task and container of the node's containerd.
func (c *Cluster) removeAllContainers(n *Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctr := func(args ...string) string {
		out, _ := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.ContainerdAddress, "--namespace", "skiff"}, args...)...).Output()
		return string(out)
	}
	for _, id := range strings.Fields(ctr("tasks", "ls", "-q")) {
		ctr("tasks", "delete", "--force", id)
	}
	if ids := strings.Fields(ctr("containers", "ls", "-q")); len(ids) > 0 {
		ctr(append([]string{"containers", "rm"}, ids...)...)
	}
}

// logTails is the end of every process's log, for a failure message.
func (c *Cluster) logTails(lines int) string {
	var b strings.Builder
	var procs []*proc
	procs = append(procs, c.controlPlane...)
	for _, n := range c.nodes {
		if n.agent != nil {
			procs = append(procs, n.agent)
		}
		if n.containerd != nil {
			procs = append(procs, n.containerd)
		}
	}
	for _, p := range procs {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.name, p.logPath, tail(readFile(p.logPath), lines))
	}
	return b.String()
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func boolKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// pollUntil calls cond every 50 ms until it is true (true) or ctx ends (false).
// PollContext calls cond until it holds or ctx ends, and reports whether it held.
func PollContext(ctx context.Context, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// IPAllocations are the addresses host-local holds on the node (one file per address).
func (n *Node) IPAllocations() []string { return IPAllocationsIn(n.StateDir) }

// IPAllocationsIn are the addresses host-local holds for an agent whose --state-dir is stateDir.
func IPAllocationsIn(stateDir string) []string {
	entries, _ := os.ReadDir(filepath.Join(stateDir, "podnet", "ipam", "skiff"))
	var out []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// Shims are the PIDs of the long-lived containerd shims serving the node's containerd (not the
// short-lived `shim start` launchers).
func (n *Node) Shims() []int {
	var pids []int
	for _, s := range shimsUnder(filepath.Dir(n.ContainerdAddress)) {
		if !s.launcher {
			pids = append(pids, s.pid)
		}
	}
	return pids
}

// ShimIDs are the IDs the node's long-lived shims were started with (the first container of
// each shim's group: with one shim per pod, the pod's sandbox), sorted.
func (n *Node) ShimIDs() []string {
	var ids []string
	for _, s := range shimsUnder(filepath.Dir(n.ContainerdAddress)) {
		if !s.launcher {
			ids = append(ids, s.id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Mounts are the mount points under the node's directory (containerd's snapshots and task
// root filesystems, the sandbox root), deepest first, as this process, the node's containerd
// and its shims see them: containerd may run in a mount namespace of its own (containerdArgv),
// where its shims mount the tasks' root filesystems.
func (n *Node) Mounts() []string {
	return n.mountsUnder(n.Dir)
}

// PinMounts lists the mounts under the node's pin directory (its pods' pinned namespaces), as
// Mounts does.
func (n *Node) PinMounts() []string {
	return n.mountsUnder(n.PinDir())
}

func (n *Node) mountsUnder(dir string) []string {
	pids := append([]int{os.Getpid(), n.containerd.pid()}, n.Shims()...)
	seen := map[string]bool{}
	var out []string
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		for _, m := range mountsOf(pid) {
			if (m == dir || strings.HasPrefix(m, dir+"/")) && !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// SweepStale cleans up after test processes that died without cleaning up, as New does once per
// process before its first cluster.
func SweepStale(logf func(string, ...any)) {
	sweepOnce = sync.Once{}
	sweepStale(logf)
}
