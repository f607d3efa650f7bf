package rules

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Benchmarks against the real kernel, each in its own network namespace. Run them with
//
//	go test ./internal/rules/ -run '^$' -bench . -count 5
//
// docs/bench/netproxy.md has the numbers.

// BenchmarkFullSync measures what a proxy restart costs: a new Syncer's first Sync of n Services
// with 2 endpoints each, replacing a table that already holds them.
func BenchmarkFullSync(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			ns := newNetNS(b, "bench")
			desired := manyServices(n, 2)
			ctx := context.Background()
			if err := newSyncerIn(b, ns, Config{}).Sync(ctx, desired); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				s := newSyncerIn(b, ns, Config{})
				b.StartTimer()
				if err := s.Sync(ctx, desired); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(3*n), "elements/op")
		})
	}
}

// BenchmarkIncrementalAddOne measures Sync with one more Service (2 endpoints) than the 10,000
// already written: one diff over the whole list and three new elements. The Service is removed
// again between iterations, outside the timer.
func BenchmarkIncrementalAddOne(b *testing.B) {
	ns := newNetNS(b, "bench")
	s := newSyncerIn(b, ns, Config{})
	ctx := context.Background()
	base := manyServices(10000, 2)
	if err := s.Sync(ctx, base); err != nil {
		b.Fatal(err)
	}
	withOne := append(base[:len(base):len(base)], svc("one-more", "10.97.0.1", TCP, 80, ep("10.89.0.1", 8080), ep("10.89.0.2", 8080)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Sync(ctx, withOne); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Sync(ctx, base); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkPlanAddOne is the Go side of BenchmarkIncrementalAddOne, without the kernel: diffing
// 10,001 desired ports against the record of 10,000 and encoding the transaction.
func BenchmarkPlanAddOne(b *testing.B) {
	base := manyServices(10000, 2)
	withOne := append(base[:len(base):len(base)], svc("one-more", "10.97.0.1", TCP, 80, ep("10.89.0.1", 8080), ep("10.89.0.2", 8080)))
	var k kernelState
	p, err := k.plan(base, true)
	if err != nil {
		b.Fatal(err)
	}
	k.commit(p)
	b.ReportAllocs()
	for b.Loop() {
		p, err := k.plan(withOne, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := encodePlan(1, DefaultTable, p, defaultMaxElementsPerMessage); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKubeProxyShapeFullSync is the baseline: the same Services in kube-proxy's nftables
// shape, a chain per Service with an anonymous numgen vmap to a chain per endpoint, each with its
// own dnat rule. It writes the same kind of transaction (delete the table, write it whole).
func BenchmarkKubeProxyShapeFullSync(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			ns := newNetNS(b, "bench")
			desired := manyServices(n, 2)
			ctx := context.Background()
			var sock *nfSocket
			if err := ns.Do(func() (err error) { sock, err = openNFSocket(); return err }); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { sock.close() })
			seq := uint32(1)
			send := func() {
				bt, err := encodeKubeProxyShape(seq, "kp", desired)
				if err != nil {
					b.Fatal(err)
				}
				seq = bt.nextSeq
				if err := sock.transact(ctx, bt); err != nil {
					b.Fatal(err)
				}
			}
			send()
			b.ResetTimer()
			for range b.N {
				send()
			}
			b.ReportMetric(float64(3*n), "chains/op")
		})
	}
}

// encodeKubeProxyShape writes, for each Service:
//
//	chain svc-I { numgen random mod N vmap { 0 : goto sep-I-0, ... } }
//	chain sep-I-J { meta mark set meta mark | BIT dnat to IP:PORT }
//
// and a service-ips vmap element to svc-I, behind the same nat-prerouting lookup.
func encodeKubeProxyShape(firstSeq uint32, table string, desired []ServicePort) (*batch, error) {
	b := newBatch(firstSeq, 1<<20)
	b.addTable(table, "add table")
	b.delTable(table)
	b.addTable(table, "re-create table")
	b.addSet(table, tableSets[0], 0)   // service-ips
	for _, c := range baseChains[:2] { // nat-prerouting, nat-output
		b.addBaseChain(table, c)
		if err := b.addRule(table, c.name, ruleExprs(c.role)); err != nil {
			return nil, err
		}
	}
	anonID := uint32(100)
	w := b.elements(table, mapServiceIPs, true, 1000)
	var svcElems []serviceIPElem
	for i, sp := range desired {
		svcChain := fmt.Sprintf("svc-%d", i)
		for j, e := range sp.Endpoints {
			sep := fmt.Sprintf("sep-%d-%d", i, j)
			b.addChain(table, sep)
			ip := e.IP.As4()
			exprs := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyMARK, Register: regKey},
				&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: hostU32(^MasqueradeMark), Xor: hostU32(MasqueradeMark)},
				&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: regKey},
				&expr.Immediate{Register: regKey, Data: ip[:]},
				&expr.Immediate{Register: regProto, Data: binary.BigEndian.AppendUint16(nil, e.Port)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regKey, RegProtoMin: regProto},
			}
			if err := b.addRule(table, sep, exprs); err != nil {
				return nil, err
			}
		}
		b.addChain(table, svcChain)
		anonID++
		// The anonymous numgen map, its elements, and the rule that uses it.
		b.startNFT(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, "add anonymous map of "+svcChain)
		b.attrString(unix.NFTA_SET_TABLE, table)
		b.attrString(unix.NFTA_SET_NAME, "__map%d")
		b.attrU32(unix.NFTA_SET_FLAGS, unix.NFT_SET_ANONYMOUS|unix.NFT_SET_CONSTANT|unix.NFT_SET_MAP)
		b.attrU32(unix.NFTA_SET_KEY_TYPE, typeInteger)
		b.attrU32(unix.NFTA_SET_KEY_LEN, 4)
		b.attrU32(unix.NFTA_SET_DATA_TYPE, unix.NFT_DATA_VERDICT)
		b.attrU32(unix.NFTA_SET_ID, anonID)
		b.finish()
		b.startNFT(unix.NFT_MSG_NEWSETELEM, unix.NLM_F_CREATE, "add elements to anonymous map of "+svcChain)
		b.attrString(unix.NFTA_SET_ELEM_LIST_TABLE, table)
		b.attrString(unix.NFTA_SET_ELEM_LIST_SET, "__map%d")
		b.attrU32(unix.NFTA_SET_ELEM_LIST_SET_ID, anonID)
		list := b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		for j := range sp.Endpoints {
			elem := b.nest(unix.NFTA_LIST_ELEM)
			key := b.nest(unix.NFTA_SET_ELEM_KEY)
			b.attr(unix.NFTA_DATA_VALUE, hostU32(uint32(j)))
			b.end(key)
			data := b.nest(unix.NFTA_SET_ELEM_DATA)
			v := b.nest(unix.NFTA_DATA_VERDICT)
			b.attrU32(unix.NFTA_VERDICT_CODE, 1<<32+unix.NFT_GOTO)
			b.attrString(unix.NFTA_VERDICT_CHAIN, fmt.Sprintf("sep-%d-%d", i, j))
			b.end(v)
			b.end(data)
			b.end(elem)
		}
		b.end(list)
		b.finish()
		if err := b.addRule(table, svcChain, []expr.Any{
			&expr.Numgen{Register: regKey, Modulus: uint32(len(sp.Endpoints)), Type: unix.NFT_NG_RANDOM},
			&expr.Lookup{SourceRegister: regKey, DestRegister: 0, IsDestRegSet: true, SetName: "__map%d", SetID: anonID},
		}); err != nil {
			return nil, err
		}
		svcElems = append(svcElems, serviceIPElem{key: newSvcKey(sp.VIP.As4(), sp.Protocol, sp.Port), n: i})
	}
	for _, e := range svcElems {
		at := w.next(e.key, -1)
		w.key(e.key, -1)
		w.gotoValue(fmt.Sprintf("svc-%d", e.n))
		b.end(at)
	}
	w.flush()
	b.close()
	return b, nil
}

// TestKubeProxyShapeBaselineWorks keeps the baseline honest: its table must carry traffic too.
func TestKubeProxyShapeBaselineWorks(t *testing.T) {
	c := newCluster(t, 2)
	var sock *nfSocket
	if err := c.node.Do(func() (err error) { sock, err = openNFSocket(); return err }); err != nil {
		t.Fatal(err)
	}
	defer sock.close()
	desired := []ServicePort{svc("web", "10.96.0.10", TCP, 80, c.endpoints(podTCPPort, 0, 1)...)}
	bt, err := encodeKubeProxyShape(1, "kp", desired)
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.transact(context.Background(), bt); err != nil {
		t.Fatal(err)
	}
	// Masquerading lives in the skiff table: the node's own connections do not need it.
	counts, err := askManyTCP(c.node, netip.AddrPortFrom(ip("10.96.0.10"), 80).String(), 60)
	if err != nil {
		t.Fatal(err)
	}
	checkSpread(t, counts, 60, c.pods)
}
