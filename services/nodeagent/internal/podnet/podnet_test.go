package podnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/services/nodeagent/internal/podnet/podnettest"
)

var testPodCIDR = netip.MustParsePrefix("10.88.1.0/24")

// newTestNetwork makes a Network for a test that runs in its own node namespace, with all
// of its state (and libcni's result cache) in temporary directories.
func newTestNetwork(tb testing.TB, cfg Config) *Network {
	tb.Helper()
	if !cfg.PodCIDR.IsValid() {
		cfg.PodCIDR = testPodCIDR
	}
	cfg.StateDir = tb.TempDir()
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// Process-wide, which is fine: the test runs alone in its own process (see podnettest).
	libcni.CacheDir = filepath.Join(tb.TempDir(), "cni-cache")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return n
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func setup(tb testing.TB, n *Network, podID string, pod *podnettest.Netns) netip.Addr {
	tb.Helper()
	ip, err := n.Setup(testContext(tb), podID, pod.Path)
	if err != nil {
		tb.Fatalf("Setup(%s): %v", podID, err)
	}
	return ip
}

func allocations(tb testing.TB, n *Network) []Allocation {
	tb.Helper()
	a, err := n.Allocations(testContext(tb))
	if err != nil {
		tb.Fatalf("Allocations: %v", err)
	}
	return a
}

// veths lists the node's veth interfaces: the node ends of pods' pairs.
func veths() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if l.Type() == "veth" {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

func noVeths() error {
	v, err := veths()
	if err != nil {
		return err
	}
	if len(v) != 0 {
		return fmt.Errorf("veths left on the node: %v", v)
	}
	return nil
}

func TestPodsReachEachOtherAndNode(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	podA, podB := podnettest.NewPodNetns(t), podnettest.NewPodNetns(t)
	ipA := setup(t, n, "pod-a", podA)
	ipB := setup(t, n, "pod-b", podB)

	for _, ip := range []netip.Addr{ipA, ipB} {
		if !testPodCIDR.Contains(ip) || ip == n.Gateway() || ip == testPodCIDR.Addr() {
			t.Errorf("pod address %s is not a usable address of %s", ip, testPodCIDR)
		}
	}
	if ipA == ipB {
		t.Fatalf("both pods got %s", ipA)
	}
	want := []Allocation{{IP: ipA, PodID: "pod-a", IfName: "eth0"}, {IP: ipB, PodID: "pod-b", IfName: "eth0"}}
	if ipB.Less(ipA) {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, allocations(t, n), equateNetip); diff != "" {
		t.Errorf("Allocations (-want +got):\n%s", diff)
	}

	ctx := testContext(t)
	atA := podnettest.ServePeer(t, podA, netip.AddrPortFrom(ipA, 0).String())
	atNode := podnettest.ServePeer(t, nil, netip.AddrPortFrom(n.Gateway(), 0).String())
	tests := []struct {
		name     string
		from     *podnettest.Netns
		to       netip.AddrPort
		wantPeer netip.Addr
	}{
		{"pod to pod", podB, atA, ipB},
		{"pod to node", podB, atNode, ipB},
		{"node to pod", nil, atA, n.Gateway()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := podnettest.AskPeer(ctx, tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.wantPeer {
				t.Errorf("listener at %s saw the connection come from %s, want %s", tt.to, got, tt.wantPeer)
			}
		})
	}

	// The bridge holds the gateway; hairpin mode is on for both pods' ports.
	br, err := netlink.LinkByName(DefaultBridge)
	if err != nil {
		t.Fatalf("bridge: %v", err)
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.88.1.1/24" {
		t.Errorf("bridge addresses = %v, %v; want 10.88.1.1/24", addrs, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	ports := 0
	for _, l := range links {
		if l.Type() == "veth" && l.Attrs().MasterIndex == br.Attrs().Index {
			ports++
			p, err := netlink.LinkGetProtinfo(l)
			if err != nil || !p.Hairpin {
				t.Errorf("port %s: hairpin mode off (%+v, %v)", l.Attrs().Name, p, err)
			}
		}
	}
	if ports != 2 {
		t.Errorf("bridge has %d veth ports, want 2", ports)
	}
}

// A pod's namespace comes with lo down; Setup brings it up, in-process or through the
// loopback plugin, and a pod reaches itself on 127.0.0.1.
func TestSetupBringsLoopbackUp(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	for _, tt := range []struct {
		name      string
		plugin    bool
		wantCache bool // libcni keeps an ADD result for the loopback network
	}{
		{"in-process", false, false},
		{"loopback plugin", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNetwork(t, Config{LoopbackPlugin: tt.plugin})
			pod := podnettest.NewPodNetns(t)
			if up, err := loopbackUp(pod); err != nil || up {
				t.Fatalf("lo of a new namespace: up %v, %v; want down", up, err)
			}
			setup(t, n, "pod-a", pod)
			if up, err := loopbackUp(pod); err != nil || !up {
				t.Fatalf("lo after Setup: up %v, %v; want up", up, err)
			}
			self := podnettest.ServePeer(t, pod, "127.0.0.1:0")
			if got, err := podnettest.AskPeer(testContext(t), pod, self); err != nil || got != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("pod to itself on %s: peer %s, %v; want 127.0.0.1", self, got, err)
			}
			cache := filepath.Join(libcni.CacheDir, "results", "cni-loopback-pod-a-lo")
			if _, err := os.Stat(cache); (err == nil) != tt.wantCache {
				t.Errorf("loopback cache entry %s: stat %v, want it to exist: %v", cache, err, tt.wantCache)
			}
			if err := n.Teardown(testContext(t), "pod-a", pod.Path); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(cache); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("loopback cache entry %s after Teardown: %v, want it gone", cache, err)
			}
		})
	}
}

// A pod set up by an agent that ran the loopback plugin is torn down by one that does not:
// the plugin's cache entry goes too.
func TestTeardownOfPodSetUpWithLoopbackPlugin(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	old := newTestNetwork(t, Config{LoopbackPlugin: true})
	pod := podnettest.NewPodNetns(t)
	setup(t, old, "pod-a", pod)
	cache := filepath.Join(libcni.CacheDir, "results", "cni-loopback-pod-a-lo")
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("loopback cache entry after Setup with the plugin: %v", err)
	}
	cfg := old.cfg
	cfg.LoopbackPlugin = false
	n, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Teardown(testContext(t), "pod-a", pod.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("loopback cache entry after Teardown: %v, want it gone", err)
	}
	if a := allocations(t, n); len(a) != 0 {
		t.Errorf("allocations after Teardown: %v, want none", a)
	}
	if err := noVeths(); err != nil {
		t.Error(err)
	}
}

// loopbackUp reports whether the namespace's lo is up.
func loopbackUp(ns *podnettest.Netns) (bool, error) {
	var up bool
	err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		up = lo.Attrs().Flags&net.FlagUp != 0
		return nil
	})
	return up, err
}

func TestSetupIsIdempotent(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	pod := podnettest.NewPodNetns(t)
	first := setup(t, n, "pod-a", pod)
	for i := range 3 {
		if again := setup(t, n, "pod-a", pod); again != first {
			t.Fatalf("Setup #%d returned %s, first returned %s", i+2, again, first)
		}
	}
	want := []Allocation{{IP: first, PodID: "pod-a", IfName: "eth0"}}
	if diff := cmp.Diff(want, allocations(t, n), equateNetip); diff != "" {
		t.Errorf("Allocations after repeated Setup (-want +got):\n%s", diff)
	}
	if v, err := veths(); err != nil || len(v) != 1 {
		t.Errorf("veths after repeated Setup = %v, %v; want one", v, err)
	}
}

func TestSetupReplacesAllocationOfEarlierSandbox(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	old := podnettest.NewPodNetns(t)
	setup(t, n, "pod-a", old)
	old.Close() // the sandbox died without a Teardown

	fresh := podnettest.NewPodNetns(t)
	ip := setup(t, n, "pod-a", fresh)
	want := []Allocation{{IP: ip, PodID: "pod-a", IfName: "eth0"}}
	if diff := cmp.Diff(want, allocations(t, n), equateNetip); diff != "" {
		t.Errorf("Allocations after Setup in a new sandbox (-want +got):\n%s", diff)
	}
	at := podnettest.ServePeer(t, fresh, netip.AddrPortFrom(ip, 0).String())
	if _, err := podnettest.AskPeer(testContext(t), nil, at); err != nil {
		t.Errorf("node cannot reach the pod in its new sandbox: %v", err)
	}
}

func TestTeardownAfterNetnsGone(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	pod := podnettest.NewPodNetns(t)
	setup(t, n, "pod-a", pod)
	pod.Close()
	if _, err := os.Stat(pod.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pod namespace path still there after its process ended: %v", err)
	}

	ctx := testContext(t)
	if err := n.Teardown(ctx, "pod-a", pod.Path); err != nil {
		t.Fatalf("Teardown after the namespace is gone: %v", err)
	}
	if a := allocations(t, n); len(a) != 0 {
		t.Errorf("Allocations after Teardown = %v, want none", a)
	}
	if err := n.Teardown(ctx, "pod-a", pod.Path); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if err := n.Teardown(ctx, "pod-never-set-up", ""); err != nil {
		t.Errorf("Teardown of a pod without a network: %v", err)
	}
	eventstest.EventuallyErr(t, 5*time.Second, "no veth left", noVeths)
}

// Crash reconciliation as the agent does it: pods that no longer exist are found in
// Allocations and released with an empty namespace path.
func TestReleaseOrphanedAllocations(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	live := podnettest.NewPodNetns(t)
	liveIP := setup(t, n, "pod-live", live)
	for _, id := range []string{"pod-gone-1", "pod-gone-2"} {
		setup(t, n, id, podnettest.NewPodNetns(t)) // namespaces end in cleanup; never torn down
	}

	ctx := testContext(t)
	exists := map[string]bool{"pod-live": true}
	for _, a := range allocations(t, n) {
		if !exists[a.PodID] {
			if err := n.Teardown(ctx, a.PodID, ""); err != nil {
				t.Fatalf("Teardown(%s, \"\"): %v", a.PodID, err)
			}
		}
	}
	want := []Allocation{{IP: liveIP, PodID: "pod-live", IfName: "eth0"}}
	if diff := cmp.Diff(want, allocations(t, n), equateNetip); diff != "" {
		t.Errorf("Allocations after reconciliation (-want +got):\n%s", diff)
	}
	at := podnettest.ServePeer(t, live, netip.AddrPortFrom(liveIP, 0).String())
	if _, err := podnettest.AskPeer(ctx, nil, at); err != nil {
		t.Errorf("live pod unreachable after reconciliation: %v", err)
	}
}

// /proc/<pid>/ns/net of a dead sandbox names another process's namespace once the PID is
// reused. Teardown must release the address and leave that namespace alone.
func TestTeardownLeavesAnotherPodsNetnsAlone(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	podA, podB := podnettest.NewPodNetns(t), podnettest.NewPodNetns(t)
	setup(t, n, "pod-a", podA)
	ipB := setup(t, n, "pod-b", podB)

	ctx := testContext(t)
	if err := n.Teardown(ctx, "pod-a", podB.Path); err != nil { // as if B had A's old PID
		t.Fatalf("Teardown: %v", err)
	}
	want := []Allocation{{IP: ipB, PodID: "pod-b", IfName: "eth0"}}
	if diff := cmp.Diff(want, allocations(t, n), equateNetip); diff != "" {
		t.Errorf("Allocations (-want +got):\n%s", diff)
	}
	at := podnettest.ServePeer(t, podB, netip.AddrPortFrom(ipB, 0).String())
	if _, err := podnettest.AskPeer(ctx, nil, at); err != nil {
		t.Errorf("pod B lost its network to pod A's Teardown: %v", err)
	}
}

func TestSetupRejects(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	pod := podnettest.NewPodNetns(t)
	ctx := testContext(t)
	tests := []struct {
		name, podID, path string
		want              error
	}{
		{"node's own namespace", "pod-a", "/proc/self/ns/net", events.ErrInvalidArgument},
		{"not a namespace", "pod-a", "/proc/self/status", events.ErrInvalidArgument},
		{"missing namespace", "pod-a", "/proc/999999999/ns/net", fs.ErrNotExist},
		{"bad pod id", "../pod", pod.Path, events.ErrInvalidArgument},
		{"empty pod id", "", pod.Path, events.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, err := n.Setup(ctx, tt.podID, tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Setup(%q, %q) = %v, %v; want an error matching %v", tt.podID, tt.path, ip, err, tt.want)
			}
		})
	}
	if a := allocations(t, n); len(a) != 0 {
		t.Errorf("Allocations after rejected Setups = %v, want none", a)
	}
	if _, err := netlink.LinkByName("eth0"); err == nil {
		t.Errorf("the node got an eth0")
	}
}

// A Setup that fails halfway (here: the pod CIDR is full) leaves no address, veth or eth0.
func TestFailedSetupLeavesNothing(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	// A /30 has the gateway and one pod address.
	n := newTestNetwork(t, Config{PodCIDR: netip.MustParsePrefix("10.88.1.0/30")})
	setup(t, n, "pod-a", podnettest.NewPodNetns(t))
	full := podnettest.NewPodNetns(t)
	if ip, err := n.Setup(testContext(t), "pod-b", full.Path); err == nil {
		t.Fatalf("Setup in a full pod CIDR = %s, want an error", ip)
	}
	if a := allocations(t, n); len(a) != 1 || a[0].PodID != "pod-a" {
		t.Errorf("Allocations = %v, want only pod-a's", a)
	}
	if err := full.Do(func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			return errors.New("eth0 left in the pod")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	eventstest.EventuallyErr(t, 5*time.Second, "only pod-a's veth left", func() error {
		if v, err := veths(); err != nil || len(v) != 1 {
			return fmt.Errorf("veths = %v, %v; want pod-a's only", v, err)
		}
		return nil
	})
}

func TestSetupTeardownCyclesLeaveNothing(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	ctx := testContext(t)
	const cycles = 100
	seen := map[netip.Addr]bool{}
	for i := range cycles {
		pod := podnettest.NewPodNetns(t)
		id := fmt.Sprintf("pod-%d", i)
		ip := setup(t, n, id, pod)
		seen[ip] = true
		// Half the pods are torn down while their namespace lives, half after it is gone.
		if i%2 == 1 {
			pod.Close()
		}
		if err := n.Teardown(ctx, id, pod.Path); err != nil {
			t.Fatalf("Teardown(%s): %v", id, err)
		}
		pod.Close()
	}
	if a := allocations(t, n); len(a) != 0 {
		t.Errorf("Allocations after %d cycles = %v, want none", cycles, a)
	}
	eventstest.EventuallyErr(t, 10*time.Second, "no veth left", noVeths)
	for _, dir := range []string{n.cfg.podRecordDir(), filepath.Join(libcni.CacheDir, "results")} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Errorf("%d files left in %s, want none", len(entries), dir)
		}
	}
	// host-local hands out addresses round robin: a leak-free run still walks the range.
	if len(seen) < 50 {
		t.Errorf("only %d distinct addresses in %d cycles", len(seen), cycles)
	}
}

func TestConcurrentPods(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	ctx := testContext(t)
	const pods = 16
	ns := make([]*podnettest.Netns, pods)
	for i := range ns {
		ns[i] = podnettest.NewPodNetns(t)
	}
	ips := make([]netip.Addr, pods)
	errs := make([]error, pods)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() { ips[i], errs[i] = n.Setup(ctx, fmt.Sprintf("pod-%d", i), ns[i].Path) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Setup: %v", err)
	}
	distinct := map[netip.Addr]bool{}
	for _, ip := range ips {
		distinct[ip] = true
	}
	if len(distinct) != pods {
		t.Errorf("%d pods got %d distinct addresses: %v", pods, len(distinct), ips)
	}
	if a := allocations(t, n); len(a) != pods {
		t.Errorf("%d allocations, want %d", len(a), pods)
	}
	for i := range pods {
		wg.Go(func() { errs[i] = n.Teardown(ctx, fmt.Sprintf("pod-%d", i), ns[i].Path) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Teardown: %v", err)
	}
	if a := allocations(t, n); len(a) != 0 {
		t.Errorf("Allocations after Teardown = %v, want none", a)
	}
	eventstest.EventuallyErr(t, 5*time.Second, "no veth left", noVeths)
}

var equateNetip = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
