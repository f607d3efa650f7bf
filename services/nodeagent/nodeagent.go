// Package nodeagent is the node agent service: the kubelet's job. Run registers the node,
// renews its lease, follows the node's work on the log and runs its pods on containerd with a
// pod network from CNI (internal/agent), or, with Simulate, registers N simulated nodes that
// report their pods Running without running anything (internal/simulate).
package nodeagent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/store"
	"skiff.dev/events/telemetry"
	"skiff.dev/services/nodeagent/internal/agent"
	"skiff.dev/services/nodeagent/internal/logs"
	"skiff.dev/services/nodeagent/internal/podnet"
	"skiff.dev/services/nodeagent/internal/register"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/simulate"
)

// Config configures a node agent. Conn is required; every other zero value works.
type Config struct {
	Conn   *nats.Conn
	Stream string
	// Node is this node's name; default the host name's first label.
	Node string
	// Identity is who the connection authenticated as (client.Options.Identity), if known. A
	// node identity must be this node's: the server would refuse every write of another's.
	Identity string
	// Address is the address other nodes reach this node's pods through; default the address
	// of the interface of the default route.
	Address string
	Labels  map[string]string
	Taints  []events.Taint
	// MilliCPU, Memory and MaxPods are the node's allocatable capacity; default the machine's
	// CPUs and memory, and 110 pods.
	MilliCPU int64
	Memory   int64
	MaxPods  int32
	// EphemeralStorage is the local storage pods may use, in bytes; default the size of the
	// file system holding StateDir. Extended are the extended resources the node advertises
	// ("nvidia.com/gpu": 2), scheduled against like CPU; Skiff hands no device to a container
	// (there are no device plugins): the count is for placement.
	EphemeralStorage int64
	Extended         map[string]int64
	// ContainerdAddress is containerd's socket; default /run/containerd/containerd.sock.
	ContainerdAddress   string
	ContainerdNamespace string
	// StateDir holds the runtime's and the pod network's files; default /var/lib/skiff.
	StateDir string
	// LogDir holds container logs; default /var/log/skiff/pods.
	LogDir string
	// RuncRoot is where runc keeps container state; default /run/skiff/<node>/runc. runc keys
	// its state by namespace and ID only, so agents sharing a host need roots of their own.
	RuncRoot string
	// OCIRuntime is what containers run with, runc or crun (runtime.Config.OCIRuntime);
	// empty: crun when it works under the node's containerd, else runc.
	OCIRuntime string
	// SandboxSeccomp gives pods' pause processes the default seccomp profile, as before
	// (runtime.Config.SandboxSeccomp): the old way, to measure against.
	SandboxSeccomp bool
	// Sandbox is what holds a pod's namespaces: "pinned" (no container: the namespaces pinned
	// as bind mounts in PinDir, as CRI-O's drop_infra_ctr does) or "pause" (a pause container).
	// Empty: pinned where containerd sees the pins, else pause (runtime.Config.Sandbox).
	Sandbox string
	// PinDir holds pinned namespaces; default DefaultPinDir(Node). A containerd in a mount
	// namespace of its own must start after it was made shared (runtime.SharePinDir, which
	// containerd.Start does for the directories it is given).
	PinDir string
	// ClusterCIDR is the whole cluster's pod range; default 10.88.0.0/16.
	ClusterCIDR netip.Prefix
	// Bridge is the pod bridge's name; default skiff0.
	Bridge string
	// CNILoopbackPlugin brings pods' lo up with the loopback CNI plugin instead of
	// in-process (podnet.Config.LoopbackPlugin): the old way, to measure against.
	CNILoopbackPlugin bool
	// LeaseInterval is how often the node lease is renewed; default 10 s.
	LeaseInterval time.Duration
	// Backoff of crash-looping containers; the kubelet's when zero.
	Backoff agent.Backoff
	// Simulate, when > 0, registers that many simulated nodes instead of running a real one.
	Simulate       int
	SimulatePrefix string
	Logger         *slog.Logger
	// Ready, if set, is called once the agent runs its pods (or the simulated nodes are up).
	Ready func()
	// StopTimeout is how long Run may take to return once it stops (its context ended or the
	// node follower failed); default 30 s. Past it, the goroutines are logged and Stuck, if
	// set, is called (the standalone agent exits).
	StopTimeout time.Duration
	Stuck       func()
	// Metrics, if set, receives the agent's metrics (skiff_nodeagent_*); Run fails if it holds
	// them already. Simulated nodes record none.
	Metrics prometheus.Registerer
}

// DefaultClusterCIDR is the cluster's pod range unless configured otherwise.
var DefaultClusterCIDR = netip.MustParsePrefix("10.88.0.0/16")

// DefaultNodeName is the host name's first label, lower case ("" if the host name is unknown).
func DefaultNodeName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.SplitN(h, ".", 2)[0])
}

func (c *Config) defaults() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.Node == "" {
		if c.Node = DefaultNodeName(); c.Node == "" {
			return fmt.Errorf("node name: the host name is unknown: set --node-name")
		}
	}
	if c.Address == "" {
		c.Address = defaultAddress()
	}
	if c.MilliCPU == 0 {
		c.MilliCPU = int64(goruntime.NumCPU()) * 1000
	}
	if c.Memory == 0 {
		c.Memory = memTotal()
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/skiff"
	}
	if c.EphemeralStorage == 0 {
		c.EphemeralStorage = fsSize(c.StateDir)
	}
	if c.RuncRoot == "" {
		// On tmpfs, and this node's own: several agents on one host (and a crash's
		// leftovers) stay apart.
		c.RuncRoot = filepath.Join("/run/skiff", c.Node, "runc")
	}
	if c.PinDir == "" {
		c.PinDir = DefaultPinDir(c.Node)
	}
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = DefaultClusterCIDR
	}
	return nil
}

// Run runs the agent until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if cfg.Conn == nil {
		return fmt.Errorf("node agent: no NATS connection: %w", events.ErrInvalidArgument)
	}
	if node, ok := strings.CutPrefix(cfg.Identity, "node:"); ok && node != cfg.Node && cfg.Simulate == 0 {
		return events.Errorf(events.ErrPermissionDenied, "node agent: the credentials are node %s's, but this agent runs as node %s (--node-name): "+
			"the server lets a node act only on its own subjects; use node %s's creds (skiff node creds %s) or --node-name %s", node, cfg.Node, cfg.Node, cfg.Node, node)
	}
	tp, err := telemetry.Setup(ctx, telemetry.Config{Service: telemetry.ServiceNodeAgent, Instance: cfg.Node})
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	defer flushTraces(tp, cfg.Logger)
	if tp.Enabled() {
		cfg.Logger = slog.New(telemetry.NewLogHandler(cfg.Logger.Handler()))
	}
	log := cfg.Logger.With("node", cfg.Node)
	st, err := store.Attach(ctx, cfg.Conn, store.Config{Stream: cfg.Stream, Logger: log})
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	if cfg.Simulate > 0 {
		return simulate.Run(ctx, simulate.Config{Store: st, Count: cfg.Simulate, Prefix: cfg.SimulatePrefix,
			LeaseInterval: cfg.LeaseInterval, Logger: log, Ready: func([]string) {
				if cfg.Ready != nil {
					cfg.Ready()
				}
			}})
	}

	// The goroutines below end with ctx, so it is cancelled before they are waited for (defers
	// run last first): an error returned on the way must not wait for the caller to end ctx.
	// stopped closes last, once all of them have ended.
	stopped := make(chan struct{})
	defer close(stopped)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watchStop(ctx, stopped, cfg.StopTimeout, cfg.Stuck, log)

	// The node subjects: this node's registration and pod CIDR, and other nodes' for routes.
	// Without them the agent cannot tell its pod CIDR or route to other nodes: it stops, with
	// the error, for its supervisor to start it again.
	// From the newest snapshot of what nodes read, restricted to the node subjects.
	nodes := live.New(snapshot.Start(ctx, st, api.NodeSnapshotBucket, []string{events.KindNode}, log), log)
	nodesErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := nodes.Run(ctx, st, []string{events.KindFilter(events.KindNode)}); err != nil && ctx.Err() == nil {
			nodesErr <- fmt.Errorf("follow node subjects: %w", err)
			cancel()
		}
	}()
	// failed prefers the node follower's error to what its cancellation caused.
	failed := func(err error) error {
		select {
		case ferr := <-nodesErr:
			return ferr
		default:
			return err
		}
	}
	if err := nodes.WaitSynced(ctx); err != nil {
		return failed(err)
	}
	info := register.NodeInfo{Name: cfg.Node, Labels: cfg.Labels, Taints: cfg.Taints, Address: cfg.Address,
		MilliCPU: cfg.MilliCPU, Memory: cfg.Memory, MaxPods: cfg.MaxPods,
		EphemeralStorage: cfg.EphemeralStorage, Extended: cfg.Extended}
	if info.Labels == nil {
		info.Labels = map[string]string{}
	}
	info.Labels["kubernetes.io/hostname"] = cfg.Node
	if err := register.Register(ctx, st, nodes, info, ""); err != nil {
		return failed(fmt.Errorf("register node %s: %w", cfg.Node, err))
	}
	kv, err := register.LeaseBucket(ctx, st.JetStream())
	if err != nil {
		return failed(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = register.RenewLoop(ctx, kv, []string{cfg.Node}, register.RenewConfig{Interval: cfg.LeaseInterval, Logger: log})
	}()

	// Logs are files the shims write: they are served without containerd or the log.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := logs.Serve(ctx, cfg.Conn, cfg.Node, cfg.LogDir, log); err != nil {
			log.Error("serve container logs", "err", err)
		}
	}()

	rt, err := runtime.New(ctx, runtime.Config{
		Address: cfg.ContainerdAddress, Namespace: cfg.ContainerdNamespace,
		StateDir: filepath.Join(cfg.StateDir, "runtime"), LogDir: cfg.LogDir, Logger: log,
		RuncRoot: cfg.RuncRoot, OCIRuntime: cfg.OCIRuntime, SandboxSeccomp: cfg.SandboxSeccomp,
		Sandbox: cfg.Sandbox, PinDir: cfg.PinDir,
	})
	if err != nil {
		return failed(fmt.Errorf("containerd: %w", err))
	}
	defer rt.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		rt.RunLogRotation(ctx, 30*time.Second)
	}()

	m, err := agent.NewMetrics(cfg.Metrics)
	if err != nil {
		return failed(err)
	}
	a := agent.New(agent.Config{
		Node: cfg.Node, Address: cfg.Address, Log: st, Nodes: nodes, JetStream: st.JetStream(), Runtime: rt,
		Backoff: cfg.Backoff, Logger: log, Metrics: m, Tracer: tp.Tracer(),
		Allocatable: map[string]int64{"cpu": cfg.MilliCPU, "memory": cfg.Memory, events.ResourceEphemeralStorage: cfg.EphemeralStorage},
		Network: func(ctx context.Context, podCIDR netip.Prefix) (agent.Network, error) {
			return podnet.New(ctx, podnet.Config{PodCIDR: podCIDR, ClusterCIDR: cfg.ClusterCIDR, Bridge: cfg.Bridge,
				LoopbackPlugin: cfg.CNILoopbackPlugin,
				StateDir:       filepath.Join(cfg.StateDir, "podnet"), Logger: log})
		},
	})
	if cfg.Ready != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-a.Ready():
				cfg.Ready()
			case <-ctx.Done():
			}
		}()
	}
	return failed(a.Run(ctx))
}

// watchStop reports an agent that has not stopped within timeout of ctx ending, with every
// goroutine's stack (what it waits for), and calls stuck if set. A node whose agent neither
// runs nor exits holds its pods without renewing its lease: its supervisor should restart it.
func watchStop(ctx context.Context, stopped <-chan struct{}, timeout time.Duration, stuck func(), log *slog.Logger) {
	select {
	case <-stopped:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		log.Error("node agent has not stopped", "after", timeout, "goroutines", stacks.String())
		if stuck != nil {
			stuck()
		}
	}
}

// defaultAddress is the IPv4 address of the interface the default route leaves through, found
// without sending anything: a UDP "connection" only picks a source address.
func defaultAddress() string {
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return a.IP.String()
	}
	return "127.0.0.1"
}

// memTotal is the machine's memory in bytes, from /proc/meminfo.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1 << 30
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 1 << 30
}

// flushTraces sends the spans still buffered, for a few seconds at most: a collector that is
// gone must not hold up the agent's exit.
func flushTraces(tp *telemetry.Provider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		log.Warn("flush traces", "err", err)
	}
}

// DefaultPinDir is where a node's pinned namespaces live unless Config.PinDir says otherwise: on
// tmpfs, as namespaces do not outlive a reboot, and the node's own.
func DefaultPinDir(node string) string { return filepath.Join("/run/skiff", node, "ns") }

// fsSize is the size in bytes of the file system holding dir (or of the nearest parent that
// exists), 0 when it cannot be read.
func fsSize(dir string) int64 {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			return int64(st.Blocks) * st.Bsize
		}
		if d == filepath.Dir(d) {
			return 0
		}
	}
}
