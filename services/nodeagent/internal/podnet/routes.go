package podnet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"skiff.dev/events"
)

// RouteProtocol marks the routes SyncRoutes makes (the rtnetlink "protocol" of a route; ip
// route shows it as "proto 83"). It is unassigned in iproute2's rt_protos and unused by the
// well-known routing daemons (Calico uses 80, BIRD 12, FRR 186-192), and it is the only thing
// that tells SyncRoutes which routes it may change or remove.
const RouteProtocol netlink.RouteProtocol = 83

// SyncRoutes makes the routes to other nodes' pod CIDRs in the node's main routing table
// match routes, a map from pod CIDR to the node address that owns it (flannel's host-gw):
// it adds missing routes, changes the gateway of routes that point elsewhere, and removes
// routes of RouteProtocol that are not in routes. Routes of any other protocol are never
// changed or removed; a desired route whose destination is taken by one is an error.
//
// An entry overlapping the node's own pod CIDR is skipped: the bridge reaches those pods.
// One bad entry does not stop the others from being synced; all errors are returned joined.
//
// Errors: events.ErrInvalidArgument for an entry that is not IPv4, has host bits set, or whose
// node address is unset; events.ErrConflict when another program's route holds a destination;
// otherwise wrapped netlink errors (such as a node address that is not on a connected
// network).
func (n *Network) SyncRoutes(ctx context.Context, routes map[netip.Prefix]netip.Addr) error {
	n.routesMu.Lock()
	defer n.routesMu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync node routes: %w", err)
	}
	log := n.cfg.Logger

	var errs []error
	want := make(map[netip.Prefix]netip.Addr, len(routes))
	for dst, via := range routes {
		switch {
		case !dst.IsValid() || !dst.Addr().Is4() || dst != dst.Masked():
			errs = append(errs, fmt.Errorf("route to %s: destination must be an IPv4 prefix without host bits: %w", dst, events.ErrInvalidArgument))
		case !via.Is4() || via.IsUnspecified():
			errs = append(errs, fmt.Errorf("route to %s: node address %s is not an IPv4 unicast address: %w", dst, via, events.ErrInvalidArgument))
		case dst.Overlaps(n.cfg.PodCIDR):
			log.Debug("not routing own pod CIDR", "dst", dst, "via", via)
		default:
			want[dst] = via
		}
	}

	self, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("sync node routes: open own network namespace: %w", err)
	}
	defer self.Close()
	h, err := netlink.NewHandleAt(self)
	if err != nil {
		return fmt.Errorf("sync node routes: netlink: %w", err)
	}
	defer h.Close()

	have, err := h.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("sync node routes: list routes: %w", err)
	}
	seen := make(map[netip.Prefix]bool, len(have))
	for _, r := range have {
		if r.Dst == nil {
			continue
		}
		dst, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		seen[dst] = true
		via, wanted := want[dst]
		gw, _ := netip.AddrFromSlice(r.Gw)
		switch {
		case !wanted:
			if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("remove route to %s: %w", dst, err))
				continue
			}
			log.Info("removed node route", "dst", dst, "via", gw.Unmap())
		case gw.Unmap() != via || len(r.MultiPath) > 0:
			// Replace matches on destination, table, TOS and metric: ours, since ours exists.
			if err := h.RouteReplace(nodeRoute(dst, via)); err != nil {
				errs = append(errs, fmt.Errorf("change route to %s via %s: %w", dst, via, err))
				continue
			}
			log.Info("changed node route", "dst", dst, "from", gw.Unmap(), "via", via)
		}
	}
	for _, dst := range slices.SortedFunc(maps.Keys(want), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		if seen[dst] {
			continue
		}
		via := want[dst]
		// Add, never replace: a route to the same destination that is not ours is another
		// program's, and stays.
		err := h.RouteAdd(nodeRoute(dst, via))
		if errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add route to %s via %s: another program's route to %s exists (see ip route show %s); remove it or change the pod CIDR: %w",
				dst, via, dst, dst, events.ErrConflict))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("add route to %s via %s: %w", dst, via, err))
			continue
		}
		log.Info("added node route", "dst", dst, "via", via)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sync node routes: %w", err)
	}
	return nil
}

func nodeRoute(dst netip.Prefix, via netip.Addr) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
		Gw:       via.AsSlice(),
		Protocol: RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
		Scope:    netlink.SCOPE_UNIVERSE,
	}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
