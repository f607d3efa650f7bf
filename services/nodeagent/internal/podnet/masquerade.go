package podnet

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
)

// MasqueradeTable is the nftables table (family ip) that podnet owns in the node's namespace.
// The netproxy owns the table "skiff"; neither touches the other's.
const MasqueradeTable = "skiff-podnet"

// ensureMasquerade replaces MasqueradeTable, in one transaction, with a single rule:
//
//	ip saddr <pod CIDR> ip daddr != <cluster CIDR> ip daddr != 224.0.0.0/4 masquerade
//
// Pods reach the world through the node's address, while traffic to pods on other nodes keeps
// its pod source address (the routes of SyncRoutes carry it) and multicast is left alone, as
// the bridge plugin's own ipMasq does.
func ensureMasquerade(ctx context.Context, cfg Config) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("install masquerade rule: %w", err)
	}
	// The process's namespace, not the calling thread's: they differ only when the caller
	// switched a thread, and the CNI plugins we start follow the process.
	self, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("install masquerade rule: open own network namespace: %w", err)
	}
	defer self.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(self)))
	if err != nil {
		return fmt.Errorf("install masquerade rule: %w", err)
	}
	t := &nftables.Table{Name: MasqueradeTable, Family: nftables.TableFamilyIPv4}
	// Add-then-delete makes the delete safe when the table does not exist yet.
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	ch := conn.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	var exprs []expr.Any
	exprs = append(exprs, matchPrefix(12, cfg.PodCIDR, expr.CmpOpEq)...)
	exprs = append(exprs, matchPrefix(16, cfg.ClusterCIDR, expr.CmpOpNeq)...)
	exprs = append(exprs, matchPrefix(16, netip.MustParsePrefix("224.0.0.0/4"), expr.CmpOpNeq)...)
	exprs = append(exprs, &expr.Masq{})
	conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("install masquerade rule in nftables table %s: %w", MasqueradeTable, err)
	}
	return nil
}

// matchPrefix compares the IPv4 address at offset of the network header (12: source,
// 16: destination) with p.
func matchPrefix(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: a[:]},
	}
}
