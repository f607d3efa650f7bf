package rules

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpKernel reads every table of family ip in ns back from the kernel and prints it in the
// text form of Fake.Dump. Tables, chains, rules and elements come through google/nftables, which
// decodes what the kernel lists independently of the Fake's decoder. Set declarations come from
// a GETSET dump of our own, because google/nftables v0.3.0 overwrites a verdict map's key type
// with "verdict" when it decodes one.
func dumpKernel(t *testing.T, ns *netNS) string {
	t.Helper()
	var out string
	err := ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		if err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
		if err != nil {
			return fmt.Errorf("list chains: %w", err)
		}
		var model []*nfTable
		for _, tbl := range tables {
			nt := &nfTable{family: uint8(tbl.Family), name: tbl.Name, flags: tbl.Flags}
			if nt.sets, err = kernelSets(tbl.Name); err != nil {
				return err
			}
			for _, s := range nt.sets {
				elems, err := c.GetSetElements(&nftables.Set{Table: tbl, Name: s.name})
				if err != nil {
					return fmt.Errorf("get elements of %s: %w", s.name, err)
				}
				for _, e := range elems {
					ne := nfElem{key: e.Key}
					switch {
					case s.dataType == unix.NFT_DATA_VERDICT:
						a, err := parseAttrs(e.Val)
						code, ok := a.u32(unix.NFTA_VERDICT_CODE)
						if err != nil || !ok {
							return fmt.Errorf("element of %s: undecodable verdict %x", s.name, e.Val)
						}
						v := nfVerdict{code: int32(code)}
						v.chain, _ = a.str(unix.NFTA_VERDICT_CHAIN)
						ne.verdict = &v
					case s.isMap():
						ne.data = e.Val
					}
					s.elems[string(e.Key)] = ne
				}
			}
			for _, ch := range chains {
				if ch.Table.Name != tbl.Name {
					continue
				}
				nc := &nfChain{name: ch.Name}
				if ch.Hooknum != nil {
					nc.hook = &nfHook{kind: string(ch.Type), num: uint32(*ch.Hooknum), priority: int32(*ch.Priority), policy: uint32(*ch.Policy)}
				}
				rules, err := c.GetRules(tbl, ch)
				if err != nil {
					return fmt.Errorf("get rules of %s: %w", ch.Name, err)
				}
				for _, r := range rules {
					nc.rules = append(nc.rules, r.Exprs)
				}
				nt.chains = append(nt.chains, nc)
			}
			model = append(model, nt)
		}
		out = dumpTables(model)
		return nil
	})
	if err != nil {
		t.Fatalf("read the kernel's tables back: %v", err)
	}
	return out
}

// kernelSets lists the set declarations of table ip <table>, in the kernel's order.
func kernelSets(table string) ([]*nfSet, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	req := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSET), Flags: netlink.Request | netlink.Dump},
		Data:   []byte{unix.NFPROTO_IPV4, unix.NFNETLINK_V0, 0, 0},
	}
	attr, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: []byte(table + "\x00")}})
	if err != nil {
		return nil, err
	}
	req.Data = append(req.Data, attr...)
	msgs, err := conn.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("list sets of %s: %w", table, err)
	}
	var sets []*nfSet
	for _, m := range msgs {
		a, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, err
		}
		s := &nfSet{elems: map[string]nfElem{}}
		s.name, _ = a.str(unix.NFTA_SET_NAME)
		s.flags, _ = a.u32(unix.NFTA_SET_FLAGS)
		s.keyType, _ = a.u32(unix.NFTA_SET_KEY_TYPE)
		s.keyLen, _ = a.u32(unix.NFTA_SET_KEY_LEN)
		if s.isMap() {
			s.dataType, _ = a.u32(unix.NFTA_SET_DATA_TYPE)
			if s.dataType != unix.NFT_DATA_VERDICT {
				s.dataLen, _ = a.u32(unix.NFTA_SET_DATA_LEN)
			}
		}
		if d, err := parseAttrs(a[unix.NFTA_SET_DESC]); err == nil {
			s.size, _ = d.u32(unix.NFTA_SET_DESC_SIZE)
		}
		sets = append(sets, s)
	}
	return sets, nil
}

// TestKernelMatchesFake runs one sequence of syncs, failures and restarts against the kernel and
// against a Fake, and compares the two tables after every step, so the Fake that the non-root
// tests trust cannot drift from the kernel unnoticed.
func TestKernelMatchesFake(t *testing.T) {
	ns := newNetNS(t, "fakecheck")
	fake := NewFake()
	cfg := Config{MaxElementsPerMessage: 3} // several messages per set
	kernelSyncer := newSyncerIn(t, ns, cfg)
	fakeSyncer, err := fake.NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b, c, d := ep("10.88.0.1", 8080), ep("10.88.0.2", 8080), ep("10.88.0.3", 8080), ep("10.88.0.4", 8080)

	steps := []struct {
		name    string
		before  func() // done to both before the sync
		restart bool   // a new Syncer on both sides, as after a proxy restart
		desired []ServicePort
		errno   unix.Errno // the sync fails with it on both sides
	}{
		{name: "initial", desired: []ServicePort{
			svc("web", "10.96.0.1", TCP, 80, a, b),
			svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.5", 53)),
			svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
			svc("idle", "10.96.0.20", TCP, 443),
			svc("cache", "10.96.0.30", TCP, 6379, a, b, c, d),
		}},
		{name: "endpoints change, idle gets one, cache loses all", desired: []ServicePort{
			svc("web", "10.96.0.1", TCP, 80, a, d, c),
			svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.6", 53)),
			svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
			svc("idle", "10.96.0.20", TCP, 443, b),
			svc("cache", "10.96.0.30", TCP, 6379),
		}},
		{name: "services removed and added", desired: []ServicePort{
			svc("web", "10.96.0.1", TCP, 80, a, d, c),
			svc("new", "10.96.0.40", UDP, 5000, a, b, c, d, ep("10.88.0.7", 1)),
			svc("odd-ports", "10.96.0.41", TCP, 65535, ep("10.88.0.8", 1)),
		}},
		{name: "everything removed"},
		{name: "table deleted behind the syncer's back", before: func() {
			if err := ns.Do(func() error {
				c, err := nftables.New()
				if err != nil {
					return err
				}
				c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: DefaultTable})
				return c.Flush()
			}); err != nil {
				t.Fatal(err)
			}
			if err := fake.DeleteTable(DefaultTable); err != nil {
				t.Fatal(err)
			}
		}, desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a)}, errno: unix.ENOENT},
		{name: "the next sync is a full one", desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a)}},
		{name: "past the map sizes", desired: manyServices(2100, 2)},
		{name: "restart with fewer services", restart: true, desired: manyServices(10, 3)},
	}
	for _, step := range steps {
		if step.before != nil {
			step.before()
		}
		if step.restart {
			kernelSyncer = newSyncerIn(t, ns, cfg)
			if fakeSyncer, err = fake.NewSyncer(cfg); err != nil {
				t.Fatal(err)
			}
		}
		kernelErr := kernelSyncer.Sync(ctx, step.desired)
		fakeErr := fakeSyncer.Sync(ctx, step.desired)
		if step.errno != 0 {
			if !errors.Is(kernelErr, step.errno) || !errors.Is(fakeErr, step.errno) {
				t.Fatalf("step %q: kernel error %v, fake error %v; want both to wrap %v", step.name, kernelErr, fakeErr, step.errno)
			}
		} else if kernelErr != nil || fakeErr != nil {
			t.Fatalf("step %q: kernel error %v, fake error %v", step.name, kernelErr, fakeErr)
		}
		kernel, faked := dumpKernel(t, ns), fake.Dump()
		if diff := cmp.Diff(kernel, faked); diff != "" {
			t.Fatalf("step %q: the Fake's tables differ from the kernel's (-kernel +fake):\n%s", step.name, diff)
		}
		if step.name == "initial" {
			t.Logf("both hold:\n%s", kernel)
		}
	}
}
