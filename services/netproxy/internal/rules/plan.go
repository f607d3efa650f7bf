package rules

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"skiff.dev/events"
)

// svcKey identifies a Service port in the kernel maps: the (VIP . proto . port) part of every key,
// packed as VIP<<24 | proto<<16 | port. Integers rather than structs because the incremental sync
// compares every desired port with the record, and integers compare and hash fastest; the
// packing also makes numeric order the (VIP, proto, port) order.
type svcKey uint64

func newSvcKey(vip [4]byte, proto Protocol, port uint16) svcKey {
	return svcKey(uint64(binary.BigEndian.Uint32(vip[:]))<<24 | uint64(proto)<<16 | uint64(port))
}

func (k svcKey) vip() [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(k>>24))
	return b
}

func (k svcKey) proto() Protocol { return Protocol(k >> 16) }
func (k svcKey) port() uint16    { return uint16(k) }

func (k svcKey) String() string {
	return fmt.Sprintf("%s . %s . %d", netip.AddrFrom4(k.vip()), k.proto(), k.port())
}

func compareKeys(a, b svcKey) int { return cmp.Compare(a, b) }

// epKey is an endpoint packed as IPv4<<16 | port; numeric order is (IP, port) order.
type epKey uint64

func newEpKey(ip [4]byte, port uint16) epKey {
	return epKey(uint64(binary.BigEndian.Uint32(ip[:]))<<16 | uint64(port))
}

func (e epKey) ip() [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(e>>16))
	return b
}

func (e epKey) port() uint16 { return uint16(e) }

func (e epKey) endpoint() Endpoint { return Endpoint{IP: netip.AddrFrom4(e.ip()), Port: e.port()} }

func (e epKey) String() string { return e.endpoint().String() }

// svcState is what the kernel holds for one Service port after a successful sync.
type svcState struct {
	key svcKey
	eps []epKey // sorted, unique; slot i of the endpoints map holds eps[i]
	pos int     // index in kernelState.order

	// seen is the epoch of the last plan that looked this port up by key, index its position in
	// that plan's desired list (for duplicate errors).
	seen  uint64
	index int
}

// kernelState is the Syncer's record of what the kernel holds.
type kernelState struct {
	written map[svcKey]*svcState
	chains  map[int]bool // lb-N chains that exist

	// order holds the entries of written in the order of the last desired list, with copies of
	// their keys and endpoints side by side. A caller that passes its list in a stable order
	// (appending new ports) is diffed by walking both lists in step, touching only contiguous
	// memory: with 10,000 ports, a map lookup or a pointer chase per port would cost more than
	// the kernel needs to add one Service.
	order []orderEntry
	epoch uint64

	// The sizes service-ips and endpoints were created with, and how many elements they hold.
	capServiceIPs, capEndpoints uint32
	nServiceIPs, nEndpoints     int
}

// Sizes of the two big maps. A map created with a size is a fixed-size hash in the kernel
// (nft_hash rather than a resizable rhashtable): it takes elements about twice as fast, because
// it never rehashes while a full sync fills it, and the kernel walks it faster when it validates
// service-ips. The size is also a hard limit, so a full sync makes room for twice what it writes,
// and an incremental sync that would overflow a map turns into a full sync.
const minCapacity = 4096

func capacityFor(n int) uint32 {
	c := minCapacity
	for c < 2*n {
		c *= 2
	}
	return uint32(c)
}

type orderEntry struct {
	key svcKey
	eps []epKey // the same slice as st.eps
	st  *svcState
}

// A plan is the difference between two states as nftables operations. The kernel applies it in
// one transaction: deletions of elements come before additions, so an element whose value
// changes is deleted and added again (the kernel refuses to overwrite the value of a map element).
type plan struct {
	full      bool  // replace the whole table
	newChains []int // lb-N chains to create, ascending

	del, add elemOps

	// Applied to the record once the kernel has acknowledged the transaction.
	upserts []upsert
	removes []svcKey
	// How commit updates the record's order: by appending the new ports (keepOrder), or by
	// rebuilding it from orderKeys, the keys of the desired list.
	keepOrder bool
	orderKeys []svcKey

	// For a full sync: why, and the sizes of the maps it creates.
	reason                      string
	capServiceIPs, capEndpoints uint32

	// UDP ports whose conntrack entries must be checked after the commit: an entry whose reply
	// does not come from one of keep would keep sending a client's packets to a gone endpoint
	// (or, for a port that had no endpoints, past the new DNAT rule).
	udpFlush []udpFlush
}

type elemOps struct {
	serviceIPs  []serviceIPElem
	noEndpoints []svcKey
	endpoints   []endpointElem
}

type serviceIPElem struct {
	key svcKey
	n   int // endpoint count: the element says goto lb-n
}

type endpointElem struct {
	key  svcKey
	slot int
	ep   epKey
}

type upsert struct {
	key svcKey
	eps []epKey
}

type udpFlush struct {
	key  svcKey
	keep []epKey
}

func (p *plan) empty() bool {
	return !p.full && len(p.newChains) == 0 && p.elementCount() == 0
}

// elementCount is the number of set elements the plan touches, for logs.
func (p *plan) elementCount() int {
	return len(p.del.serviceIPs) + len(p.del.noEndpoints) + len(p.del.endpoints) +
		len(p.add.serviceIPs) + len(p.add.noEndpoints) + len(p.add.endpoints)
}

// plan computes the operations that take the kernel from the record to desired; full (or an
// empty record) ignores the record and writes a new table. The record changes only in commit.
//
// Errors wrap events.ErrInvalidArgument: the desired list is refused whole, nothing is written.
func (k *kernelState) plan(desired []ServicePort, full bool) (*plan, error) {
	k.epoch++
	epoch := k.epoch
	written, order := k.written, k.order
	if full || written == nil {
		written, order = nil, nil
	}
	p := &plan{full: written == nil, keepOrder: true}

	// desired[:inStep] matched order[:inStep] one by one; from the first mismatch on, ports are
	// looked up by key.
	inStep := 0
	var fresh map[svcKey]int // keys not in written, to catch duplicates among them
	if p.full {
		fresh = make(map[svcKey]int, len(desired))
	}
	var wantChain map[int]bool
	var scratch []epKey
	var arena []epKey // a full sync copies every port's endpoints into one allocation
	if p.full {
		n := 0
		for i := range desired {
			n += len(desired[i].Endpoints)
		}
		arena = make([]epKey, 0, n)
	}
	matched := 0
	for i := range desired {
		sp := &desired[i]
		key, err := keyOf(sp)
		if err != nil {
			return nil, err
		}
		var old *svcState
		var oldEps []epKey
		if p.keepOrder && i < len(order) && order[i].key == key {
			old, oldEps = order[i].st, order[i].eps
			inStep = i + 1
		} else {
			if p.keepOrder && i < len(order) {
				// The order changed: commit rebuilds it from the desired keys.
				p.keepOrder = false
				p.orderKeys = make([]svcKey, i, len(desired))
				for j := range i {
					p.orderKeys[j] = order[j].key
				}
			}
			if old = written[key]; old != nil {
				if old.pos < inStep {
					return nil, duplicateError(desired, old.pos, i)
				}
				if old.seen == epoch {
					return nil, duplicateError(desired, old.index, i)
				}
				old.seen, old.index = epoch, i
				oldEps = old.eps
			}
		}
		if !p.keepOrder {
			p.orderKeys = append(p.orderKeys, key)
		}
		eps, changed, scr, err := endpointsOf(sp, oldEps, old == nil, scratch)
		if err != nil {
			return nil, err
		}
		scratch = scr
		if changed {
			if arena != nil {
				start := len(arena)
				arena = append(arena, eps...)
				eps = arena[start:len(arena):len(arena)]
			} else {
				eps = slices.Clone(eps)
			}
		}
		if old != nil {
			matched++
			if !changed {
				continue
			}
		} else {
			if fresh == nil {
				fresh = map[svcKey]int{}
			}
			if j, dup := fresh[key]; dup {
				return nil, duplicateError(desired, j, i)
			}
			fresh[key] = i
		}
		if n := len(eps); n > 0 && !wantChain[n] && (p.full || !k.chains[n]) {
			if wantChain == nil {
				wantChain = map[int]bool{}
			}
			wantChain[n] = true
			p.newChains = append(p.newChains, n)
		}
		p.change(key, old, eps)
	}

	if matched < len(written) {
		// Some recorded ports are gone: those neither matched in step nor looked up.
		for j, e := range order {
			if j >= inStep && e.st.seen != epoch {
				p.remove(e.key, e.st)
			}
		}
		if p.keepOrder {
			// Every desired port kept its place in the old order, so the removed ones are its
			// tail and the new order is its head.
			p.keepOrder = false
			p.orderKeys = make([]svcKey, 0, len(desired))
			for _, e := range order[:len(desired)] {
				p.orderKeys = append(p.orderKeys, e.key)
			}
		}
	}
	slices.Sort(p.newChains)

	if p.full {
		p.reason = "start or failed sync"
		p.capServiceIPs, p.capEndpoints = capacityFor(len(p.add.serviceIPs)), capacityFor(len(p.add.endpoints))
	} else if k.nServiceIPs+len(p.add.serviceIPs)-len(p.del.serviceIPs) > int(k.capServiceIPs) ||
		k.nEndpoints+len(p.add.endpoints)-len(p.del.endpoints) > int(k.capEndpoints) {
		p, err := k.plan(desired, true)
		if p != nil {
			p.reason = "the maps are full"
		}
		return p, err
	}
	return p, nil
}

// commit records a plan the kernel acknowledged.
func (k *kernelState) commit(p *plan) {
	if p.full || k.written == nil {
		k.written = make(map[svcKey]*svcState, len(p.upserts))
		k.chains = make(map[int]bool, len(p.newChains))
		k.order = make([]orderEntry, 0, len(p.upserts))
	}
	var slab []svcState // one allocation for the states of a full sync
	if p.full {
		slab = make([]svcState, len(p.upserts))
	}
	for _, u := range p.upserts {
		if st := k.written[u.key]; st != nil {
			st.eps = u.eps
			if p.keepOrder {
				k.order[st.pos].eps = u.eps
			}
			continue
		}
		var st *svcState
		if len(slab) > 0 {
			st, slab = &slab[0], slab[1:]
		} else {
			st = new(svcState)
		}
		st.key, st.eps = u.key, u.eps
		k.written[u.key] = st
		if p.keepOrder {
			// New ports are the tail of the desired list, in its order.
			st.pos = len(k.order)
			k.order = append(k.order, orderEntry{key: u.key, eps: u.eps, st: st})
		}
	}
	for _, key := range p.removes {
		delete(k.written, key)
	}
	if !p.keepOrder {
		k.order = k.order[:0]
		for i, key := range p.orderKeys {
			st := k.written[key]
			st.pos = i
			k.order = append(k.order, orderEntry{key: key, eps: st.eps, st: st})
		}
	}
	for _, n := range p.newChains {
		k.chains[n] = true
	}
	if p.full {
		k.capServiceIPs, k.capEndpoints = p.capServiceIPs, p.capEndpoints
		k.nServiceIPs, k.nEndpoints = 0, 0
	}
	k.nServiceIPs += len(p.add.serviceIPs) - len(p.del.serviceIPs)
	k.nEndpoints += len(p.add.endpoints) - len(p.del.endpoints)
}

// change records the operations for a port that is new (old == nil) or whose endpoints changed.
func (p *plan) change(key svcKey, old *svcState, eps []epKey) {
	var oldEps []epKey
	if old != nil {
		oldEps = old.eps
	}
	n0, n1 := len(oldEps), len(eps)
	existed := old != nil

	if existed && n0 > 0 && n1 != n0 {
		p.del.serviceIPs = append(p.del.serviceIPs, serviceIPElem{key, n0})
	}
	if n1 > 0 && (!existed || n1 != n0) {
		p.add.serviceIPs = append(p.add.serviceIPs, serviceIPElem{key, n1})
	}
	if existed && n0 == 0 && n1 > 0 {
		p.del.noEndpoints = append(p.del.noEndpoints, key)
	}
	if n1 == 0 && (!existed || n0 > 0) {
		p.add.noEndpoints = append(p.add.noEndpoints, key)
	}
	for i := range max(n0, n1) {
		switch {
		case i < n0 && i < n1:
			if oldEps[i] != eps[i] {
				p.del.endpoints = append(p.del.endpoints, endpointElem{key, i, oldEps[i]})
				p.add.endpoints = append(p.add.endpoints, endpointElem{key, i, eps[i]})
			}
		case i < n0:
			p.del.endpoints = append(p.del.endpoints, endpointElem{key, i, oldEps[i]})
		default:
			p.add.endpoints = append(p.add.endpoints, endpointElem{key, i, eps[i]})
		}
	}
	p.upserts = append(p.upserts, upsert{key, eps})

	if key.proto() != UDP {
		return
	}
	// A port that gets its first endpoints (clients refused so far hold un-NATed entries), or one
	// that lost an endpoint.
	if n1 > 0 && (!existed || n0 == 0) || lostEndpoint(oldEps, eps) {
		p.udpFlush = append(p.udpFlush, udpFlush{key, eps})
	}
}

// remove records the operations for a port that is no longer desired.
func (p *plan) remove(key svcKey, old *svcState) {
	if n0 := len(old.eps); n0 > 0 {
		p.del.serviceIPs = append(p.del.serviceIPs, serviceIPElem{key, n0})
	} else {
		p.del.noEndpoints = append(p.del.noEndpoints, key)
	}
	for i, ep := range old.eps {
		p.del.endpoints = append(p.del.endpoints, endpointElem{key, i, ep})
	}
	p.removes = append(p.removes, key)
	if key.proto() == UDP && len(old.eps) > 0 {
		p.udpFlush = append(p.udpFlush, udpFlush{key, nil})
	}
}

// lostEndpoint reports whether an endpoint of old (sorted) is missing from new (sorted).
func lostEndpoint(old, new []epKey) bool {
	j := 0
	for _, e := range old {
		for j < len(new) && new[j] < e {
			j++
		}
		if j == len(new) || new[j] != e {
			return true
		}
	}
	return false
}

func keyOf(sp *ServicePort) (svcKey, error) {
	vip := sp.VIP
	if !vip.Is4() {
		if vip = vip.Unmap(); !vip.Is4() {
			return 0, fmt.Errorf("service port %s: VIP %v is not an IPv4 address (Skiff Services are IPv4 only): %w",
				sp, sp.VIP, events.ErrInvalidArgument)
		}
	}
	if sp.Protocol != TCP && sp.Protocol != UDP {
		return 0, fmt.Errorf("service port %s: protocol must be TCP or UDP: %w", sp, events.ErrInvalidArgument)
	}
	if sp.Port == 0 {
		return 0, fmt.Errorf("service port %s: port 0 is not a valid Service port: %w", sp, events.ErrInvalidArgument)
	}
	return newSvcKey(vip.As4(), sp.Protocol, sp.Port), nil
}

// endpointsOf validates sp.Endpoints and compares them with old, the recorded endpoints of the
// port (sorted and unique; nil for a new port). When they are the same set it returns
// changed == false; otherwise eps is the canonical list (sorted, without duplicates) in scratch,
// which the caller copies before the next call.
//
// It allocates nothing: this runs for every desired port on every sync.
func endpointsOf(sp *ServicePort, old []epKey, isNew bool, scratch []epKey) (eps []epKey, changed bool, _ []epKey, err error) {
	sorted, same := true, !isNew && len(sp.Endpoints) == len(old)
	var prev epKey
	for i, e := range sp.Endpoints {
		ip := e.IP
		if !ip.Is4() {
			if ip = ip.Unmap(); !ip.Is4() {
				return nil, false, scratch, fmt.Errorf("service port %s: endpoint %v is not an IPv4 address: %w",
					sp, e.IP, events.ErrInvalidArgument)
			}
		}
		if e.Port == 0 {
			return nil, false, scratch, fmt.Errorf("service port %s: endpoint %v has port 0: %w", sp, e.IP, events.ErrInvalidArgument)
		}
		ek := newEpKey(ip.As4(), e.Port)
		if i > 0 && ek <= prev {
			sorted = false
		}
		if same && old[i] != ek {
			same = false
		}
		prev = ek
	}
	if sorted && same {
		return nil, false, scratch, nil
	}
	scratch = scratch[:0]
	for _, e := range sp.Endpoints {
		scratch = append(scratch, newEpKey(e.IP.Unmap().As4(), e.Port))
	}
	if !sorted {
		slices.Sort(scratch)
		scratch = slices.Compact(scratch)
		if !isNew && slices.Equal(scratch, old) {
			return nil, false, scratch, nil
		}
	}
	return scratch, true, scratch, nil
}

func duplicateError(desired []ServicePort, first, second int) error {
	return fmt.Errorf("service ports %s and %s use the same VIP, protocol and port; each triple may appear once: %w",
		desired[first].String(), desired[second].String(), events.ErrInvalidArgument)
}
