package podnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"skiff.dev/events"
	"skiff.dev/services/nodeagent/internal/podnet/podnettest"
)

func mustAddLink(t *testing.T, l netlink.Link, addr string) {
	t.Helper()
	if err := netlink.LinkAdd(l); err != nil {
		t.Fatalf("add link %s: %v", l.Attrs().Name, err)
	}
	upWithAddr(t, l.Attrs().Name, addr)
}

func upWithAddr(t *testing.T, name, addr string) {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		t.Fatalf("address %s on %s: %v", addr, name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatalf("up %s: %v", name, err)
	}
}

func mustAddRoute(t *testing.T, dst, via string, proto netlink.RouteProtocol) {
	t.Helper()
	if err := netlink.RouteAdd(nodeRouteProto(dst, via, proto)); err != nil {
		t.Fatalf("add route %s via %s: %v", dst, via, err)
	}
}

func nodeRouteProto(dst, via string, proto netlink.RouteProtocol) *netlink.Route {
	r := nodeRoute(netip.MustParsePrefix(dst), netip.MustParseAddr(via))
	r.Protocol = proto
	return r
}

// clusterRoutes lists the node's main-table IPv4 routes into 10.0.0.0/8, of any protocol, as
// "dst via gw proto N".
func clusterRoutes(t *testing.T) []string {
	t.Helper()
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Dst == nil || r.Gw == nil || r.Dst.IP[0] != 10 {
			continue
		}
		out = append(out, fmt.Sprintf("%s via %s proto %d", r.Dst, r.Gw, r.Protocol))
	}
	slices.Sort(out)
	return out
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func TestSyncRoutes(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{})
	// A veth with both ends on the node stands for an uplink (this kernel may lack dummy).
	mustAddLink(t, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}, PeerName: "uplink0p"}, "192.0.2.1/24")
	// Another program's routes: one to a destination Skiff will never want, one Skiff will.
	mustAddRoute(t, "10.88.50.0/24", "192.0.2.50", unix.RTPROT_STATIC)
	mustAddRoute(t, "10.88.60.0/24", "192.0.2.60", unix.RTPROT_BOOT)
	foreign := []string{"10.88.50.0/24 via 192.0.2.50 proto 4", "10.88.60.0/24 via 192.0.2.60 proto 3"}

	ctx := testContext(t)
	steps := []struct {
		name    string
		routes  map[netip.Prefix]netip.Addr
		wantErr []error // each must match the returned error; none means no error
		want    []string
	}{
		{
			name: "add, skipping the node's own pod CIDR",
			routes: map[netip.Prefix]netip.Addr{
				pfx("10.88.2.0/24"): ip("192.0.2.2"),
				pfx("10.88.3.0/24"): ip("192.0.2.3"),
				testPodCIDR:         ip("192.0.2.9"),
			},
			want: []string{"10.88.2.0/24 via 192.0.2.2 proto 83", "10.88.3.0/24 via 192.0.2.3 proto 83"},
		},
		{
			name:   "same again changes nothing",
			routes: map[netip.Prefix]netip.Addr{pfx("10.88.2.0/24"): ip("192.0.2.2"), pfx("10.88.3.0/24"): ip("192.0.2.3")},
			want:   []string{"10.88.2.0/24 via 192.0.2.2 proto 83", "10.88.3.0/24 via 192.0.2.3 proto 83"},
		},
		{
			name:   "change, remove, add",
			routes: map[netip.Prefix]netip.Addr{pfx("10.88.2.0/24"): ip("192.0.2.4"), pfx("10.88.4.0/24"): ip("192.0.2.5")},
			want:   []string{"10.88.2.0/24 via 192.0.2.4 proto 83", "10.88.4.0/24 via 192.0.2.5 proto 83"},
		},
		{
			name: "another program's destination is a conflict; the rest is synced",
			routes: map[netip.Prefix]netip.Addr{
				pfx("10.88.60.0/24"): ip("192.0.2.6"),
				pfx("10.88.4.0/24"):  ip("192.0.2.5"),
			},
			wantErr: []error{events.ErrConflict},
			want:    []string{"10.88.4.0/24 via 192.0.2.5 proto 83"},
		},
		{
			name: "bad entries are errors; the rest is synced",
			routes: map[netip.Prefix]netip.Addr{
				pfx("10.88.5.1/24"): ip("192.0.2.5"),   // host bits
				pfx("10.88.6.0/24"): {},                // no node address
				pfx("10.88.7.0/24"): ip("203.0.113.1"), // not on a connected network
				pfx("10.88.8.0/24"): ip("192.0.2.8"),
			},
			wantErr: []error{events.ErrInvalidArgument, unix.ENETUNREACH},
			want:    []string{"10.88.8.0/24 via 192.0.2.8 proto 83"},
		},
		{
			name: "empty removes all of ours",
			want: nil,
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := n.SyncRoutes(ctx, st.routes)
			if len(st.wantErr) == 0 && err != nil {
				t.Errorf("SyncRoutes: %v", err)
			}
			for _, want := range st.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("SyncRoutes = %v, want an error matching %v", err, want)
				}
			}
			want := append(slices.Clone(foreign), st.want...)
			slices.Sort(want)
			if diff := cmp.Diff(want, clusterRoutes(t)); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}

// A pod reaches a pod on another node through SyncRoutes' route with its own address, and
// the world outside the cluster through the node's address (masquerade). The other node and
// the world are one namespace "outside", wired to the node like an uplink.
func TestEgressMasqueradeAndNodeRoutes(t *testing.T) {
	if !podnettest.InNodeNetns(t) {
		return
	}
	n := newTestNetwork(t, Config{ClusterCIDR: pfx("10.88.0.0/16")})
	outside := podnettest.NewNetns(t)
	outsideNS, err := netns.GetFromPath(outside.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer outsideNS.Close()
	mustAddLink(t, &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "uplink0"},
		PeerName:      "uplink0",
		PeerNamespace: netlink.NsFd(outsideNS),
	}, "192.0.2.1/24")
	mustAddRoute(t, "198.51.100.0/24", "192.0.2.2", unix.RTPROT_STATIC) // the node's way to the world
	if err := outside.Do(func() error {
		l, err := netlink.LinkByName("uplink0")
		if err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		for _, a := range []struct {
			link netlink.Link
			addr string
		}{{l, "192.0.2.2/24"}, {lo, "10.88.9.1/32" /* a pod of the other node */}, {lo, "198.51.100.1/32" /* the world */}} {
			na, _ := netlink.ParseAddr(a.addr)
			if err := netlink.AddrAdd(a.link, na); err != nil {
				return fmt.Errorf("address %s: %w", a.addr, err)
			}
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		// The other node's own route back to our pods, as its SyncRoutes would add.
		return netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(10, 88, 1, 0), Mask: net.CIDRMask(24, 32)}, Gw: net.IPv4(192, 0, 2, 1)})
	}); err != nil {
		t.Fatalf("set up outside: %v", err)
	}

	pod := podnettest.NewNetns(t)
	podIP := setup(t, n, "pod-a", pod)
	remotePod := podnettest.ServePeer(t, outside, "10.88.9.1:0")
	world := podnettest.ServePeer(t, outside, "198.51.100.1:0")

	ask := func(to netip.AddrPort) (netip.Addr, error) {
		ctx, cancel := context.WithTimeout(testContext(t), 5*time.Second)
		defer cancel()
		return podnettest.AskPeer(ctx, pod, to)
	}
	if _, err := ask(remotePod); err == nil {
		t.Fatalf("pod reached %s before there was a route to the other node", remotePod)
	}
	if err := n.SyncRoutes(testContext(t), map[netip.Prefix]netip.Addr{pfx("10.88.9.0/24"): ip("192.0.2.2")}); err != nil {
		t.Fatalf("SyncRoutes: %v", err)
	}
	if got, err := ask(remotePod); err != nil || got != podIP {
		t.Errorf("pod to a pod of another node: seen from %v, %v; want %s (not masqueraded)", got, err, podIP)
	}
	if got, err := ask(world); err != nil || got != ip("192.0.2.1") {
		t.Errorf("pod to outside the cluster: seen from %v, %v; want the node's 192.0.2.1 (masqueraded)", got, err)
	}
	if err := n.SyncRoutes(testContext(t), nil); err != nil {
		t.Fatalf("SyncRoutes(nil): %v", err)
	}
	if _, err := ask(remotePod); err == nil {
		t.Errorf("pod still reaches %s after its route was removed", remotePod)
	}
}
