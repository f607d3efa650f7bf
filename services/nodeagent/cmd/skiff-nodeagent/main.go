// Command skiff-nodeagent runs on every node: it registers the node, renews its lease, and runs
// the pods bound to it on containerd with a pod network from CNI. With --simulate N it registers N
// simulated nodes instead (for scale tests), which report their pods Running without running them.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/client"
	"skiff.dev/events/metrics"
	"skiff.dev/services/nodeagent"
	"skiff.dev/services/nodeagent/internal/agent"
)

func main() { client.Main("skiff-nodeagent", run) }

func run(args []string) error {
	fs := flag.NewFlagSet("skiff-nodeagent", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff-nodeagent [flags]\n\nRuns the pods bound to this node on containerd (needs root), or with --simulate N registers N\nsimulated nodes.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		conn        client.Options
		cfg         nodeagent.Config
		labels      = fs.String("labels", "", "node labels, k=v,k2=v2")
		taints      = fs.String("taints", "", "node taints, key=value:Effect,key2:Effect")
		cpu         = fs.String("cpu", "", "allocatable CPU, e.g. 4 or 3500m (default: the machine's CPUs)")
		memory      = fs.String("memory", "", "allocatable memory, e.g. 8Gi (default: the machine's memory)")
		maxPods     = fs.Int("max-pods", 110, "most pods this node runs")
		ephemeral   = fs.String("ephemeral-storage", "", "local storage pods may use, e.g. 50Gi (default: the size of the file system holding --state-dir)")
		extended    = fs.String("extended-resources", "", "extended resources this node advertises for scheduling, name=count,... e.g. nvidia.com/gpu=2 (no device is handed to containers)")
		clusterCIDR = fs.String("cluster-cidr", nodeagent.DefaultClusterCIDR.String(), "the whole cluster's pod range")
		logger      = client.LogFlag(fs)
		metricsAddr = metrics.Flag(fs)
	)
	conn.Flags(fs)
	fs.StringVar(&cfg.Stream, "stream", "SKIFF", "JetStream stream holding the log")
	fs.StringVar(&cfg.Node, "node-name", "", "this node's name (default: the host name)")
	fs.StringVar(&cfg.Address, "address", "", "address other nodes reach this node at (default: the default route's interface address)")
	fs.StringVar(&cfg.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd's socket")
	fs.StringVar(&cfg.ContainerdNamespace, "containerd-namespace", "skiff", "containerd namespace for Skiff's containers")
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/skiff", "directory for the runtime's and pod network's state")
	fs.StringVar(&cfg.LogDir, "log-dir", "/var/log/skiff/pods", "directory for container logs")
	fs.StringVar(&cfg.RuncRoot, "runc-root", "", "directory for runc's (or crun's) container state (default /run/skiff/<node>/runc)")
	fs.StringVar(&cfg.OCIRuntime, "oci-runtime", "", "what containers run with: crun or runc (default: crun if it works under this containerd, else runc)")
	fs.StringVar(&cfg.Bridge, "bridge", "skiff0", "the pod bridge's name")
	fs.StringVar(&cfg.Sandbox, "sandbox", "", `what holds a pod's namespaces: "pinned" (the namespaces pinned as files, no container; default where containerd sees the pins, else pause) or "pause" (a pause container)`)
	fs.StringVar(&cfg.PinDir, "pin-dir", "", "where pinned namespaces live; a containerd in its own mount namespace must start after it was made shared (default /run/skiff/<node>/ns)")
	fs.BoolVar(&cfg.SandboxSeccomp, "sandbox-seccomp", false, "give pods' pause processes the default seccomp profile too (slower; to compare)")
	fs.BoolVar(&cfg.CNILoopbackPlugin, "cni-loopback-plugin", false, "bring pods' lo up with the loopback CNI plugin rather than in-process (slower; to compare)")
	fs.DurationVar(&cfg.LeaseInterval, "lease-interval", 10*time.Second, "how often the node lease is renewed")
	fs.DurationVar(&cfg.Backoff.Base, "backoff-base", agent.DefaultBackoff.Base, "first delay before restarting a crashed container")
	fs.DurationVar(&cfg.Backoff.Cap, "backoff-cap", agent.DefaultBackoff.Cap, "longest delay before restarting a crashed container")
	fs.IntVar(&cfg.Simulate, "simulate", 0, "register this many simulated nodes instead of running a real one")
	fs.StringVar(&cfg.SimulatePrefix, "simulate-prefix", "sim-", "name prefix of simulated nodes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	cfg.Backoff.ResetAfter = agent.DefaultBackoff.ResetAfter
	cfg.MaxPods = int32(*maxPods)
	var err error
	if *ephemeral != "" {
		if cfg.EphemeralStorage, err = events.ParseMemory(*ephemeral); err != nil {
			return fmt.Errorf("--ephemeral-storage: %w", err)
		}
	}
	if cfg.Extended, err = parseExtended(*extended); err != nil {
		return fmt.Errorf("--extended-resources: %w", err)
	}
	if cfg.ClusterCIDR, err = netip.ParsePrefix(*clusterCIDR); err != nil {
		return fmt.Errorf("--cluster-cidr: %w", err)
	}
	if *cpu != "" {
		if cfg.MilliCPU, err = events.ParseCPU(*cpu); err != nil {
			return fmt.Errorf("--cpu: %w", err)
		}
	}
	if *memory != "" {
		if cfg.Memory, err = events.ParseMemory(*memory); err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
	}
	if cfg.Labels, err = parseLabels(*labels); err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	if cfg.Taints, err = parseTaints(*taints); err != nil {
		return fmt.Errorf("--taints: %w", err)
	}
	if cfg.Logger, err = logger(); err != nil {
		return err
	}
	if cfg.Identity, err = conn.Identity(); err != nil {
		return err
	}
	return client.Serve(conn, "skiff-nodeagent", cfg.Logger, func(ctx context.Context, nc *nats.Conn) error {
		cfg.Conn = nc
		cfg.Stuck = func() { os.Exit(1) }
		reg, err := metrics.ForProcess(ctx, *metricsAddr, nc, "skiff-nodeagent", cfg.Logger)
		if err != nil {
			return err
		}
		cfg.Metrics = reg
		return nodeagent.Run(ctx, cfg)
	})
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func parseTaints(s string) ([]events.Taint, error) {
	var out []events.Taint
	if s == "" {
		return nil, nil
	}
	for _, t := range strings.Split(s, ",") {
		kv, effect, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want key=value:Effect", t)
		}
		switch effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			return nil, fmt.Errorf("%q: effect must be NoSchedule, PreferNoSchedule or NoExecute", t)
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("%q: the key is empty", t)
		}
		out = append(out, events.Taint{Key: k, Value: v, Effect: effect})
	}
	return out, nil
}

// parseExtended reads name=count,... of extended resources.
func parseExtended(s string) (map[string]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]int64{}
	for _, item := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%q: want name=count, e.g. nvidia.com/gpu=2", item)
		}
		if !events.IsExtendedResource(name) {
			return nil, fmt.Errorf("%q is not an extended resource name: want a domain and a name, e.g. nvidia.com/gpu", name)
		}
		n, err := events.ParseCount(count)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = n
	}
	return out, nil
}
