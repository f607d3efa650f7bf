package nodelifecycle

import (
	"fmt"
	"net/netip"

	"skiff.dev/events"
)

// DefaultPodCIDRRange is the cluster range nodes' pod CIDRs come from.
const DefaultPodCIDRRange = "10.88.0.0/16"

// podCIDRBits is the size of a node's pod CIDR: a /24, 254 pods.
const podCIDRBits = 24

// ParseRange checks a cluster pod range: IPv4, and at least as wide as one /24.
func ParseRange(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("pod CIDR range %q: %v: %w", s, err, events.ErrInvalidArgument)
	}
	if !p.Addr().Is4() || p.Bits() > podCIDRBits {
		return netip.Prefix{}, fmt.Errorf("pod CIDR range %q: want an IPv4 range of /%d or wider, such as %s: %w",
			s, podCIDRBits, DefaultPodCIDRRange, events.ErrInvalidArgument)
	}
	return p.Masked(), nil
}

// AllocatePodCIDR returns the lowest /24 of r that is not in used, or false if r is full.
func AllocatePodCIDR(r netip.Prefix, used map[netip.Prefix]bool) (netip.Prefix, bool) {
	base := r.Masked().Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8
	n := uint32(1) << (podCIDRBits - r.Bits())
	for i := range n {
		v := start + i<<8
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), podCIDRBits)
		if !used[p] {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// markUsed records every /24 that cidr covers (a /24 itself, each /24 of a wider block, or the
// /24 holding a narrower one), so AllocatePodCIDR never hands out an overlapping block. CIDRs
// that do not parse or are not IPv4 are ignored: they cannot overlap our range.
func markUsed(used map[netip.Prefix]bool, cidr string) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return
	}
	if p.Bits() >= podCIDRBits {
		used[netip.PrefixFrom(p.Addr(), podCIDRBits).Masked()] = true
		return
	}
	if p.Bits() < 8 {
		return // wider than any sane cluster range; nobody assigns that to a node
	}
	b := p.Masked().Addr().As4()
	start := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8
	for i := range uint32(1) << (podCIDRBits - p.Bits()) {
		v := start + i<<8
		used[netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), podCIDRBits)] = true
	}
}
