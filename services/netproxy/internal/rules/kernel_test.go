package rules

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"skiff.dev/events"
)

// Real-kernel tests: each one works in its own network namespace (see netns_test.go).

// listTable returns `nft list table ip <table>` from inside ns.
func listTable(t *testing.T, ns *netNS, table string) string {
	t.Helper()
	return ns.mustRun(t, "nft", "list", "table", "ip", table)
}

var lbChainBlock = regexp.MustCompile(`(?s)\tchain lb-(\d+) \{\n.*?\n\t\}\n`)

// normalize makes two listings of the same table comparable: the kernel lists set elements in
// hash order and lb-N chains in creation order, Render sorts both. With dropUnused, for a table
// written by incremental syncs, lb-N chains that no service-ips element jumps to are left out
// (incremental syncs never delete chains), and so are map sizes (only full syncs set them).
func normalize(listing string, dropUnused bool) string {
	listing = strings.ReplaceAll(listing, ",\n\t\t\t     ", ", ")
	lines := strings.Split(listing, "\n")
	if dropUnused {
		// Map sizes are set by the last full sync, Render sets them for its list.
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "\t\tsize ") })
	}
	for i, l := range lines {
		const prefix = "\t\telements = { "
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			elems := strings.Split(strings.TrimSuffix(rest, " }"), ", ")
			slices.Sort(elems)
			lines[i] = prefix + strings.Join(elems, ", ") + " }"
		}
	}
	listing = strings.Join(lines, "\n")

	var chains []string
	listing = lbChainBlock.ReplaceAllStringFunc(listing, func(block string) string {
		n := lbChainBlock.FindStringSubmatch(block)[1]
		if !dropUnused || strings.Contains(listing, "goto lb-"+n+",") || strings.Contains(listing, "goto lb-"+n+" }") {
			chains = append(chains, block)
		}
		return ""
	})
	slices.SortFunc(chains, func(a, b string) int {
		na, _ := strconv.Atoi(lbChainBlock.FindStringSubmatch(a)[1])
		nb, _ := strconv.Atoi(lbChainBlock.FindStringSubmatch(b)[1])
		return na - nb
	})
	listing = strings.TrimRight(strings.TrimSuffix(listing, "}\n"), "\n") + "\n"
	for _, c := range chains {
		listing += "\n" + c
	}
	return listing + "}\n"
}

func mustRender(t *testing.T, table string, desired []ServicePort) string {
	t.Helper()
	out, err := Render(table, desired)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return out
}

// checkTable compares the kernel's table, as nft lists it, with Render(desired).
func checkTable(t *testing.T, ns *netNS, table string, desired []ServicePort, dropUnused bool) {
	t.Helper()
	got := normalize(listTable(t, ns, table), dropUnused)
	want := normalize(mustRender(t, table, desired), dropUnused)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nft list table ip %s differs from Render (-want +got):\n%s", table, diff)
	}
}

// tableModel is the content of the table as read back through google/nftables.
type tableModel struct {
	ServiceIPs  map[string]string
	Endpoints   map[string]string
	NoEndpoints []string
	Chains      []string
}

func decodeServiceKey(b []byte) string {
	k := newSvcKey([4]byte(b[0:4]), Protocol(b[4]), binary.BigEndian.Uint16(b[8:10]))
	return k.String()
}

func decodeVerdict(b []byte) string {
	a := attrs(b)
	code := int32(binary.BigEndian.Uint32(a[unix.NFTA_VERDICT_CODE][0]))
	if code != unix.NFT_GOTO {
		return fmt.Sprintf("verdict %d", code)
	}
	return "goto " + strings.TrimRight(string(a[unix.NFTA_VERDICT_CHAIN][0]), "\x00")
}

// readTable reads the table through netlink with google/nftables.
func readTable(t *testing.T, ns *netNS, table string) tableModel {
	t.Helper()
	m := tableModel{ServiceIPs: map[string]string{}, Endpoints: map[string]string{}}
	err := ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tbl, err := c.ListTableOfFamily(table, nftables.TableFamilyIPv4)
		if err != nil {
			return fmt.Errorf("list table: %w", err)
		}
		get := func(name string) ([]nftables.SetElement, error) {
			set, err := c.GetSetByName(tbl, name)
			if err != nil {
				return nil, fmt.Errorf("get set %s: %w", name, err)
			}
			return c.GetSetElements(set)
		}
		elems, err := get(mapServiceIPs)
		if err != nil {
			return err
		}
		for _, e := range elems {
			m.ServiceIPs[decodeServiceKey(e.Key)] = decodeVerdict(e.Val)
		}
		if elems, err = get(mapEndpoints); err != nil {
			return err
		}
		for _, e := range elems {
			slot := binary.NativeEndian.Uint32(e.Key[12:16])
			ep := Endpoint{IP: netip.AddrFrom4([4]byte(e.Val[0:4])), Port: binary.BigEndian.Uint16(e.Val[4:6])}
			m.Endpoints[fmt.Sprintf("%s . %d", decodeServiceKey(e.Key), slot)] = ep.String()
		}
		if elems, err = get(setNoEndpoints); err != nil {
			return err
		}
		for _, e := range elems {
			m.NoEndpoints = append(m.NoEndpoints, decodeServiceKey(e.Key))
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
		if err != nil {
			return err
		}
		for _, ch := range chains {
			if ch.Table.Name == table {
				m.Chains = append(m.Chains, ch.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read table %s back through netlink: %v", table, err)
	}
	slices.Sort(m.NoEndpoints)
	slices.Sort(m.Chains)
	return m
}

// wantModel is what the table must hold for desired, computed independently of the encoder.
func wantModel(desired []ServicePort) tableModel {
	m := tableModel{ServiceIPs: map[string]string{}, Endpoints: map[string]string{}}
	for _, sp := range desired {
		k := newSvcKey(sp.VIP.As4(), sp.Protocol, sp.Port)
		eps := slices.Clone(sp.Endpoints)
		slices.SortFunc(eps, func(a, b Endpoint) int {
			if c := a.IP.Compare(b.IP); c != 0 {
				return c
			}
			return int(a.Port) - int(b.Port)
		})
		eps = slices.Compact(eps)
		if len(eps) == 0 {
			m.NoEndpoints = append(m.NoEndpoints, k.String())
			continue
		}
		m.ServiceIPs[k.String()] = fmt.Sprintf("goto lb-%d", len(eps))
		for i, e := range eps {
			m.Endpoints[fmt.Sprintf("%s . %d", k, i)] = e.String()
		}
	}
	slices.Sort(m.NoEndpoints)
	return m
}

// checkModel compares the elements read back through netlink with desired, and checks that every
// lb-N chain a verdict needs exists.
func checkModel(t *testing.T, ns *netNS, desired []ServicePort) tableModel {
	t.Helper()
	got := readTable(t, ns, DefaultTable)
	want := wantModel(desired)
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(tableModel{}, "Chains"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("table elements read back through netlink differ from desired (-want +got):\n%s", diff)
	}
	for _, v := range got.ServiceIPs {
		if chain := strings.TrimPrefix(v, "goto "); !slices.Contains(got.Chains, chain) {
			t.Errorf("service-ips jumps to %s, which is not in the table (chains %v)", chain, got.Chains)
		}
	}
	return got
}

func TestKernelSyncMatchesDesired(t *testing.T) {
	ns := newNetNS(t, "sync")
	s := newSyncerIn(t, ns, Config{MaxElementsPerMessage: 3}) // small, to send several messages per set
	ctx := context.Background()

	a, b, c, d := ep("10.88.0.1", 8080), ep("10.88.0.2", 8080), ep("10.88.0.3", 8080), ep("10.88.0.4", 8080)
	steps := []struct {
		name    string
		desired []ServicePort
	}{
		{"initial", []ServicePort{
			svc("web", "10.96.0.1", TCP, 80, a, b),
			svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.5", 53)),
			svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
			svc("idle", "10.96.0.20", TCP, 443),
			svc("cache", "10.96.0.30", TCP, 6379, a, b, c, d),
		}},
		{"endpoint added", []ServicePort{
			svc("web", "10.96.0.1", TCP, 80, a, b, c),
			svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.5", 53)),
			svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
			svc("idle", "10.96.0.20", TCP, 443),
			svc("cache", "10.96.0.30", TCP, 6379, a, b, c, d),
		}},
		{"endpoints replaced, idle gets one, cache loses all", []ServicePort{
			svc("web", "10.96.0.1", TCP, 80, a, d, c),
			svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.6", 53)),
			svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
			svc("idle", "10.96.0.20", TCP, 443, b),
			svc("cache", "10.96.0.30", TCP, 6379),
		}},
		{"services removed and added", []ServicePort{
			svc("web", "10.96.0.1", TCP, 80, a, d, c),
			svc("new", "10.96.0.40", UDP, 5000, a, b, c, d, ep("10.88.0.7", 1)),
		}},
		{"everything removed", nil},
		{"back again", []ServicePort{svc("web", "10.96.0.1", TCP, 80, a)}},
	}
	for _, step := range steps {
		if err := s.Sync(ctx, step.desired); err != nil {
			t.Fatalf("step %q: Sync: %v", step.name, err)
		}
		checkTable(t, ns, DefaultTable, step.desired, true)
		got := checkModel(t, ns, step.desired)
		if t.Failed() {
			t.Fatalf("step %q failed", step.name)
		}
		// Incremental syncs only ever add chains.
		for _, base := range baseChains {
			if !slices.Contains(got.Chains, base.name) {
				t.Fatalf("step %q: base chain %s missing", step.name, base.name)
			}
		}
	}
	if got := readTable(t, ns, DefaultTable).Chains; !slices.Contains(got, "lb-4") || !slices.Contains(got, "lb-5") {
		t.Errorf("chains %v: lb-4 and lb-5 should have stayed after their services went", got)
	}
}

func TestKernelNftListsTheTableWithTypeof(t *testing.T) {
	// The point of the typeof userdata: nft itself must be able to print the table, with the
	// declarations, not raw types.
	ns := newNetNS(t, "typeof")
	s := newSyncerIn(t, ns, Config{})
	if err := s.Sync(context.Background(), []ServicePort{svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80))}); err != nil {
		t.Fatal(err)
	}
	out := listTable(t, ns, DefaultTable)
	for _, want := range []string{
		"typeof ip daddr . meta l4proto . th dport : verdict",
		"typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport",
		"10.96.0.1 . tcp . 80 . 0 : 10.88.0.1 . 80",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nft list table lacks %q:\n%s", want, out)
		}
	}
	// And the JSON form, which tools parse.
	if out := ns.mustRun(t, "nft", "-j", "list", "table", "ip", DefaultTable); !strings.Contains(out, `"name": "endpoints"`) && !strings.Contains(out, `"name":"endpoints"`) {
		t.Errorf("nft -j list table lacks the endpoints map:\n%s", out)
	}
}

// addBystander creates another program's table through google/nftables.
func addBystander(t *testing.T, ns *netNS) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "bystander"})
		c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
		set := &nftables.Set{Table: tbl, Name: "allowed", KeyType: nftables.TypeIPAddr}
		if err := c.AddSet(set, []nftables.SetElement{{Key: []byte{192, 0, 2, 1}}}); err != nil {
			return err
		}
		return c.Flush()
	})
	if err != nil {
		t.Fatalf("create bystander table: %v", err)
	}
}

func TestKernelRestartReplacesStaleTableAndNothingElse(t *testing.T) {
	ns := newNetNS(t, "restart")
	addBystander(t, ns)
	bystander := listTable(t, ns, "bystander")
	ctx := context.Background()

	// The previous proxy wrote A, then was killed without cleaning up.
	stateA := []ServicePort{
		svc("old", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80), ep("10.88.0.2", 80), ep("10.88.0.3", 80), ep("10.88.0.4", 80), ep("10.88.0.5", 80)),
		svc("gone", "10.96.0.2", UDP, 53, ep("10.88.0.1", 53)),
		svc("idle", "10.96.0.3", TCP, 443),
	}
	old := newSyncerIn(t, ns, Config{})
	if err := old.Sync(ctx, stateA); err != nil {
		t.Fatal(err)
	}
	checkTable(t, ns, DefaultTable, stateA, false)

	// The new proxy knows B only; its first sync must leave exactly B (no lb-5, no stale elements).
	stateB := []ServicePort{
		svc("old", "10.96.0.1", TCP, 80, ep("10.88.0.9", 80)),
		svc("new", "10.96.0.4", TCP, 8080, ep("10.88.0.7", 80), ep("10.88.0.8", 80)),
	}
	s := newSyncerIn(t, ns, Config{})
	if err := s.Sync(ctx, stateB); err != nil {
		t.Fatal(err)
	}
	checkTable(t, ns, DefaultTable, stateB, false) // strict: no leftover chain either
	checkModel(t, ns, stateB)

	if got := listTable(t, ns, "bystander"); got != bystander {
		t.Errorf("another program's table changed:\nbefore:\n%s\nafter:\n%s", bystander, got)
	}
}

func TestKernelFailedSyncForcesFullSync(t *testing.T) {
	ns := newNetNS(t, "recover")
	s := newSyncerIn(t, ns, Config{})
	ctx := context.Background()
	stateA := []ServicePort{svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80))}
	if err := s.Sync(ctx, stateA); err != nil {
		t.Fatal(err)
	}

	// Someone deletes the table behind the Syncer's back; its next incremental sync fails.
	if err := ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: DefaultTable})
		return c.Flush()
	}); err != nil {
		t.Fatalf("delete table: %v", err)
	}
	stateB := []ServicePort{
		svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80), ep("10.88.0.2", 80)),
		svc("api", "10.96.0.2", TCP, 443),
	}
	err := s.Sync(ctx, stateB)
	if !errors.Is(err, events.ErrUnavailable) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Sync on a deleted table: error = %v, want events.ErrUnavailable wrapping ENOENT", err)
	}
	t.Logf("the failed sync said: %v", err)

	// The next one replaces the table whole and succeeds.
	if err := s.Sync(ctx, stateB); err != nil {
		t.Fatalf("Sync after a failure: %v", err)
	}
	checkTable(t, ns, DefaultTable, stateB, false)
	checkModel(t, ns, stateB)
}

func TestKernelInvalidInputChangesNothing(t *testing.T) {
	ns := newNetNS(t, "invalid")
	s := newSyncerIn(t, ns, Config{})
	ctx := context.Background()
	state := []ServicePort{svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80))}
	if err := s.Sync(ctx, state); err != nil {
		t.Fatal(err)
	}
	before := listTable(t, ns, DefaultTable)
	err := s.Sync(ctx, append(state, svc("dup", "10.96.0.1", TCP, 80)))
	if !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("Sync with a duplicate port: error = %v, want events.ErrInvalidArgument", err)
	}
	if after := listTable(t, ns, DefaultTable); after != before {
		t.Errorf("a refused Sync changed the table:\n%s", after)
	}
	if s.needFull {
		t.Errorf("invalid input must not force a full sync")
	}
}

func TestKernelLargeSyncRaisesSocketBuffer(t *testing.T) {
	// 20,000 Services make a transaction of about 3 MB, more than the default send buffer and
	// net.core.wmem_max.
	ns := newNetNS(t, "large")
	s := newSyncerIn(t, ns, Config{})
	desired := manyServices(20000, 2)
	if err := s.Sync(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	got := readTable(t, ns, DefaultTable)
	if len(got.ServiceIPs) != 20000 || len(got.Endpoints) != 40000 {
		t.Fatalf("table holds %d service-ips and %d endpoints elements, want 20000 and 40000", len(got.ServiceIPs), len(got.Endpoints))
	}
	if diff := cmp.Diff(wantModel(desired), got, cmpopts.IgnoreFields(tableModel{}, "Chains"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("elements differ (-want +got):\n%s", diff)
	}
}

func TestKernelSyncAfterCloseOrCancel(t *testing.T) {
	ns := newNetNS(t, "closed")
	s := newSyncerIn(t, ns, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Sync(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync with a cancelled context: error = %v, want context.Canceled", err)
	}
	if out, _ := ns.run("nft", "list", "table", "ip", DefaultTable); out != "" {
		t.Errorf("a cancelled Sync wrote the table:\n%s", out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background(), nil); !errors.Is(err, events.ErrFailedPrecondition) {
		t.Errorf("Sync after Close: error = %v, want events.ErrFailedPrecondition", err)
	}
}

func TestKernelFullMapsGrowWithAFullSync(t *testing.T) {
	ns := newNetNS(t, "grow")
	s := newSyncerIn(t, ns, Config{})
	ctx := context.Background()
	small := manyServices(100, 2)
	if err := s.Sync(ctx, small); err != nil {
		t.Fatal(err)
	}
	if out := listTable(t, ns, DefaultTable); !strings.Contains(out, "size 4096") {
		t.Fatalf("maps not created with the minimum size:\n%s", out)
	}
	// 3,000 Services with 2 endpoints each do not fit the endpoints map of 4,096: the Syncer must
	// re-create the table rather than have the kernel refuse the elements.
	large := manyServices(3000, 2)
	if err := s.Sync(ctx, large); err != nil {
		t.Fatalf("Sync past the map size: %v", err)
	}
	checkTable(t, ns, DefaultTable, large, false)
	checkModel(t, ns, large)
	if got, want := s.state.capEndpoints, uint32(16384); got != want { // room for twice the 6,000
		t.Errorf("endpoints map size = %d, want %d", got, want)
	}
}

func TestKernelConcurrentSyncsAreSerialized(t *testing.T) {
	ns := newNetNS(t, "concurrent")
	s := newSyncerIn(t, ns, Config{MaxElementsPerMessage: 50})
	ctx := context.Background()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			for i := range 10 {
				// Each goroutine's lists differ in size and endpoints, so consecutive syncs from
				// different goroutines add, change and remove elements.
				desired := manyServices(50*(g+1)+i, 1+(g+i)%3)
				if err = s.Sync(ctx, desired); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Sync: %v", err)
		}
	}
	final := manyServices(123, 2)
	if err := s.Sync(ctx, final); err != nil {
		t.Fatal(err)
	}
	checkTable(t, ns, DefaultTable, final, true)
	checkModel(t, ns, final)
}
