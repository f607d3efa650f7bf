package rules

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

type chainRole int

const (
	roleDNAT       chainRole = iota // look the packet up in service-ips and goto lb-N
	roleMasquerade                  // masquerade what an lb-N chain marked
	roleReject                      // reject new connections to ports without endpoints
)

// baseChain is a chain hooked into netfilter. Their set never changes after the table is
// created: Services only ever change map elements.
type baseChain struct {
	name         string
	kind         string // nft chain type
	hook         string
	hookNum      uint32
	priority     int32
	priorityText string // as nft 1.0.6 prints the priority for this hook
	role         chainRole
}

// baseChains in the order they are created (and listed by nft).
//
// The DNAT lookup runs in prerouting (traffic from pods and other nodes) and output (traffic
// from the node itself), at the standard dstnat priority. Rejects for ports without endpoints run
// in forward (a VIP is never a local address, so traffic from pods to it is forwarded) and output,
// slightly before the default filter priority so that a firewall with a drop policy does not turn
// a fast refusal into a timeout.
var baseChains = []baseChain{
	{chainNATPrerouting, "nat", "prerouting", unix.NF_INET_PRE_ROUTING, -100, "dstnat", roleDNAT},
	{chainNATOutput, "nat", "output", unix.NF_INET_LOCAL_OUT, -100, "-100", roleDNAT},
	{chainNATPostrouting, "nat", "postrouting", unix.NF_INET_POST_ROUTING, 100, "srcnat", roleMasquerade},
	{chainFilterForward, "filter", "forward", unix.NF_INET_FORWARD, -10, "filter - 10", roleReject},
	{chainFilterOutput, "filter", "output", unix.NF_INET_LOCAL_OUT, -10, "filter - 10", roleReject},
}

// Registers as nft allocates them for a concatenation: each field of a concatenated key starts
// on a 32-bit register, beginning with NFT_REG_1 (which overlays NFT_REG32_00..03).
const (
	regKey    = unix.NFT_REG_1    // ip daddr, and the 8-byte result of the endpoints lookup
	regProto  = unix.NFT_REG32_01 // meta l4proto; also the port half of the lookup result
	regDport  = unix.NFT_REG32_02 // th dport
	regNumgen = unix.NFT_REG32_03 // numgen random mod N
)

// serviceKeyExprs loads (ip daddr . meta l4proto . th dport) into the key registers.
func serviceKeyExprs() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: regKey, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regProto},
		&expr.Payload{DestRegister: regDport, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// icmpPortUnreachable is the ICMP destination-unreachable code that makes a TCP connect or a
// connected UDP socket fail with ECONNREFUSED.
const icmpPortUnreachable = 3

func hostU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// ruleExprs returns the single rule of a base chain.
func ruleExprs(role chainRole) []expr.Any {
	switch role {
	case roleDNAT:
		// ip daddr . meta l4proto . th dport vmap @service-ips
		return append(serviceKeyExprs(),
			&expr.Lookup{SourceRegister: regKey, DestRegister: 0, IsDestRegSet: true, SetName: mapServiceIPs, SetID: setIDServiceIPs})
	case roleMasquerade:
		// meta mark & BIT == BIT meta mark set meta mark & ~BIT masquerade fully-random
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: regKey},
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: hostU32(MasqueradeMark), Xor: hostU32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regKey, Data: hostU32(MasqueradeMark)},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: regKey},
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: hostU32(^MasqueradeMark), Xor: hostU32(0)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: regKey},
			&expr.Masq{FullyRandom: true},
		}
	case roleReject:
		// ct state new ip daddr . meta l4proto . th dport @no-endpoints reject
		exprs := []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: regKey},
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: hostU32(expr.CtStateBitNEW), Xor: hostU32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: regKey, Data: hostU32(0)},
		}
		exprs = append(exprs, serviceKeyExprs()...)
		return append(exprs,
			&expr.Lookup{SourceRegister: regKey, SetName: setNoEndpoints, SetID: setIDNoEndpoints},
			&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable},
		)
	}
	panic("unknown chain role")
}

// lbRuleExprs returns the single rule of lb-n:
//
//	meta mark set meta mark | BIT dnat to ip daddr . meta l4proto . th dport . numgen random mod n map @endpoints
func lbRuleExprs(n int) []expr.Any {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: regKey},
		&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: hostU32(^MasqueradeMark), Xor: hostU32(MasqueradeMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: regKey},
	}
	exprs = append(exprs, serviceKeyExprs()...)
	return append(exprs,
		&expr.Numgen{Register: regNumgen, Modulus: uint32(n), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: regKey, DestRegister: regKey, IsDestRegSet: true, SetName: mapEndpoints, SetID: setIDEndpoints},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regKey, RegProtoMin: regProto},
	)
}
