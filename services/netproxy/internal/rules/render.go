package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Chain and set names inside the table. They are part of the contract with operators reading
// `nft list table ip skiff`, so they do not change lightly.
const (
	mapServiceIPs  = "service-ips"
	mapEndpoints   = "endpoints"
	setNoEndpoints = "no-endpoints"

	chainNATPrerouting  = "nat-prerouting"
	chainNATOutput      = "nat-output"
	chainNATPostrouting = "nat-postrouting"
	chainFilterForward  = "filter-forward"
	chainFilterOutput   = "filter-output"
)

func lbChain(n int) string { return fmt.Sprintf("lb-%d", n) }

// Render returns the table that Sync would write for desired, as `nft list table ip <table>`
// (nft 1.0.6) prints it, with elements sorted. It validates like Sync and returns the same
// errors (wrapping events.ErrInvalidArgument), rather than silently rendering something Sync
// would refuse.
func Render(table string, desired []ServicePort) (string, error) {
	if table == "" {
		table = DefaultTable
	}
	p, err := new(kernelState).plan(desired, true)
	if err != nil {
		return "", err
	}
	ups := slices.Clone(p.upserts)
	slices.SortFunc(ups, func(a, b upsert) int { return compareKeys(a.key, b.key) })

	var svcIPs, eps, noEps []string
	for _, u := range ups {
		if len(u.eps) == 0 {
			noEps = append(noEps, u.key.String())
			continue
		}
		svcIPs = append(svcIPs, fmt.Sprintf("%s : goto %s", u.key, lbChain(len(u.eps))))
		for i, ep := range u.eps {
			eps = append(eps, fmt.Sprintf("%s . %d : %s . %d", u.key, i, netip.AddrFrom4(ep.ip()), ep.port()))
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", table)
	writeSet(&b, "map", mapServiceIPs, "ip daddr . meta l4proto . th dport : verdict", p.setSize(mapServiceIPs), svcIPs)
	writeSet(&b, "map", mapEndpoints, "ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport", p.setSize(mapEndpoints), eps)
	writeSet(&b, "set", setNoEndpoints, "ip daddr . meta l4proto . th dport", p.setSize(setNoEndpoints), noEps)

	lookup := "ip daddr . meta l4proto . th dport"
	for _, c := range baseChains {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype %s hook %s priority %s; policy accept;\n", c.name, c.kind, c.hook, c.priorityText)
		switch c.role {
		case roleDNAT:
			fmt.Fprintf(&b, "\t\t%s vmap @%s\n", lookup, mapServiceIPs)
		case roleMasquerade:
			fmt.Fprintf(&b, "\t\tmeta mark & 0x%08x == 0x%08x meta mark set meta mark & 0x%08x masquerade fully-random\n",
				MasqueradeMark, MasqueradeMark, ^MasqueradeMark)
		case roleReject:
			fmt.Fprintf(&b, "\t\tct state new %s @%s reject\n", lookup, setNoEndpoints)
		}
		b.WriteString("\t}\n\n")
	}
	for _, n := range p.newChains {
		fmt.Fprintf(&b, "\tchain %s {\n\t\tmeta mark set meta mark | 0x%08x dnat ip to %s . numgen random mod %d map @%s\n\t}\n\n",
			lbChain(n), MasqueradeMark, lookup, n, mapEndpoints)
	}
	out := strings.TrimSuffix(b.String(), "\n") + "}\n"
	return out, nil
}

// writeSet prints a set the way nft does: the first element after "elements = { ", every other
// one on its own line, indented to line up.
func writeSet(b *strings.Builder, kind, name, typeof string, size uint32, elems []string) {
	fmt.Fprintf(b, "\t%s %s {\n\t\ttypeof %s\n", kind, name, typeof)
	if size > 0 {
		fmt.Fprintf(b, "\t\tsize %d\n", size)
	}
	if len(elems) > 0 {
		b.WriteString("\t\telements = { ")
		b.WriteString(strings.Join(elems, ",\n\t\t\t     "))
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n\n")
}
