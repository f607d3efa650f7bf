package podnet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	gocni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"skiff.dev/events"
)

// undoTimeout bounds the CNI DEL that undoes a failed Setup, which runs even when the
// caller's context is done.
const undoTimeout = 30 * time.Second

// Network is the pod network of one node. Its methods are safe for concurrent use.
type Network struct {
	cfg Config
	cni gocni.CNI

	// podLocks serialise Setup and Teardown of one pod (striped by pod ID: bounded memory,
	// and two pods rarely share a stripe).
	podLocks [64]sync.Mutex
	// routesMu serialises SyncRoutes.
	routesMu sync.Mutex
}

// New validates cfg, writes the conflist into cfg.StateDir, and installs the masquerade rule
// of the node (see doc.go). It runs in the network namespace of the calling process, the node's.
//
// Errors: events.ErrInvalidArgument for a bad Config; events.ErrFailedPrecondition when a CNI
// plugin binary is missing; otherwise a wrapped I/O or netlink error.
func New(ctx context.Context, cfg Config) (*Network, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	plugins := []string{"bridge", "host-local"}
	if cfg.LoopbackPlugin {
		plugins = append(plugins, "loopback")
	}
	for _, plugin := range plugins {
		if _, err := findPlugin(cfg.PluginDirs, plugin); err != nil {
			return nil, err
		}
	}
	conf, err := renderConfList(cfg)
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.StateDir, cfg.ipamDir(), cfg.podRecordDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("pod network: create state dir: %w", err)
		}
	}
	if err := writeFileAtomic(cfg.confListPath(), conf); err != nil {
		return nil, fmt.Errorf("pod network: write conflist: %w", err)
	}
	networks := 1
	load := []gocni.Opt{gocni.WithConfListFile(cfg.confListPath())}
	if cfg.LoopbackPlugin {
		// The bridge network first: go-cni names a network's interface after its position,
		// and the pod's interface must be eth0.
		networks, load = 2, append(load, gocni.WithLoNetwork)
	}
	c, err := gocni.New(gocni.WithPluginDir(cfg.PluginDirs), gocni.WithInterfacePrefix("eth"), gocni.WithMinNetworkCount(networks))
	if err != nil {
		return nil, fmt.Errorf("pod network: init CNI: %w", err)
	}
	if err := c.Load(load...); err != nil {
		return nil, fmt.Errorf("pod network: load conflist %s: %w", cfg.confListPath(), err)
	}
	if err := ensureMasquerade(ctx, cfg); err != nil {
		return nil, fmt.Errorf("pod network: %w", err)
	}
	cfg.Logger.Info("pod network ready", "podCIDR", cfg.PodCIDR, "clusterCIDR", cfg.ClusterCIDR,
		"bridge", cfg.Bridge, "stateDir", cfg.StateDir)
	return &Network{cfg: cfg, cni: c}, nil
}

// Gateway is the address of the node on its pod bridge, the pods' default gateway.
func (n *Network) Gateway() netip.Addr { return n.cfg.gateway() }

func (n *Network) lockPod(podID string) func() {
	h := fnv.New32a()
	h.Write([]byte(podID))
	m := &n.podLocks[h.Sum32()%uint32(len(n.podLocks))]
	m.Lock()
	return m.Unlock
}

// Setup connects the network namespace at netnsPath (/proc/<pid>/ns/net of the pod's sandbox
// process) to the node's bridge and returns the pod's address.
//
// Setup is idempotent: when the namespace already has the address host-local holds for
// podID, that address is returned and nothing changes. When host-local holds an address for
// podID but the namespace does not have it (a new sandbox for the pod, or an earlier Setup
// that failed halfway), the old allocation is released first, so a pod never holds two.
// A failed Setup undoes what it did.
//
// Errors: events.ErrInvalidArgument for a bad pod ID or a netnsPath that is not a network
// namespace or is the node's own; an error matching fs.ErrNotExist when netnsPath does not
// exist; otherwise a wrapped CNI error (such as an exhausted pod CIDR).
func (n *Network) Setup(ctx context.Context, podID, netnsPath string) (netip.Addr, error) {
	if err := checkPodID(podID); err != nil {
		return netip.Addr{}, fmt.Errorf("set up network of pod: %w", err)
	}
	defer n.lockPod(podID)()
	log := n.cfg.Logger.With("pod", podID, "netns", netnsPath)

	id, err := netnsIdentity(netnsPath)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("set up network of pod %s: %w", podID, err)
	}
	own, err := ownNetns()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("set up network of pod %s: %w", podID, err)
	}
	if id == own {
		return netip.Addr{}, fmt.Errorf("set up network of pod %s: %s is the node's own network namespace, not the pod's: %w",
			podID, netnsPath, events.ErrInvalidArgument)
	}

	held, isHeld, err := n.allocationOf(ctx, podID)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("set up network of pod %s: %w", podID, err)
	}
	has, hasIface, err := n.preparePod(netnsPath)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("set up network of pod %s: %w", podID, err)
	}
	if isHeld && slices.Contains(has, held) {
		if err := n.writePodRecord(podID, podRecord{Netns: id}); err != nil {
			return netip.Addr{}, fmt.Errorf("set up network of pod %s: %w", podID, err)
		}
		log.Debug("pod network already set up", "ip", held)
		return held, nil
	}
	if isHeld || hasIface {
		// Leftovers of an earlier attempt: host-local refuses a second allocation for the
		// same ID, and the bridge plugin refuses an existing eth0. The namespace may be an
		// old one (a new sandbox for the same pod), so the old allocation is released
		// without touching it; eth0 in the new namespace is removed through its path.
		log.Info("clearing leftovers of an earlier setup", "heldIP", held, "podHasInterface", hasIface)
		path := ""
		if hasIface {
			path = netnsPath
		}
		if err := n.cni.Remove(ctx, podID, path); err != nil {
			return netip.Addr{}, fmt.Errorf("set up network of pod %s: clear leftovers of an earlier setup: %w", podID, err)
		}
	}

	// The record goes first: after a crash between the two, Teardown must still know the
	// namespace the interface may have been put in.
	if err := n.writePodRecord(podID, podRecord{Netns: id}); err != nil {
		return netip.Addr{}, fmt.Errorf("set up network of pod %s: %w", podID, err)
	}
	res, err := n.cni.Setup(ctx, podID, netnsPath)
	if err == nil {
		var ip netip.Addr
		ip, err = podAddr(res)
		if err == nil {
			log.Info("pod network set up", "ip", ip)
			return ip, nil
		}
	}
	// libcni does not call DEL after a failed ADD; without it the veth or the address
	// could stay behind. The context may be why ADD failed, so undo without it.
	undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	if rerr := n.cni.Remove(undoCtx, podID, netnsPath); rerr != nil {
		log.Error("undo failed pod network setup", "err", rerr)
		err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
	} else if rerr := n.removePodRecord(podID); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return netip.Addr{}, fmt.Errorf("set up network of pod %s: %w", podID, err)
}

// Teardown disconnects the pod and releases its address. It works when the pod's namespace
// is already gone (netnsPath does not exist, or is empty): the address is released all the
// same. If netnsPath now names another namespace than the one Setup was given (the sandbox's
// PID was reused), that namespace is left alone. Teardown of a pod that has no network is a
// no-op, so it can be retried.
//
// Errors: events.ErrInvalidArgument for a bad pod ID; otherwise a wrapped CNI error.
func (n *Network) Teardown(ctx context.Context, podID, netnsPath string) error {
	if err := checkPodID(podID); err != nil {
		return fmt.Errorf("tear down network of pod: %w", err)
	}
	defer n.lockPod(podID)()
	log := n.cfg.Logger.With("pod", podID, "netns", netnsPath)

	path, err := n.teardownPath(podID, netnsPath)
	if err != nil {
		return fmt.Errorf("tear down network of pod %s: %w", podID, err)
	}
	if path != netnsPath {
		log.Info("pod namespace gone or replaced; releasing its address only")
	}
	if err := n.cni.Remove(ctx, podID, path); err != nil {
		return fmt.Errorf("tear down network of pod %s: %w", podID, err)
	}
	if !n.cfg.LoopbackPlugin {
		// A pod set up while the loopback plugin ran (an agent from before, or started
		// with it) has a libcni cache entry for it, which nothing else removes.
		if err := os.Remove(filepath.Join(libcni.CacheDir, "results", "cni-loopback-"+podID+"-lo")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tear down network of pod %s: remove loopback cache entry: %w", podID, err)
		}
	}
	if err := n.removePodRecord(podID); err != nil {
		return fmt.Errorf("tear down network of pod %s: %w", podID, err)
	}
	log.Info("pod network torn down")
	return nil
}

// teardownPath is the namespace path to hand CNI DEL: netnsPath when it still names the
// pod's namespace, "" (release the address only) when it is gone or names another one.
func (n *Network) teardownPath(podID, netnsPath string) (string, error) {
	if netnsPath == "" {
		return "", nil
	}
	id, err := netnsIdentity(netnsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	rec, ok, err := n.readPodRecord(podID)
	if err != nil {
		return "", err
	}
	if ok {
		if rec.Netns != id {
			return "", nil
		}
		return netnsPath, nil
	}
	// No record (a state dir from before records, or lost): at least never remove eth0 from
	// the node itself.
	own, err := ownNetns()
	if err != nil {
		return "", err
	}
	if id == own {
		return "", nil
	}
	return netnsPath, nil
}

// preparePod brings the pod's lo up (unless the loopback plugin does it) and lists the IPv4
// addresses of the pod's interface, and whether it exists: one netlink socket in the pod's
// namespace for both.
//
// lo is brought up here rather than by the loopback CNI plugin: the plugin is a process of
// its own (about 5 ms of CPU per pod on the machine of docs/bench/e2e.md) for one netlink
// request. A new network namespace's lo already has 127.0.0.1/8 and ::1; it only needs to
// be up, and setting it up again is harmless, so a repeated Setup needs no check.
func (n *Network) preparePod(netnsPath string) ([]netip.Addr, bool, error) {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, false, fmt.Errorf("open pod network namespace: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, false, fmt.Errorf("netlink in pod network namespace: %w", err)
	}
	defer h.Close()
	if !n.cfg.LoopbackPlugin {
		lo, err := h.LinkByName("lo")
		if err == nil {
			err = h.LinkSetUp(lo)
		}
		if err != nil {
			return nil, false, fmt.Errorf("bring up lo in pod: %w", err)
		}
	}
	link, err := h.LinkByName(PodInterface)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("look up %s in pod: %w", PodInterface, err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, true, fmt.Errorf("list addresses of %s in pod: %w", PodInterface, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, true, nil
}

// podAddr is the IPv4 address the bridge network gave the pod's interface.
func podAddr(res *gocni.Result) (netip.Addr, error) {
	iface, ok := res.Interfaces[PodInterface]
	if ok {
		for _, c := range iface.IPConfigs {
			if ip, ok := netip.AddrFromSlice(c.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("CNI result has no IPv4 address for %s", PodInterface)
}

func findPlugin(dirs []string, name string) (string, error) {
	for _, d := range dirs {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("pod network: CNI plugin %q not found in %v (install Debian's containernetworking-plugins, or set Config.PluginDirs): %w",
		name, dirs, events.ErrFailedPrecondition)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
