package rules

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file turns a plan into the bytes of one nftables netlink transaction (a batch).
//
// The messages are encoded here rather than through nftables.Conn because google/nftables v0.3.0
// cannot attach typeof metadata to a set (it writes NFTA_SET_USERDATA itself, without
// NFTNL_UDATA_SET_KEY_TYPEOF), and without it nft cannot list a map keyed by `numgen`. The rule
// expressions are still marshalled by google/nftables/expr. Encoding elements straight into one
// buffer, without an allocation per element, also keeps the CPU cost of a 150,000-element full
// sync (planning, encoding and recording it) around 30 ms.

// Set IDs name the sets inside one transaction, as nft does.
const (
	setIDServiceIPs  = 1
	setIDEndpoints   = 2
	setIDNoEndpoints = 3
)

const (
	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT: the policy of every base chain
)

// maxElementBytes bounds the NFTA_SET_ELEM_LIST_ELEMENTS attribute of one message, whose length
// is a 16-bit field.
const maxElementBytes = 60 << 10

// setSpec is one named set of the table as the kernel stores it.
type setSpec struct {
	name     string
	id       uint32
	flags    uint32
	keyType  uint32 // nft datatype ids, 6 bits per concatenated field
	keyLen   uint32
	dataType uint32
	dataLen  uint32
	userdata []byte
}

// nft datatype ids (nftables include/datatype.h), combined for concatenations as nft does.
const (
	typeInteger     = 4
	typeIPv4Addr    = 7
	typeInetProto   = 12
	typeInetService = 13
)

func concatType(ids ...uint32) uint32 {
	var t uint32
	for _, id := range ids {
		t = t<<6 | id
	}
	return t
}

var tableSets = []setSpec{
	{
		name: mapServiceIPs, id: setIDServiceIPs, flags: unix.NFT_SET_MAP,
		keyType: concatType(typeIPv4Addr, typeInetProto, typeInetService), keyLen: 12,
		dataType: unix.NFT_DATA_VERDICT,
		userdata: serviceIPsUserdata(),
	},
	{
		name: mapEndpoints, id: setIDEndpoints, flags: unix.NFT_SET_MAP,
		keyType: concatType(typeIPv4Addr, typeInetProto, typeInetService, typeInteger), keyLen: 16,
		dataType: concatType(typeIPv4Addr, typeInetService), dataLen: 8,
		userdata: endpointsUserdata(),
	},
	{
		name: setNoEndpoints, id: setIDNoEndpoints,
		keyType: concatType(typeIPv4Addr, typeInetProto, typeInetService), keyLen: 12,
		userdata: noEndpointsUserdata(),
	},
}

// msgInfo says what one message of a batch does, so a kernel error can name it.
type msgInfo struct {
	seq  uint32
	what string
}

// batch is one nftables transaction under construction.
type batch struct {
	buf     []byte
	nextSeq uint32
	msgs    []msgInfo // every message that asks for an acknowledgement, in order
	begin   uint32    // sequence number of NFNL_MSG_BATCH_BEGIN
	msg     int       // offset of the message being written
	names   map[int]string
	err     error // an attribute overflowed; the batch must not be sent
}

func newBatch(firstSeq uint32, sizeHint int) *batch {
	b := &batch{buf: make([]byte, 0, sizeHint), nextSeq: firstSeq}
	b.begin = b.nextSeq
	b.start(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, "")
	b.finish()
	return b
}

// close appends NFNL_MSG_BATCH_END and returns the bytes to send.
func (b *batch) close() []byte {
	b.start(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, "")
	b.finish()
	return b.buf
}

// start begins a message: nlmsghdr then nfgenmsg. A non-empty what requests an acknowledgement.
func (b *batch) start(typ uint16, flags uint16, family uint8, resID uint16, what string) {
	b.msg = len(b.buf)
	seq := b.nextSeq
	b.nextSeq++
	if what != "" {
		flags |= unix.NLM_F_ACK
		b.msgs = append(b.msgs, msgInfo{seq: seq, what: what})
	}
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0) // length, set by finish
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, flags)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, seq)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0) // port id: the kernel fills it in
	b.buf = append(b.buf, family, unix.NFNETLINK_V0)
	b.buf = binary.BigEndian.AppendUint16(b.buf, resID)
}

func (b *batch) finish() {
	binary.NativeEndian.PutUint32(b.buf[b.msg:], uint32(len(b.buf)-b.msg))
}

func (b *batch) startNFT(msgType int, flags uint16, what string) {
	b.start(uint16(unix.NFNL_SUBSYS_NFTABLES<<8|msgType), unix.NLM_F_REQUEST|flags, unix.NFPROTO_IPV4, 0, what)
}

func (b *batch) attr(typ uint16, data []byte) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(unix.NLA_HDRLEN+len(data)))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, data...)
	b.pad()
}

func (b *batch) pad() {
	for len(b.buf)%unix.NLA_ALIGNTO != 0 {
		b.buf = append(b.buf, 0)
	}
}

func (b *batch) attrString(typ uint16, s string) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(unix.NLA_HDRLEN+len(s)+1))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, s...)
	b.buf = append(b.buf, 0)
	b.pad()
}

func (b *batch) attrU32(typ uint16, v uint32) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NLA_HDRLEN+4)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.BigEndian.AppendUint32(b.buf, v)
}

// nest starts a nested attribute; end closes it.
func (b *batch) nest(typ uint16) int {
	at := len(b.buf)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 0)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ|unix.NLA_F_NESTED)
	return at
}

func (b *batch) end(at int) {
	l := len(b.buf) - at
	if l > 0xffff && b.err == nil {
		b.err = fmt.Errorf("netlink attribute of %d bytes exceeds 64 KiB", l)
	}
	binary.NativeEndian.PutUint16(b.buf[at:], uint16(l))
}

// chainName is lbChain(n), formatted once per batch rather than once per element.
func (b *batch) chainName(n int) string {
	if b.names == nil {
		b.names = map[int]string{}
	}
	name, ok := b.names[n]
	if !ok {
		name = lbChain(n)
		b.names[n] = name
	}
	return name
}

func (b *batch) addTable(table string, what string) {
	b.startNFT(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, what)
	b.attrString(unix.NFTA_TABLE_NAME, table)
	b.attrU32(unix.NFTA_TABLE_FLAGS, 0)
	b.finish()
}

func (b *batch) delTable(table string) {
	b.startNFT(unix.NFT_MSG_DELTABLE, 0, "delete table "+table)
	b.attrString(unix.NFTA_TABLE_NAME, table)
	b.finish()
}

// addSet creates a set; size 0 leaves it unbounded.
func (b *batch) addSet(table string, s setSpec, size uint32) {
	b.startNFT(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, "add set "+s.name)
	b.attrString(unix.NFTA_SET_TABLE, table)
	b.attrString(unix.NFTA_SET_NAME, s.name)
	b.attrU32(unix.NFTA_SET_FLAGS, s.flags)
	b.attrU32(unix.NFTA_SET_KEY_TYPE, s.keyType)
	b.attrU32(unix.NFTA_SET_KEY_LEN, s.keyLen)
	if s.flags&unix.NFT_SET_MAP != 0 {
		b.attrU32(unix.NFTA_SET_DATA_TYPE, s.dataType)
		if s.dataType != unix.NFT_DATA_VERDICT {
			b.attrU32(unix.NFTA_SET_DATA_LEN, s.dataLen)
		}
	}
	b.attrU32(unix.NFTA_SET_ID, s.id)
	if size > 0 {
		desc := b.nest(unix.NFTA_SET_DESC)
		b.attrU32(unix.NFTA_SET_DESC_SIZE, size)
		b.end(desc)
	}
	b.attr(unix.NFTA_SET_USERDATA, s.userdata)
	b.finish()
}

func (b *batch) addBaseChain(table string, c baseChain) {
	b.startNFT(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, "add chain "+c.name)
	b.attrString(unix.NFTA_CHAIN_TABLE, table)
	b.attrString(unix.NFTA_CHAIN_NAME, c.name)
	hook := b.nest(unix.NFTA_CHAIN_HOOK)
	b.attrU32(unix.NFTA_HOOK_HOOKNUM, c.hookNum)
	b.attrU32(unix.NFTA_HOOK_PRIORITY, uint32(c.priority))
	b.end(hook)
	b.attrU32(unix.NFTA_CHAIN_POLICY, nfAccept)
	b.attrString(unix.NFTA_CHAIN_TYPE, c.kind)
	b.finish()
}

func (b *batch) addChain(table, name string) {
	b.startNFT(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, "add chain "+name)
	b.attrString(unix.NFTA_CHAIN_TABLE, table)
	b.attrString(unix.NFTA_CHAIN_NAME, name)
	b.finish()
}

func (b *batch) addRule(table, chain string, exprs []expr.Any) error {
	b.startNFT(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, "add rule to chain "+chain)
	b.attrString(unix.NFTA_RULE_TABLE, table)
	b.attrString(unix.NFTA_RULE_CHAIN, chain)
	list := b.nest(unix.NFTA_RULE_EXPRESSIONS)
	for _, e := range exprs {
		data, err := expr.Marshal(unix.NFPROTO_IPV4, e)
		if err != nil {
			return fmt.Errorf("marshal %T for chain %s: %w", e, chain, err)
		}
		elem := b.nest(unix.NFTA_LIST_ELEM)
		b.buf = append(b.buf, data...)
		b.end(elem)
	}
	b.end(list)
	b.finish()
	return nil
}

// elemWriter appends set elements to a batch, splitting them into messages of at most max
// elements (and maxElementBytes), because the kernel walks one message's elements under one
// lock and a netlink attribute cannot exceed 64 KiB.
type elemWriter struct {
	b       *batch
	table   string
	set     string
	msgType int
	verb    string
	max     int

	count     int // elements in the open message; 0 when none is open
	list      int // offset of the open NFTA_SET_ELEM_LIST_ELEMENTS
	firstKey  svcKey
	firstSlot int
}

func (b *batch) elements(table, set string, add bool, max int) *elemWriter {
	w := &elemWriter{b: b, table: table, set: set, msgType: unix.NFT_MSG_DELSETELEM, verb: "delete", max: max}
	if add {
		w.msgType, w.verb = unix.NFT_MSG_NEWSETELEM, "add"
	}
	return w
}

// next opens a message if needed and starts the NFTA_LIST_ELEM of the element (key, slot); the
// caller writes its attributes and closes it with batch.end. The first element of a message names
// the message in errors.
func (w *elemWriter) next(key svcKey, slot int) int {
	if w.count > 0 && (w.count == w.max || len(w.b.buf)-w.list > maxElementBytes) {
		w.flush()
	}
	if w.count == 0 {
		w.firstKey, w.firstSlot = key, slot
		flags := uint16(0)
		if w.msgType == unix.NFT_MSG_NEWSETELEM {
			flags = unix.NLM_F_CREATE
		}
		w.b.startNFT(w.msgType, flags, "") // the description is filled in by flush
		w.b.attrString(unix.NFTA_SET_ELEM_LIST_TABLE, w.table)
		w.b.attrString(unix.NFTA_SET_ELEM_LIST_SET, w.set)
		w.list = w.b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	}
	w.count++
	return w.b.nest(unix.NFTA_LIST_ELEM)
}

// flush closes the open message, if any.
func (w *elemWriter) flush() {
	if w.count == 0 {
		return
	}
	w.b.end(w.list)
	w.b.finish()
	// Request the acknowledgement now that the message is complete.
	flagsAt := w.b.msg + 6
	flags := binary.NativeEndian.Uint16(w.b.buf[flagsAt:])
	binary.NativeEndian.PutUint16(w.b.buf[flagsAt:], flags|unix.NLM_F_ACK)
	seq := binary.NativeEndian.Uint32(w.b.buf[w.b.msg+8:])
	first := w.firstKey.String()
	if w.firstSlot >= 0 {
		first += fmt.Sprintf(" . %d", w.firstSlot)
	}
	w.b.msgs = append(w.b.msgs, msgInfo{seq: seq, what: fmt.Sprintf("%s %d elements of %s, the first %s", w.verb, w.count, w.set, first)})
	w.count = 0
}

// key writes NFTA_SET_ELEM_KEY for a Service port, with slot >= 0 appended for the endpoints map.
// The layout is nft's for a concatenation: every field padded to 4 bytes, ports in network
// order, the numgen slot in host order (numgen writes its register in host order).
func (w *elemWriter) key(k svcKey, slot int) {
	b := w.b
	n := b.nest(unix.NFTA_SET_ELEM_KEY)
	size := 12
	if slot >= 0 {
		size = 16
	}
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(unix.NLA_HDRLEN+size))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NFTA_DATA_VALUE)
	b.buf = binary.BigEndian.AppendUint32(b.buf, uint32(k>>24)) // the VIP, in network order
	b.buf = append(b.buf, byte(k.proto()), 0, 0, 0)
	b.buf = binary.BigEndian.AppendUint16(b.buf, k.port())
	b.buf = append(b.buf, 0, 0)
	if slot >= 0 {
		b.buf = binary.NativeEndian.AppendUint32(b.buf, uint32(slot))
	}
	b.end(n)
}

func (w *elemWriter) endpointValue(ep epKey) {
	b := w.b
	n := b.nest(unix.NFTA_SET_ELEM_DATA)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NLA_HDRLEN+8)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NFTA_DATA_VALUE)
	b.buf = binary.BigEndian.AppendUint32(b.buf, uint32(ep>>16)) // the IP, in network order
	b.buf = binary.BigEndian.AppendUint16(b.buf, ep.port())
	b.buf = append(b.buf, 0, 0)
	b.end(n)
}

func (w *elemWriter) gotoValue(chain string) {
	b := w.b
	n := b.nest(unix.NFTA_SET_ELEM_DATA)
	v := b.nest(unix.NFTA_DATA_VERDICT)
	b.attrU32(unix.NFTA_VERDICT_CODE, 1<<32+unix.NFT_GOTO) // a negative verdict code as u32
	b.attrString(unix.NFTA_VERDICT_CHAIN, chain)
	b.end(v)
	b.end(n)
}

// encodePlan writes p as one transaction on table. Its order matters to the kernel, which checks
// every message against the state the earlier ones of the same transaction left:
//
//   - a full sync first adds the table (so the delete cannot fail on a missing table), deletes it
//     with everything in it, and adds it again, then sets, chains, rules and elements;
//   - new lb-N chains come before the service-ips elements that jump to them;
//   - element deletions come before additions, so a changed element can be deleted and re-added.
func encodePlan(firstSeq uint32, table string, p *plan, maxElems int) (*batch, error) {
	b := newBatch(firstSeq, 4096+60*p.elementCount())
	if p.full {
		b.addTable(table, "add table "+table)
		b.delTable(table)
		b.addTable(table, "re-create table "+table)
		for _, s := range tableSets {
			b.addSet(table, s, p.setSize(s.name))
		}
		for _, c := range baseChains {
			b.addBaseChain(table, c)
			if err := b.addRule(table, c.name, ruleExprs(c.role)); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range p.newChains {
		name := lbChain(n)
		b.addChain(table, name)
		if err := b.addRule(table, name, lbRuleExprs(n)); err != nil {
			return nil, err
		}
	}

	for _, add := range []bool{false, true} {
		ops := &p.del
		if add {
			ops = &p.add
		}
		// Deletions: service-ips first, so no packet can be sent to an lb chain whose endpoints
		// are going away (the transaction is atomic anyway; this order only reads naturally).
		// Additions: endpoints first, then the verdicts that lead to them.
		order := []string{mapServiceIPs, setNoEndpoints, mapEndpoints}
		if add {
			order = []string{mapEndpoints, setNoEndpoints, mapServiceIPs}
		}
		for _, set := range order {
			w := b.elements(table, set, add, maxElems)
			switch set {
			case mapServiceIPs:
				for _, e := range ops.serviceIPs {
					at := w.next(e.key, -1)
					w.key(e.key, -1)
					if add {
						w.gotoValue(b.chainName(e.n))
					}
					b.end(at)
				}
			case setNoEndpoints:
				for _, k := range ops.noEndpoints {
					at := w.next(k, -1)
					w.key(k, -1)
					b.end(at)
				}
			case mapEndpoints:
				for _, e := range ops.endpoints {
					at := w.next(e.key, e.slot)
					w.key(e.key, e.slot)
					if add {
						w.endpointValue(e.ep)
					}
					b.end(at)
				}
			}
			w.flush()
		}
	}
	b.close()
	if b.err != nil {
		return nil, fmt.Errorf("encode nftables transaction: %w", b.err)
	}
	return b, nil
}

// setSize is the size a full sync creates a set with (0: unbounded).
func (p *plan) setSize(set string) uint32 {
	switch set {
	case mapServiceIPs:
		return p.capServiceIPs
	case mapEndpoints:
		return p.capEndpoints
	}
	return 0
}
