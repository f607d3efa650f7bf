package rules

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables/expr"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Fake is nf_tables in memory, for tests that cannot or need not be root. A Syncer made by
// Fake.NewSyncer sends it the very netlink transactions it would send the kernel; the Fake
// decodes them, applies them to its tables as the kernel would, and answers with the errors the
// kernel would give (kernel errors wrapping the errno, as from a real socket). Dump prints the
// tables as text, one line per set, chain, rule and element.
//
// Like the kernel, it applies a transaction whole or not at all: the messages are applied in
// order to a copy of the tables, and the copy replaces them only if every message succeeded.
// It checks what the kernel checks for the messages the Syncer sends (objects that must or must
// not exist, key and value lengths, a verdict to a missing or base chain, a full map, a lookup of
// a missing set or one of the wrong kind) and refuses the rest of nf_tables with EOPNOTSUPP
// rather than pretend. Unlike the kernel it stops at the first refused message, so a failed
// transaction reports one error. TestKernelMatchesFake keeps it honest: it runs the same syncs
// against the kernel and a Fake and compares the two dumps.
//
// A Fake is safe for concurrent use. Several Syncers may share one, as several processes share
// the kernel.
type Fake struct {
	mu       sync.Mutex
	tables   []*nfTable
	failures []unix.Errno // answers for the next transactions, injected by FailNextTransaction
	last     []string     // the operations of the last applied transaction
	applied  int
}

var _ nftConn = (*Fake)(nil)

// NewFake returns a Fake without tables.
func NewFake() *Fake { return &Fake{} }

// NewSyncer returns a Syncer that writes to f instead of the kernel, configured as NewSyncer
// would be. Its conntrack table is empty, so the UDP cleanup after a sync finds nothing to delete.
//
// Errors: events.ErrInvalidArgument for an impossible table name.
func (f *Fake) NewSyncer(cfg Config) (*Syncer, error) {
	cfg = cfg.withDefaults()
	if err := checkTableName(cfg.Table); err != nil {
		return nil, err
	}
	return newSyncer(cfg, f, 1, emptyFlowTable{}), nil
}

// FailNextTransaction makes the next transaction fail with errno after all its messages have
// been applied to the working copy, which is then thrown away: the tables must not change, and
// the Syncer must treat the failure as it treats the kernel's. Several calls queue failures for
// as many transactions.
func (f *Fake) FailNextTransaction(errno unix.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, errno)
}

// DeleteTable deletes table ip <name> the way another program would, outside any Syncer.
//
// Errors: unix.ENOENT if there is no such table.
func (f *Fake) DeleteTable(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.tables, func(t *nfTable) bool { return t.family == unix.NFPROTO_IPV4 && t.name == name })
	if i < 0 {
		return fmt.Errorf("delete table ip %s: %w", name, unix.ENOENT)
	}
	f.tables = slices.Delete(f.tables, i, i+1)
	return nil
}

// Dump returns every table in the text form described in dump.go: sorted where nf_tables keeps
// no order, so the same tables always give the same text.
func (f *Fake) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return dumpTables(f.tables)
}

// LastTransaction returns the operations of the last transaction the Fake applied, one per line
// in the order of its messages (one line per element), in the text form of Dump: "add element",
// "delete element", "delete table" and so on.
func (f *Fake) LastTransaction() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.last) == 0 {
		return ""
	}
	return strings.Join(f.last, "\n") + "\n"
}

// Transactions returns how many transactions the Fake has applied (not counting refused ones).
func (f *Fake) Transactions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *Fake) close() error { return nil }

// transact applies a batch as nf_tables does: all of it or nothing.
func (f *Fake) transact(ctx context.Context, b *batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()

	what := make(map[uint32]string, len(b.msgs))
	for _, m := range b.msgs {
		what[m.seq] = m.what
	}
	tx := &fakeTx{setIDs: map[uint32]*nfSet{}}
	for _, t := range f.tables {
		tx.tables = append(tx.tables, t.clone())
	}
	msgs, err := splitBatch(b.buf)
	if err != nil {
		return &kernelError{what: "nftables transaction", errno: unix.EINVAL, msg: err.Error()}
	}
	var lastSeq uint32
	for _, m := range msgs {
		lastSeq = m.seq
		if r := tx.apply(m); r != nil {
			return &kernelError{what: what[m.seq], errno: r.errno, msg: "fake: " + r.msg}
		}
	}
	if len(f.failures) > 0 {
		errno := f.failures[0]
		f.failures = f.failures[1:]
		return &kernelError{what: what[lastSeq], errno: errno, msg: "fake: injected by FailNextTransaction"}
	}
	f.tables, f.last = tx.tables, tx.log
	f.applied++
	return nil
}

// splitBatch returns the messages between NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END.
func splitBatch(buf []byte) ([]nlMessage, error) {
	var msgs []nlMessage
	for len(buf) >= unix.NLMSG_HDRLEN {
		m, rest, ok := nextMessage(buf)
		if !ok {
			return nil, fmt.Errorf("truncated netlink message")
		}
		msgs = append(msgs, m)
		buf = rest
	}
	if len(msgs) < 2 || msgs[0].typ != unix.NFNL_MSG_BATCH_BEGIN || msgs[len(msgs)-1].typ != unix.NFNL_MSG_BATCH_END {
		return nil, fmt.Errorf("a batch must start with NFNL_MSG_BATCH_BEGIN and end with NFNL_MSG_BATCH_END")
	}
	return msgs[1 : len(msgs)-1], nil
}

// emptyFlowTable is a conntrack table without entries.
type emptyFlowTable struct{}

func (emptyFlowTable) Dump(*conntrack.DumpOptions) ([]conntrack.Flow, error) { return nil, nil }
func (emptyFlowTable) Delete(conntrack.Flow) error                           { return unix.ENOENT }
func (emptyFlowTable) Close() error                                          { return nil }

// refusal is the kernel's answer to a message it refuses.
type refusal struct {
	errno unix.Errno
	msg   string
}

func refuse(errno unix.Errno, format string, args ...any) *refusal {
	return &refusal{errno: errno, msg: fmt.Sprintf(format, args...)}
}

// fakeTx is one transaction being applied to a copy of the tables.
type fakeTx struct {
	tables []*nfTable
	setIDs map[uint32]*nfSet // sets created by this transaction, by NFTA_SET_ID
	log    []string
}

func (tx *fakeTx) table(family uint8, name string) *nfTable {
	for _, t := range tx.tables {
		if t.family == family && t.name == name {
			return t
		}
	}
	return nil
}

// tableOf finds the table a message names in attribute typ.
func (tx *fakeTx) tableOf(family uint8, a nlAttrs, typ uint16) (*nfTable, *refusal) {
	name, ok := a.str(typ)
	if !ok {
		return nil, refuse(unix.EINVAL, "no table name")
	}
	t := tx.table(family, name)
	if t == nil {
		return nil, refuse(unix.ENOENT, "no table %s %s", familyName(family), name)
	}
	return t, nil
}

func (tx *fakeTx) apply(m nlMessage) *refusal {
	if m.typ>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.data) < 4 {
		return refuse(unix.EOPNOTSUPP, "message type %#x is not an nf_tables message", m.typ)
	}
	family := m.data[0]
	a, err := parseAttrs(m.data[4:])
	if err != nil {
		return refuse(unix.EINVAL, "%v", err)
	}
	switch int(m.typ & 0xff) {
	case unix.NFT_MSG_NEWTABLE:
		return tx.newTable(m, family, a)
	case unix.NFT_MSG_DELTABLE:
		return tx.delTable(family, a)
	case unix.NFT_MSG_NEWSET:
		return tx.newSet(m, family, a)
	case unix.NFT_MSG_NEWCHAIN:
		return tx.newChain(m, family, a)
	case unix.NFT_MSG_NEWRULE:
		return tx.newRule(m, family, a)
	case unix.NFT_MSG_NEWSETELEM:
		return tx.setElements(m, family, a, true)
	case unix.NFT_MSG_DELSETELEM:
		return tx.setElements(m, family, a, false)
	}
	return refuse(unix.EOPNOTSUPP, "the fake does not model nf_tables message %d", m.typ&0xff)
}

func (tx *fakeTx) newTable(m nlMessage, family uint8, a nlAttrs) *refusal {
	name, ok := a.str(unix.NFTA_TABLE_NAME)
	if !ok {
		return refuse(unix.EINVAL, "no table name")
	}
	flags, _ := a.u32(unix.NFTA_TABLE_FLAGS)
	t := tx.table(family, name)
	switch {
	case t != nil && m.flags&unix.NLM_F_EXCL != 0:
		return refuse(unix.EEXIST, "table %s %s exists", familyName(family), name)
	case t != nil:
		t.flags = flags
	default:
		t = &nfTable{family: family, name: name, flags: flags}
		tx.tables = append(tx.tables, t)
	}
	tx.log = append(tx.log, t.tableLine("add"))
	return nil
}

func (tx *fakeTx) delTable(family uint8, a nlAttrs) *refusal {
	t, r := tx.tableOf(family, a, unix.NFTA_TABLE_NAME)
	if r != nil {
		return r
	}
	tx.tables = slices.DeleteFunc(tx.tables, func(x *nfTable) bool { return x == t })
	for id, s := range tx.setIDs {
		if slices.Contains(t.sets, s) {
			delete(tx.setIDs, id)
		}
	}
	tx.log = append(tx.log, t.tableLine("delete"))
	return nil
}

// The set flags the fake models; the others change what the kernel does with elements.
const modelledSetFlags = unix.NFT_SET_MAP | unix.NFT_SET_CONSTANT

// nftDataValueMaxLen is NFT_DATA_VALUE_MAXLEN, the longest key or value.
const nftDataValueMaxLen = 64

func (tx *fakeTx) newSet(m nlMessage, family uint8, a nlAttrs) *refusal {
	t, r := tx.tableOf(family, a, unix.NFTA_SET_TABLE)
	if r != nil {
		return r
	}
	s := &nfSet{elems: map[string]nfElem{}}
	var ok bool
	if s.name, ok = a.str(unix.NFTA_SET_NAME); !ok || s.name == "" {
		return refuse(unix.EINVAL, "no set name")
	}
	s.flags, _ = a.u32(unix.NFTA_SET_FLAGS)
	if s.flags&^modelledSetFlags != 0 {
		return refuse(unix.EOPNOTSUPP, "the fake does not model set flags %#x", s.flags&^modelledSetFlags)
	}
	s.keyType, _ = a.u32(unix.NFTA_SET_KEY_TYPE)
	s.keyLen, _ = a.u32(unix.NFTA_SET_KEY_LEN)
	if s.keyLen == 0 || s.keyLen > nftDataValueMaxLen {
		return refuse(unix.EINVAL, "set %s: key length %d", s.name, s.keyLen)
	}
	dataType, hasData := a.u32(unix.NFTA_SET_DATA_TYPE)
	switch {
	case s.isMap() && !hasData:
		return refuse(unix.EINVAL, "map %s without a data type", s.name)
	case !s.isMap() && hasData:
		return refuse(unix.EINVAL, "set %s has a data type but is not a map", s.name)
	case s.isMap():
		s.dataType = dataType
		if dataType != unix.NFT_DATA_VERDICT {
			s.dataLen, _ = a.u32(unix.NFTA_SET_DATA_LEN)
			if s.dataLen == 0 || s.dataLen > nftDataValueMaxLen {
				return refuse(unix.EINVAL, "map %s: data length %d", s.name, s.dataLen)
			}
		}
	}
	if desc, ok := a[unix.NFTA_SET_DESC]; ok {
		d, err := parseAttrs(desc)
		if err != nil {
			return refuse(unix.EINVAL, "set %s description: %v", s.name, err)
		}
		s.size, _ = d.u32(unix.NFTA_SET_DESC_SIZE)
	}
	if old := t.set(s.name); old != nil {
		if m.flags&unix.NLM_F_EXCL != 0 {
			return refuse(unix.EEXIST, "set %s exists", s.name)
		}
		if old.flags != s.flags || old.keyType != s.keyType || old.keyLen != s.keyLen || old.dataType != s.dataType ||
			old.dataLen != s.dataLen || old.size != s.size {
			return refuse(unix.EEXIST, "set %s exists with another declaration", s.name)
		}
		s = old
	} else {
		t.sets = append(t.sets, s)
	}
	if id, ok := a.u32(unix.NFTA_SET_ID); ok {
		tx.setIDs[id] = s
	}
	tx.log = append(tx.log, t.setLine(s))
	return nil
}

// nfIPPriConntrack is NF_IP_PRI_CONNTRACK: a nat chain must come after conntrack.
const nfIPPriConntrack = -200

func (tx *fakeTx) newChain(m nlMessage, family uint8, a nlAttrs) *refusal {
	t, r := tx.tableOf(family, a, unix.NFTA_CHAIN_TABLE)
	if r != nil {
		return r
	}
	name, ok := a.str(unix.NFTA_CHAIN_NAME)
	if !ok || name == "" {
		return refuse(unix.EINVAL, "no chain name")
	}
	c := &nfChain{name: name}
	if hb, ok := a[unix.NFTA_CHAIN_HOOK]; ok {
		ha, err := parseAttrs(hb)
		if err != nil {
			return refuse(unix.EINVAL, "chain %s hook: %v", name, err)
		}
		num, ok1 := ha.u32(unix.NFTA_HOOK_HOOKNUM)
		prio, ok2 := ha.u32(unix.NFTA_HOOK_PRIORITY)
		if !ok1 || !ok2 {
			return refuse(unix.EINVAL, "chain %s: hook without number or priority", name)
		}
		h := &nfHook{kind: "filter", num: num, priority: int32(prio), policy: nfAccept}
		if kind, ok := a.str(unix.NFTA_CHAIN_TYPE); ok {
			h.kind = kind
		}
		if p, ok := a.u32(unix.NFTA_CHAIN_POLICY); ok {
			h.policy = p
		}
		switch {
		case h.kind != "filter" && h.kind != "nat" && h.kind != "route":
			return refuse(unix.ENOENT, "chain %s: no chain type %q", name, h.kind)
		case h.num > unix.NF_INET_POST_ROUTING:
			return refuse(unix.EOPNOTSUPP, "chain %s: hook %d", name, h.num)
		case h.kind == "nat" && h.priority <= nfIPPriConntrack:
			return refuse(unix.EOPNOTSUPP, "chain %s: a nat chain's priority must be above conntrack's", name)
		case h.policy != nfAccept && h.policy != nfDrop:
			return refuse(unix.EINVAL, "chain %s: policy %d", name, h.policy)
		}
		c.hook = h
	} else if _, ok := a[unix.NFTA_CHAIN_POLICY]; ok {
		return refuse(unix.EOPNOTSUPP, "chain %s: a policy needs a hook", name)
	}
	if old := t.chain(name); old != nil {
		if m.flags&unix.NLM_F_EXCL != 0 {
			return refuse(unix.EEXIST, "chain %s exists", name)
		}
		if (old.hook == nil) != (c.hook == nil) || c.hook != nil &&
			(old.hook.kind != c.hook.kind || old.hook.num != c.hook.num || old.hook.priority != c.hook.priority) {
			return refuse(unix.EOPNOTSUPP, "chain %s exists with another hook", name)
		}
		old.hook = c.hook // only the policy can differ
		c = old
	} else {
		t.chains = append(t.chains, c)
	}
	tx.log = append(tx.log, t.chainLine(c))
	return nil
}

func (tx *fakeTx) newRule(m nlMessage, family uint8, a nlAttrs) *refusal {
	t, r := tx.tableOf(family, a, unix.NFTA_RULE_TABLE)
	if r != nil {
		return r
	}
	name, _ := a.str(unix.NFTA_RULE_CHAIN)
	c := t.chain(name)
	if c == nil {
		return refuse(unix.ENOENT, "no chain %q", name)
	}
	for _, typ := range []uint16{unix.NFTA_RULE_HANDLE, unix.NFTA_RULE_POSITION} {
		if _, ok := a[typ]; ok {
			return refuse(unix.EOPNOTSUPP, "the fake does not model rule attribute %d", typ)
		}
	}
	items, err := parseAttrList(a[unix.NFTA_RULE_EXPRESSIONS])
	if err != nil {
		return refuse(unix.EINVAL, "rule in chain %s: %v", name, err)
	}
	var rule []expr.Any
	for _, it := range items {
		e, r := tx.decodeExpr(t, family, it)
		if r != nil {
			return r
		}
		rule = append(rule, e)
	}
	if m.flags&unix.NLM_F_APPEND != 0 {
		c.rules = append(c.rules, rule)
	} else {
		c.rules = slices.Insert(c.rules, 0, rule)
	}
	tx.log = append(tx.log, t.ruleLine(c, rule))
	return nil
}

// decodeExpr decodes one expression of a rule through google/nftables and returns it in the form
// the kernel keeps and lists it in.
func (tx *fakeTx) decodeExpr(t *nfTable, family uint8, b []byte) (expr.Any, *refusal) {
	a, err := parseAttrs(b)
	if err != nil {
		return nil, refuse(unix.EINVAL, "expression: %v", err)
	}
	name, _ := a.str(unix.NFTA_EXPR_NAME)
	var e expr.Any
	switch name {
	case "payload":
		e = &expr.Payload{}
	case "meta":
		e = &expr.Meta{}
	case "ct":
		e = &expr.Ct{}
	case "lookup":
		e = &expr.Lookup{}
	case "bitwise":
		e = &expr.Bitwise{}
	case "cmp":
		e = &expr.Cmp{}
	case "numgen":
		e = &expr.Numgen{}
	case "nat":
		e = &expr.NAT{}
	case "masq":
		e = &expr.Masq{}
	case "reject":
		e = &expr.Reject{}
	case "immediate":
		e = &expr.Immediate{}
	case "counter":
		e = &expr.Counter{}
	default:
		return nil, refuse(unix.EOPNOTSUPP, "the fake does not model expression %q", name)
	}
	data := a[unix.NFTA_EXPR_DATA]
	if err := expr.Unmarshal(family, data, e); err != nil {
		return nil, refuse(unix.EINVAL, "expression %s: %v", name, err)
	}
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT {
		v := &expr.Verdict{}
		if err := expr.Unmarshal(family, data, v); err != nil {
			return nil, refuse(unix.EINVAL, "expression %s: %v", name, err)
		}
		e = v
	}

	switch e := e.(type) {
	case *expr.Lookup:
		s := t.set(e.SetName)
		if s == nil && e.SetName == "" {
			s = tx.setIDs[e.SetID]
		}
		if s == nil {
			return nil, refuse(unix.ENOENT, "lookup: no set %q (id %d)", e.SetName, e.SetID)
		}
		if e.IsDestRegSet {
			if !s.isMap() {
				return nil, refuse(unix.EINVAL, "lookup in set %s with a destination register, but it is not a map", s.name)
			}
			if (e.DestRegister == unix.NFT_REG_VERDICT) != (s.dataType == unix.NFT_DATA_VERDICT) {
				return nil, refuse(unix.EINVAL, "lookup in map %s: verdicts go to register 0, values elsewhere", s.name)
			}
		}
		// The kernel keeps the set, not how the rule named it, and lists it by name.
		k := *e
		k.SetName, k.SetID = s.name, 0
		return &k, nil
	case *expr.NAT:
		// The kernel fills in the upper ends of the ranges and flags a given port range.
		k := *e
		if k.RegAddrMin != 0 && k.RegAddrMax == 0 {
			k.RegAddrMax = k.RegAddrMin
		}
		if k.RegProtoMin != 0 {
			if k.RegProtoMax == 0 {
				k.RegProtoMax = k.RegProtoMin
			}
			k.Specified = true
		}
		return &k, nil
	case *expr.Verdict:
		if r := checkJump(t, nfVerdict{code: int32(e.Kind), chain: e.Chain}); r != nil {
			return nil, r
		}
	}
	return e, nil
}

// checkJump refuses a jump or goto to a chain that is missing or a base chain.
func checkJump(t *nfTable, v nfVerdict) *refusal {
	if v.code != unix.NFT_JUMP && v.code != unix.NFT_GOTO {
		return nil
	}
	c := t.chain(v.chain)
	if c == nil {
		return refuse(unix.ENOENT, "%s: no such chain", v)
	}
	if c.hook != nil {
		return refuse(unix.EOPNOTSUPP, "%s: a base chain cannot be a jump target", v)
	}
	return nil
}

func (tx *fakeTx) setElements(m nlMessage, family uint8, a nlAttrs, add bool) *refusal {
	t, r := tx.tableOf(family, a, unix.NFTA_SET_ELEM_LIST_TABLE)
	if r != nil {
		return r
	}
	var s *nfSet
	if name, ok := a.str(unix.NFTA_SET_ELEM_LIST_SET); ok {
		s = t.set(name)
	}
	if id, ok := a.u32(unix.NFTA_SET_ELEM_LIST_SET_ID); ok && s == nil {
		s = tx.setIDs[id]
	}
	if s == nil {
		name, _ := a.str(unix.NFTA_SET_ELEM_LIST_SET)
		return refuse(unix.ENOENT, "no set %q", name)
	}
	list, ok := a[unix.NFTA_SET_ELEM_LIST_ELEMENTS]
	if !ok {
		if !add { // a deletion without elements flushes the set
			clear(s.elems)
			tx.log = append(tx.log, "flush set "+t.id()+" "+s.name)
		}
		return nil
	}
	items, err := parseAttrList(list)
	if err != nil {
		return refuse(unix.EINVAL, "elements of %s: %v", s.name, err)
	}
	verb := "delete"
	if add {
		verb = "add"
	}
	for _, it := range items {
		e, r := decodeElem(t, s, it, add)
		if r != nil {
			return r
		}
		k := string(e.key)
		old, exists := s.elems[k]
		switch {
		case !add && !exists:
			return refuse(unix.ENOENT, "delete element %s from %s: no such element", formatData(s.keyType, e.key), s.name)
		case !add:
			delete(s.elems, k)
		case exists && (m.flags&unix.NLM_F_EXCL != 0 || !sameValue(old, e)):
			// The kernel never overwrites the value of an element.
			return refuse(unix.EEXIST, "add element %s to %s: it exists", formatData(s.keyType, e.key), s.name)
		case exists:
		case s.size > 0 && len(s.elems) >= int(s.size):
			return refuse(unix.ENFILE, "add element %s to %s: the set is full (size %d)", formatData(s.keyType, e.key), s.name, s.size)
		default:
			s.elems[k] = e
		}
		tx.log = append(tx.log, t.elemLine(verb, s, e))
	}
	return nil
}

func sameValue(a, b nfElem) bool {
	if (a.verdict == nil) != (b.verdict == nil) || a.verdict != nil && *a.verdict != *b.verdict {
		return false
	}
	return string(a.data) == string(b.data)
}

// decodeElem decodes one NFTA_LIST_ELEM of an element message for set s.
func decodeElem(t *nfTable, s *nfSet, b []byte, add bool) (nfElem, *refusal) {
	a, err := parseAttrs(b)
	if err != nil {
		return nfElem{}, refuse(unix.EINVAL, "element of %s: %v", s.name, err)
	}
	key, ok := dataValue(a[unix.NFTA_SET_ELEM_KEY])
	if !ok || len(key) != int(s.keyLen) {
		return nfElem{}, refuse(unix.EINVAL, "element of %s: key of %d bytes, the set's are %d", s.name, len(key), s.keyLen)
	}
	e := nfElem{key: key}
	d, hasData := a[unix.NFTA_SET_ELEM_DATA]
	if !add {
		return e, nil
	}
	switch {
	case !s.isMap() && hasData:
		return e, refuse(unix.EINVAL, "element of set %s has a value", s.name)
	case s.isMap() && !hasData:
		return e, refuse(unix.EINVAL, "element of map %s has no value", s.name)
	case !s.isMap():
		return e, nil
	}
	da, err := parseAttrs(d)
	if err != nil {
		return e, refuse(unix.EINVAL, "element value in %s: %v", s.name, err)
	}
	if s.dataType == unix.NFT_DATA_VERDICT {
		va, err := parseAttrs(da[unix.NFTA_DATA_VERDICT])
		code, ok := va.u32(unix.NFTA_VERDICT_CODE)
		if err != nil || !ok {
			return e, refuse(unix.EINVAL, "element of verdict map %s has no verdict", s.name)
		}
		v := nfVerdict{code: int32(code)}
		v.chain, _ = va.str(unix.NFTA_VERDICT_CHAIN)
		if r := checkJump(t, v); r != nil {
			return e, r
		}
		e.verdict = &v
		return e, nil
	}
	val, ok := da[unix.NFTA_DATA_VALUE]
	if !ok || len(val) != int(s.dataLen) {
		return e, refuse(unix.EINVAL, "element of map %s: value of %d bytes, the map's are %d", s.name, len(val), s.dataLen)
	}
	e.data = slices.Clone(val)
	return e, nil
}

// dataValue returns the NFTA_DATA_VALUE inside an NFTA_SET_ELEM_KEY.
func dataValue(b []byte) ([]byte, bool) {
	a, err := parseAttrs(b)
	if err != nil {
		return nil, false
	}
	v, ok := a[unix.NFTA_DATA_VALUE]
	return slices.Clone(v), ok
}

// nlAttrs holds a message's attributes by type (the last of each type), without the nested and
// byte-order flags.
type nlAttrs map[uint16][]byte

func parseAttrs(b []byte) (nlAttrs, error) {
	a := nlAttrs{}
	err := walkAttrs(b, func(typ uint16, data []byte) { a[typ] = data })
	return a, err
}

// parseAttrList returns the NFTA_LIST_ELEM attributes of a list.
func parseAttrList(b []byte) ([][]byte, error) {
	var items [][]byte
	var bad uint16
	err := walkAttrs(b, func(typ uint16, data []byte) {
		if typ != unix.NFTA_LIST_ELEM {
			bad = typ
		}
		items = append(items, data)
	})
	if err == nil && bad != 0 {
		err = fmt.Errorf("attribute %d in a list", bad)
	}
	return items, err
}

func walkAttrs(b []byte, fn func(typ uint16, data []byte)) error {
	for len(b) > 0 {
		if len(b) < unix.NLA_HDRLEN {
			return fmt.Errorf("truncated netlink attribute")
		}
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.NLA_HDRLEN || l > len(b) {
			return fmt.Errorf("netlink attribute of length %d in %d bytes", l, len(b))
		}
		fn(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.NLA_HDRLEN:l])
		b = b[min((l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(b)):]
	}
	return nil
}

func (a nlAttrs) str(typ uint16) (string, bool) {
	v, ok := a[typ]
	return strings.TrimRight(string(v), "\x00"), ok
}

func (a nlAttrs) u32(typ uint16) (uint32, bool) {
	v, ok := a[typ]
	if !ok || len(v) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}
