package podnet

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"

	"skiff.dev/events"
)

// Defaults for the zero values of Config.
const (
	DefaultBridge   = "skiff0"
	DefaultStateDir = "/var/lib/skiff/podnet"
)

// DefaultPluginDirs is where the CNI plugin binaries are looked for when Config.PluginDirs is empty:
// Debian's containernetworking-plugins first, then the upstream location.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// NetworkName is the CNI network name. host-local keys its store directory by it, and libcni
// its result cache, so it is part of the on-disk layout: do not change it casually.
const NetworkName = "skiff"

// PodInterface is the name of the pod's end of its veth pair.
const PodInterface = "eth0"

// Config says which pod network to give this node. Only PodCIDR is required.
type Config struct {
	// PodCIDR is this node's share of the cluster's pod range (an IPv4 prefix such as
	// 10.88.1.0/24). Its first address is the gateway, held by the bridge.
	PodCIDR netip.Prefix
	// ClusterCIDR is the whole cluster's pod range (such as 10.88.0.0/16). Traffic from a pod to
	// an address outside it is masqueraded to the node's address; traffic inside it (to pods on
	// other nodes) keeps the pod's address. The zero value means PodCIDR: everything leaving the
	// node's own pods is masqueraded, which is right for a single node.
	ClusterCIDR netip.Prefix
	// Bridge is the name of the node's pod bridge; DefaultBridge when empty.
	Bridge string
	// PluginDirs are searched in order for the CNI plugin binaries; DefaultPluginDirs when empty.
	PluginDirs []string
	// StateDir holds the generated conflist, host-local's allocations and Skiff's per-pod
	// records; DefaultStateDir when empty. Two Networks must not share one.
	StateDir string
	// MTU of the bridge and the veths; the bridge plugin's default (1500) when zero.
	MTU int
	// LoopbackPlugin brings the pod's lo up with Debian's loopback CNI plugin, one more
	// process per pod set up and torn down, instead of in-process with netlink. It is the
	// old way, kept to measure against (tests/e2e's start-up benchmark).
	LoopbackPlugin bool
	// Logger receives what podnet does; nothing is logged when nil.
	Logger *slog.Logger
}

// withDefaults returns c with its zero values filled in, or an error wrapping
// events.ErrInvalidArgument that says what is wrong.
func (c Config) withDefaults() (Config, error) {
	if !c.PodCIDR.IsValid() {
		return c, fmt.Errorf("pod network: no pod CIDR given (set Config.PodCIDR to this node's share, e.g. 10.88.1.0/24): %w", events.ErrInvalidArgument)
	}
	if !c.PodCIDR.Addr().Is4() {
		return c, fmt.Errorf("pod network: pod CIDR %s is not IPv4 (only IPv4 is supported): %w", c.PodCIDR, events.ErrInvalidArgument)
	}
	if c.PodCIDR != c.PodCIDR.Masked() {
		return c, fmt.Errorf("pod network: pod CIDR %s has host bits set (did you mean %s?): %w", c.PodCIDR, c.PodCIDR.Masked(), events.ErrInvalidArgument)
	}
	if c.PodCIDR.Bits() > 30 {
		return c, fmt.Errorf("pod network: pod CIDR %s is too small (need at least a /30: a gateway and one pod): %w", c.PodCIDR, events.ErrInvalidArgument)
	}
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = c.PodCIDR
	}
	if !c.ClusterCIDR.Addr().Is4() || c.ClusterCIDR != c.ClusterCIDR.Masked() ||
		c.ClusterCIDR.Bits() > c.PodCIDR.Bits() || !c.ClusterCIDR.Contains(c.PodCIDR.Addr()) {
		return c, fmt.Errorf("pod network: cluster CIDR %s must be an IPv4 prefix without host bits that contains pod CIDR %s: %w",
			c.ClusterCIDR, c.PodCIDR, events.ErrInvalidArgument)
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if len(c.Bridge) > 15 {
		return c, fmt.Errorf("pod network: bridge name %q is longer than the kernel's 15 characters: %w", c.Bridge, events.ErrInvalidArgument)
	}
	if len(c.PluginDirs) == 0 {
		c.PluginDirs = DefaultPluginDirs
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if !filepath.IsAbs(c.StateDir) {
		// host-local runs as a child process and resolves dataDir itself: a relative
		// path would silently depend on the working directory.
		return c, fmt.Errorf("pod network: state dir %q is not an absolute path: %w", c.StateDir, events.ErrInvalidArgument)
	}
	if c.MTU < 0 || (c.MTU != 0 && c.MTU < 576) || c.MTU > 65535 {
		return c, fmt.Errorf("pod network: MTU %d is out of range (0 for the default, or 576..65535): %w", c.MTU, events.ErrInvalidArgument)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// gateway is the bridge's address: the first address of the pod CIDR.
func (c Config) gateway() netip.Addr { return c.PodCIDR.Addr().Next() }

func (c Config) confListPath() string { return filepath.Join(c.StateDir, NetworkName+".conflist") }

// ipamDir is host-local's dataDir; it keeps one file per address under ipamDir/NetworkName.
func (c Config) ipamDir() string { return filepath.Join(c.StateDir, "ipam") }

func (c Config) allocationDir() string { return filepath.Join(c.ipamDir(), NetworkName) }

func (c Config) podRecordDir() string { return filepath.Join(c.StateDir, "pods") }

// The conflist's shape. Only the fields Skiff sets; see the CNI spec and the bridge and
// host-local plugins' documentation for their meaning.
type (
	confList struct {
		CNIVersion string       `json:"cniVersion"`
		Name       string       `json:"name"`
		Plugins    []bridgeConf `json:"plugins"`
	}
	bridgeConf struct {
		Type   string `json:"type"`
		Bridge string `json:"bridge"`
		// IsGateway gives the bridge the gateway address and turns on IPv4 forwarding.
		IsGateway bool `json:"isGateway"`
		// IPMasq stays false: the plugin's rule would masquerade everything outside this node's
		// pod CIDR, hiding pod addresses from pods on other nodes. podnet's own nftables table
		// masquerades only what leaves the cluster CIDR.
		IPMasq bool `json:"ipMasq"`
		// HairpinMode lets a packet leave through the bridge port it came in on: a pod that
		// reaches a Service whose chosen endpoint is the pod itself.
		HairpinMode bool          `json:"hairpinMode"`
		MTU         int           `json:"mtu,omitempty"`
		IPAM        hostLocalIPAM `json:"ipam"`
	}
	hostLocalIPAM struct {
		Type    string        `json:"type"`
		Ranges  [][]ipamRange `json:"ranges"`
		Routes  []ipamRoute   `json:"routes"`
		DataDir string        `json:"dataDir"`
	}
	ipamRange struct {
		Subnet  string `json:"subnet"`
		Gateway string `json:"gateway"`
	}
	ipamRoute struct {
		Dst string `json:"dst"`
	}
)

// renderConfList is the CNI network configuration list for c, which must have its defaults.
// It is a pure function of c so that it can be checked against golden files.
func renderConfList(c Config) ([]byte, error) {
	l := confList{
		CNIVersion: "1.0.0",
		Name:       NetworkName,
		Plugins: []bridgeConf{{
			Type:        "bridge",
			Bridge:      c.Bridge,
			IsGateway:   true,
			IPMasq:      false,
			HairpinMode: true,
			MTU:         c.MTU,
			IPAM: hostLocalIPAM{
				Type:    "host-local",
				Ranges:  [][]ipamRange{{{Subnet: c.PodCIDR.String(), Gateway: c.gateway().String()}}},
				Routes:  []ipamRoute{{Dst: "0.0.0.0/0"}},
				DataDir: c.ipamDir(),
			},
		}},
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render CNI conflist: %w", err)
	}
	return append(b, '\n'), nil
}
