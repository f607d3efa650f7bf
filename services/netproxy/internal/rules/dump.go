package rules

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file is the text form of nftables tables that Fake.Dump prints, and the model it prints
// from. Fake keeps its state in the model; the real-kernel test reads the kernel's table into the
// same model (through google/nftables) and prints it with the same code, so the two texts can be
// compared line by line.
//
// The text is one line per object, in the vocabulary of an nft script:
//
//	add table ip skiff
//	add map ip skiff service-ips { type ipv4_addr . inet_proto . inet_service : verdict; size 4096; }
//	add chain ip skiff nat-prerouting { type nat hook prerouting priority -100; policy accept; }
//	add rule ip skiff nat-prerouting [ payload load 4b @ network header + 16 => reg 1 ] [ ... ]
//	add element ip skiff service-ips { 10.96.0.1 . tcp . 80 : goto lb-2 }
//
// Tables come sorted by family and name; in a table, sets and chains in the order they were
// created (the kernel keeps that order, and nft lists them in it), each chain followed by its
// rules in order, then every set's elements, which the kernel keeps in no order, sorted by key.
// Rules print their expressions in the notation of `nft --debug=netlink`, since turning them back
// into nft's own syntax would need nft. Keys and values print by their nft datatypes; an integer
// (the numgen slot) prints in host byte order, as numgen writes it.

// nfTable is one nftables table as the kernel holds it.
type nfTable struct {
	family uint8
	name   string
	flags  uint32
	sets   []*nfSet   // in creation order
	chains []*nfChain // in creation order
}

type nfSet struct {
	name     string
	flags    uint32
	keyType  uint32
	keyLen   uint32
	dataType uint32 // maps only; unix.NFT_DATA_VERDICT for a verdict map
	dataLen  uint32
	size     uint32            // 0: unbounded
	elems    map[string]nfElem // by key bytes
}

type nfElem struct {
	key     []byte
	data    []byte     // the value of a (non-verdict) map element
	verdict *nfVerdict // the value of a verdict map element
}

type nfVerdict struct {
	code  int32
	chain string // for jump and goto
}

type nfChain struct {
	name  string
	hook  *nfHook // nil for a regular chain
	rules [][]expr.Any
}

type nfHook struct {
	kind     string // filter, nat, route
	num      uint32
	priority int32
	policy   uint32
}

func (s *nfSet) isMap() bool { return s.flags&unix.NFT_SET_MAP != 0 }

func (t *nfTable) set(name string) *nfSet {
	for _, s := range t.sets {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (t *nfTable) chain(name string) *nfChain {
	for _, c := range t.chains {
		if c.name == name {
			return c
		}
	}
	return nil
}

// clone copies what a transaction can change: the lists, the element maps and the rule lists.
// Elements and expressions are never changed in place, so they are shared.
func (t *nfTable) clone() *nfTable {
	c := *t
	c.sets = make([]*nfSet, len(t.sets))
	for i, s := range t.sets {
		cs := *s
		cs.elems = make(map[string]nfElem, len(s.elems))
		for k, e := range s.elems {
			cs.elems[k] = e
		}
		c.sets[i] = &cs
	}
	c.chains = make([]*nfChain, len(t.chains))
	for i, ch := range t.chains {
		cc := *ch
		cc.rules = slices.Clone(ch.rules)
		c.chains[i] = &cc
	}
	return &c
}

func familyName(f uint8) string {
	switch f {
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_IPV6:
		return "ip6"
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	}
	return fmt.Sprintf("family%d", f)
}

// dumpTables writes tables in the text form, sorted by family and name.
func dumpTables(tables []*nfTable) string {
	sorted := slices.Clone(tables)
	slices.SortFunc(sorted, func(a, b *nfTable) int { return cmp.Or(cmp.Compare(a.family, b.family), cmp.Compare(a.name, b.name)) })
	var b strings.Builder
	for _, t := range sorted {
		t.dump(&b)
	}
	return b.String()
}

func (t *nfTable) dump(b *strings.Builder) {
	b.WriteString(t.tableLine("add"))
	b.WriteByte('\n')
	for _, s := range t.sets {
		b.WriteString(t.setLine(s))
		b.WriteByte('\n')
	}
	for _, c := range t.chains {
		b.WriteString(t.chainLine(c))
		b.WriteByte('\n')
		for _, r := range c.rules {
			b.WriteString(t.ruleLine(c, r))
			b.WriteByte('\n')
		}
	}
	for _, s := range t.sets {
		type sortable struct {
			order []byte
			e     nfElem
		}
		elems := make([]sortable, 0, len(s.elems))
		for _, e := range s.elems {
			elems = append(elems, sortable{sortableKey(s.keyType, e.key), e})
		}
		slices.SortFunc(elems, func(a, b sortable) int { return bytes.Compare(a.order, b.order) })
		for _, e := range elems {
			b.WriteString(t.elemLine("add", s, e.e))
			b.WriteByte('\n')
		}
	}
}

func (t *nfTable) id() string { return familyName(t.family) + " " + t.name }

func (t *nfTable) tableLine(verb string) string {
	line := verb + " table " + t.id()
	if t.flags != 0 {
		line += fmt.Sprintf(" { flags 0x%x; }", t.flags)
	}
	return line
}

func (t *nfTable) setLine(s *nfSet) string {
	kind, decl := "set", "type "+datatypeName(s.keyType)
	if s.isMap() {
		kind = "map"
		decl += " : " + datatypeName(s.dataType)
	}
	if other := s.flags &^ unix.NFT_SET_MAP; other != 0 {
		decl += fmt.Sprintf("; flags 0x%x", other)
	}
	if s.size > 0 {
		decl += fmt.Sprintf("; size %d", s.size)
	}
	return fmt.Sprintf("add %s %s %s { %s; }", kind, t.id(), s.name, decl)
}

func (t *nfTable) chainLine(c *nfChain) string {
	line := "add chain " + t.id() + " " + c.name
	if h := c.hook; h != nil {
		policy := "accept"
		if h.policy == 0 {
			policy = "drop"
		}
		line += fmt.Sprintf(" { type %s hook %s priority %d; policy %s; }", h.kind, hookName(t.family, h.num), h.priority, policy)
	}
	return line
}

func hookName(family uint8, num uint32) string {
	if family == unix.NFPROTO_IPV4 || family == unix.NFPROTO_IPV6 || family == unix.NFPROTO_INET {
		switch num {
		case unix.NF_INET_PRE_ROUTING:
			return "prerouting"
		case unix.NF_INET_LOCAL_IN:
			return "input"
		case unix.NF_INET_FORWARD:
			return "forward"
		case unix.NF_INET_LOCAL_OUT:
			return "output"
		case unix.NF_INET_POST_ROUTING:
			return "postrouting"
		}
	}
	return fmt.Sprintf("hook%d", num)
}

func (t *nfTable) ruleLine(c *nfChain, exprs []expr.Any) string {
	var b strings.Builder
	b.WriteString("add rule " + t.id() + " " + c.name)
	for _, e := range exprs {
		b.WriteString(" [ " + exprString(e) + " ]")
	}
	return b.String()
}

// elemLine prints an element; a deletion prints its key only.
func (t *nfTable) elemLine(verb string, s *nfSet, e nfElem) string {
	v := formatData(s.keyType, e.key)
	switch {
	case verb != "add":
	case e.verdict != nil:
		v += " : " + e.verdict.String()
	case e.data != nil:
		v += " : " + formatData(s.dataType, e.data)
	}
	return fmt.Sprintf("%s element %s %s { %s }", verb, t.id(), s.name, v)
}

func (v nfVerdict) String() string {
	switch v.code {
	case nfDrop:
		return "drop"
	case nfAccept:
		return "accept"
	case unix.NFT_CONTINUE:
		return "continue"
	case unix.NFT_BREAK:
		return "break"
	case unix.NFT_JUMP:
		return "jump " + v.chain
	case unix.NFT_GOTO:
		return "goto " + v.chain
	case unix.NFT_RETURN:
		return "return"
	}
	return fmt.Sprintf("verdict %d", v.code)
}

// nft's names and sizes of the datatypes this package uses.
var (
	datatypeNames = map[uint32]string{typeInteger: "integer", typeIPv4Addr: "ipv4_addr", typeInetProto: "inet_proto", typeInetService: "inet_service"}
	datatypeSizes = map[uint32]int{typeIPv4Addr: 4, typeInetProto: 1, typeInetService: 2}
)

// concatFields splits a (concatenated) datatype into its fields, first field first.
func concatFields(t uint32) []uint32 {
	var ids []uint32
	for ; t != 0; t >>= 6 {
		ids = append(ids, t&0x3f)
	}
	slices.Reverse(ids)
	return ids
}

func datatypeName(t uint32) string {
	if t == unix.NFT_DATA_VERDICT {
		return "verdict"
	}
	fields := concatFields(t)
	if len(fields) == 0 {
		return "invalid"
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		if n, ok := datatypeNames[f]; ok {
			names[i] = n
		} else {
			names[i] = fmt.Sprintf("type%d", f)
		}
	}
	return strings.Join(names, " . ")
}

// layout returns the fields of datatype t and their byte sizes in a value of n bytes: in a
// concatenation every field takes a multiple of 4 bytes, and the one field of unknown size (an
// integer) takes what the others leave. ok is false when the value does not fit the type.
func layout(t uint32, n int) (fields []uint32, sizes []int, ok bool) {
	fields = concatFields(t)
	if len(fields) == 0 {
		return nil, nil, false
	}
	sizes = make([]int, len(fields))
	unknown, total := -1, 0
	for i, f := range fields {
		size, known := datatypeSizes[f]
		if !known {
			if unknown >= 0 {
				return nil, nil, false
			}
			unknown = i
			continue
		}
		if len(fields) > 1 {
			size = (size + 3) &^ 3
		}
		sizes[i] = size
		total += size
	}
	if unknown >= 0 {
		sizes[unknown] = n - total
		if sizes[unknown] <= 0 {
			return nil, nil, false
		}
	} else if total != n {
		return nil, nil, false
	}
	return fields, sizes, true
}

// formatData prints a key or value of datatype t as nft does, or in hex if it does not fit t.
func formatData(t uint32, b []byte) string {
	fields, sizes, ok := layout(t, len(b))
	if !ok {
		return "0x" + hex.EncodeToString(b)
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		v := b[:sizes[i]]
		b = b[sizes[i]:]
		switch {
		case f == typeIPv4Addr:
			parts[i] = netip.AddrFrom4([4]byte(v[:4])).String()
		case f == typeInetProto:
			parts[i] = Protocol(v[0]).String()
		case f == typeInetService:
			parts[i] = strconv.Itoa(int(binary.BigEndian.Uint16(v)))
		case len(v) == 4:
			parts[i] = strconv.FormatUint(uint64(binary.NativeEndian.Uint32(v)), 10)
		default:
			parts[i] = "0x" + hex.EncodeToString(v)
		}
	}
	return strings.Join(parts, " . ")
}

// sortableKey turns a key into bytes whose order is the numeric order of its fields: the
// host-order integers are turned big-endian, the rest already is.
func sortableKey(t uint32, b []byte) []byte {
	fields, sizes, ok := layout(t, len(b))
	if !ok {
		return b
	}
	out := make([]byte, 0, len(b))
	for i, f := range fields {
		v := b[:sizes[i]]
		b = b[sizes[i]:]
		if _, known := datatypeSizes[f]; !known && len(v) == 4 {
			out = binary.BigEndian.AppendUint32(out, binary.NativeEndian.Uint32(v))
			continue
		}
		out = append(out, v...)
	}
	return out
}

// exprString prints an expression in the notation of `nft --debug=netlink`.
func exprString(e expr.Any) string {
	switch e := e.(type) {
	case *expr.Payload:
		base := map[expr.PayloadBase]string{expr.PayloadBaseLLHeader: "link", expr.PayloadBaseNetworkHeader: "network",
			expr.PayloadBaseTransportHeader: "transport"}[e.Base]
		if base == "" {
			base = fmt.Sprintf("base%d", e.Base)
		}
		if e.OperationType == expr.PayloadWrite {
			return fmt.Sprintf("payload write reg %d => %db @ %s header + %d csum_type %d csum_off %d csum_flags 0x%x",
				e.SourceRegister, e.Len, base, e.Offset, e.CsumType, e.CsumOffset, e.CsumFlags)
		}
		return fmt.Sprintf("payload load %db @ %s header + %d => reg %d", e.Len, base, e.Offset, e.DestRegister)
	case *expr.Meta:
		key := map[expr.MetaKey]string{expr.MetaKeyMARK: "mark", expr.MetaKeyL4PROTO: "l4proto", expr.MetaKeyNFPROTO: "nfproto",
			expr.MetaKeyPROTOCOL: "protocol", expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname"}[e.Key]
		if key == "" {
			key = fmt.Sprintf("key%d", e.Key)
		}
		if e.SourceRegister {
			return fmt.Sprintf("meta set %s with reg %d", key, e.Register)
		}
		return fmt.Sprintf("meta load %s => reg %d", key, e.Register)
	case *expr.Ct:
		key := map[expr.CtKey]string{expr.CtKeySTATE: "state", expr.CtKeyMARK: "mark", expr.CtKeySTATUS: "status"}[e.Key]
		if key == "" {
			key = fmt.Sprintf("key%d", e.Key)
		}
		if e.SourceRegister {
			return fmt.Sprintf("ct set %s with reg %d", key, e.Register)
		}
		s := fmt.Sprintf("ct load %s => reg %d", key, e.Register)
		if e.Direction != 0 {
			s += fmt.Sprintf(", dir %d", e.Direction)
		}
		return s
	case *expr.Lookup:
		s := fmt.Sprintf("lookup reg %d set %s", e.SourceRegister, e.SetName)
		if e.IsDestRegSet {
			s += fmt.Sprintf(" dreg %d", e.DestRegister)
		}
		if e.Invert {
			s += " 0x1"
		}
		return s
	case *expr.Bitwise:
		return fmt.Sprintf("bitwise reg %d = ( reg %d & %s ) ^ %s", e.DestRegister, e.SourceRegister, words(e.Mask), words(e.Xor))
	case *expr.Cmp:
		op := map[expr.CmpOp]string{expr.CmpOpEq: "eq", expr.CmpOpNeq: "neq", expr.CmpOpLt: "lt", expr.CmpOpLte: "lte",
			expr.CmpOpGt: "gt", expr.CmpOpGte: "gte"}[e.Op]
		return fmt.Sprintf("cmp %s reg %d %s", op, e.Register, words(e.Data))
	case *expr.Numgen:
		kind := map[uint32]string{unix.NFT_NG_INCREMENTAL: "inc", unix.NFT_NG_RANDOM: "random"}[e.Type]
		s := fmt.Sprintf("numgen reg %d = %s mod %d", e.Register, kind, e.Modulus)
		if e.Offset != 0 {
			s += fmt.Sprintf(" offset %d", e.Offset)
		}
		return s
	case *expr.NAT:
		kind := map[expr.NATType]string{expr.NATTypeSourceNAT: "snat", expr.NATTypeDestNAT: "dnat"}[e.Type]
		s := fmt.Sprintf("nat %s %s", kind, familyName(uint8(e.Family)))
		for _, r := range []struct {
			name string
			reg  uint32
		}{{"addr_min", e.RegAddrMin}, {"addr_max", e.RegAddrMax}, {"proto_min", e.RegProtoMin}, {"proto_max", e.RegProtoMax}} {
			if r.reg != 0 {
				s += fmt.Sprintf(" %s reg %d", r.name, r.reg)
			}
		}
		return s + natFlags(e.Random, e.FullyRandom, e.Persistent, e.Prefix, e.Specified)
	case *expr.Masq:
		s := "masq"
		if e.RegProtoMin != 0 {
			s += fmt.Sprintf(" proto_min reg %d proto_max reg %d", e.RegProtoMin, e.RegProtoMax)
		}
		return s + natFlags(e.Random, e.FullyRandom, e.Persistent, false, false)
	case *expr.Reject:
		return fmt.Sprintf("reject type %d code %d", e.Type, e.Code)
	case *expr.Immediate:
		return fmt.Sprintf("immediate reg %d %s", e.Register, words(e.Data))
	case *expr.Verdict:
		return "immediate reg 0 " + nfVerdict{code: int32(e.Kind), chain: e.Chain}.String()
	case *expr.Counter:
		return "counter" // packets and bytes change with traffic
	}
	return fmt.Sprintf("%T %+v", e, e)
}

func natFlags(random, fullyRandom, persistent, prefix, specified bool) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{random, "random"}, {fullyRandom, "fully-random"}, {persistent, "persistent"}, {prefix, "prefix"}, {specified, "proto-specified"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	if len(f) == 0 {
		return ""
	}
	return " flags " + strings.Join(f, ",")
}

// words prints register data as nft --debug does: 32-bit words in host order.
func words(b []byte) string {
	var parts []string
	for len(b) >= 4 {
		parts = append(parts, fmt.Sprintf("0x%08x", binary.NativeEndian.Uint32(b)))
		b = b[4:]
	}
	if len(b) > 0 {
		parts = append(parts, "0x"+hex.EncodeToString(b))
	}
	return strings.Join(parts, " ")
}
