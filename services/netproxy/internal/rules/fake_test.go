package rules

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

// Tests of the Syncer against a Fake: the logic of full and incremental syncs, failures and
// restarts, without root. TestKernelMatchesFake checks that the Fake agrees with the kernel.

func newFakeSyncer(t *testing.T, f *Fake, cfg Config) *Syncer {
	t.Helper()
	s, err := f.NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeStep is one step of a golden sequence.
type fakeStep struct {
	name    string
	before  func(t *testing.T, f *Fake)
	restart bool // a new Syncer, as after a proxy restart
	desired []ServicePort
	wantErr []error // the sync fails with an error wrapping each
}

// runGoldenSteps runs steps against a Fake and returns, for each, what the sync sent and the
// tables after it.
func runGoldenSteps(t *testing.T, f *Fake, cfg Config, steps []fakeStep) string {
	t.Helper()
	s := newFakeSyncer(t, f, cfg)
	var out strings.Builder
	for i, step := range steps {
		if step.before != nil {
			step.before(t, f)
		}
		if step.restart {
			s = newFakeSyncer(t, f, cfg)
		}
		before := f.Transactions()
		err := s.Sync(context.Background(), step.desired)
		fmt.Fprintf(&out, "=== step %d: %s\n", i+1, step.name)
		switch {
		case len(step.wantErr) > 0:
			for _, want := range step.wantErr {
				if !errors.Is(err, want) {
					t.Fatalf("step %q: Sync error = %v, want one wrapping %v", step.name, err, want)
				}
			}
			if f.Transactions() != before {
				t.Fatalf("step %q: a failed sync was applied", step.name)
			}
			fmt.Fprintf(&out, "--- sync failed: %v\n", err)
		case err != nil:
			t.Fatalf("step %q: Sync: %v", step.name, err)
		case f.Transactions() == before:
			out.WriteString("--- nothing sent\n")
		default:
			fmt.Fprintf(&out, "--- transaction\n%s", f.LastTransaction())
		}
		fmt.Fprintf(&out, "--- tables\n%s\n", f.Dump())
	}
	return out.String()
}

func TestFakeSyncGolden(t *testing.T) {
	a, b, c, d := ep("10.88.0.1", 8080), ep("10.88.0.2", 8080), ep("10.88.0.3", 8080), ep("10.88.0.4", 8080)
	five := []Endpoint{ep("10.88.0.1", 80), ep("10.88.0.2", 80), ep("10.88.0.3", 80), ep("10.88.0.4", 80), ep("10.88.0.5", 80)}
	deleteTable := func(t *testing.T, f *Fake) {
		if err := f.DeleteTable(DefaultTable); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		cfg   Config
		other []ServicePort // written first to table "other" by another Syncer, which must not change
		steps []fakeStep
	}{
		{
			name: "incremental",
			cfg:  Config{MaxElementsPerMessage: 2}, // several messages per set; the dump must not care
			steps: []fakeStep{
				{name: "initial", desired: []ServicePort{
					svc("web", "10.96.0.1", TCP, 80, a, b),
					svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.5", 53)),
					svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
					svc("idle", "10.96.0.20", TCP, 443),
					svc("cache", "10.96.0.30", TCP, 6379, a, b, c, d),
				}},
				{name: "unchanged, in another order, endpoints repeated", desired: []ServicePort{
					svc("cache", "10.96.0.30", TCP, 6379, d, c, b, a, a),
					svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
					svc("web", "10.96.0.1", TCP, 80, b, a),
					svc("idle", "10.96.0.20", TCP, 443),
					svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.5", 53)),
				}},
				{name: "web gets an endpoint: lb-3 appears", desired: []ServicePort{
					svc("web", "10.96.0.1", TCP, 80, a, b, c),
					svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.5", 53)),
					svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
					svc("idle", "10.96.0.20", TCP, 443),
					svc("cache", "10.96.0.30", TCP, 6379, a, b, c, d),
				}},
				{name: "endpoints replaced, idle gets one, cache loses all", desired: []ServicePort{
					svc("web", "10.96.0.1", TCP, 80, a, d, c),
					svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.6", 53)),
					svc("dns-tcp", "10.96.0.10", TCP, 53, ep("10.88.0.5", 53)),
					svc("idle", "10.96.0.20", TCP, 443, b),
					svc("cache", "10.96.0.30", TCP, 6379),
				}},
				{name: "services deleted and added", desired: []ServicePort{
					svc("web", "10.96.0.1", TCP, 80, a, d, c),
					svc("new", "10.96.0.40", UDP, 5000, append(slices.Clone(five), ep("10.88.0.5", 80))...),
					svc("highest-port", "10.96.0.41", TCP, 65535, ep("10.88.0.8", 1)),
				}},
				{name: "everything deleted: lb chains stay until the next full sync"},
				{name: "back again", desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a)}},
			},
		},
		{
			name: "failures",
			steps: []fakeStep{
				{name: "initial", desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a, b)}},
				{
					name:    "the kernel refuses the transaction: nothing changes",
					before:  func(t *testing.T, f *Fake) { f.FailNextTransaction(unix.ENOMEM) },
					desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a), svc("api", "10.96.0.2", TCP, 443, c)},
					wantErr: []error{events.ErrUnavailable, unix.ENOMEM},
				},
				{name: "the retry replaces the table whole", desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a), svc("api", "10.96.0.2", TCP, 443, c)}},
				{
					name:    "the table is deleted behind the Syncer's back",
					before:  deleteTable,
					desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a, b)},
					wantErr: []error{events.ErrUnavailable, unix.ENOENT},
				},
				{name: "the next sync writes it again", desired: []ServicePort{svc("web", "10.96.0.1", TCP, 80, a, b)}},
			},
		},
		{
			name:  "restart",
			other: []ServicePort{svc("bystander", "192.0.2.1", TCP, 22, ep("192.0.2.2", 22))},
			steps: []fakeStep{
				{name: "a proxy writes its services, then is killed", desired: []ServicePort{
					svc("old", "10.96.0.1", TCP, 80, five...),
					svc("gone", "10.96.0.2", UDP, 53, ep("10.88.0.1", 53)),
					svc("idle", "10.96.0.3", TCP, 443),
				}},
				{name: "the next one replaces the table whole: no stale element, no lb-5", restart: true, desired: []ServicePort{
					svc("old", "10.96.0.1", TCP, 80, ep("10.88.0.9", 80)),
					svc("new", "10.96.0.4", TCP, 8080, ep("10.88.0.7", 80), ep("10.88.0.8", 80)),
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake()
			if tt.other != nil {
				if err := newFakeSyncer(t, f, Config{Table: "other"}).Sync(context.Background(), tt.other); err != nil {
					t.Fatal(err)
				}
			}
			other := dumpOf(f, "other")
			got := runGoldenSteps(t, f, tt.cfg, tt.steps)
			if after := dumpOf(f, "other"); after != other {
				t.Errorf("table other changed:\nbefore:\n%s\nafter:\n%s", other, after)
			}
			eventstest.Golden(t, filepath.Join("testdata", "fake", strings.ReplaceAll(tt.name, " ", "-")+".golden"), got)
		})
	}
}

// dumpOf returns the lines of Fake.Dump that belong to table ip <table>.
func dumpOf(f *Fake, table string) string {
	var out []string
	for _, l := range strings.Split(f.Dump(), "\n") {
		if strings.Contains(l, " ip "+table+" ") || strings.HasSuffix(l, " ip "+table) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// modelFromDump reads the elements and chains of table ip skiff out of a dump, for comparison
// with wantModel.
func modelFromDump(t testing.TB, dump string) tableModel {
	t.Helper()
	m := tableModel{ServiceIPs: map[string]string{}, Endpoints: map[string]string{}}
	for _, l := range strings.Split(dump, "\n") {
		if name, ok := strings.CutPrefix(l, "add chain ip skiff "); ok {
			name, _, _ = strings.Cut(name, " ")
			m.Chains = append(m.Chains, name)
			continue
		}
		rest, ok := strings.CutPrefix(l, "add element ip skiff ")
		if !ok {
			continue
		}
		set, elem, ok := strings.Cut(rest, " { ")
		elem, ok2 := strings.CutSuffix(elem, " }")
		if !ok || !ok2 {
			t.Fatalf("undecodable element line %q", l)
		}
		key, val, _ := strings.Cut(elem, " : ")
		switch set {
		case mapServiceIPs:
			if _, dup := m.ServiceIPs[key]; dup {
				t.Fatalf("element %s twice in service-ips", key)
			}
			m.ServiceIPs[key] = val
		case mapEndpoints:
			// "VIP . proto . port . slot : IP . port" to wantModel's "IP:port".
			ip, port, _ := strings.Cut(val, " . ")
			m.Endpoints[key] = ip + ":" + port
		case setNoEndpoints:
			m.NoEndpoints = append(m.NoEndpoints, key)
		default:
			t.Fatalf("element of unknown set %s", set)
		}
	}
	slices.Sort(m.NoEndpoints)
	slices.Sort(m.Chains)
	return m
}

// checkFakeModel compares the Fake's table ip skiff with desired, and checks that every lb-N
// chain a verdict jumps to exists.
func checkFakeModel(t *testing.T, f *Fake, desired []ServicePort) {
	t.Helper()
	got, want := modelFromDump(t, f.Dump()), wantModel(desired)
	// cmp.Diff takes a while on 30,000 elements: only for the message.
	if !maps.Equal(want.ServiceIPs, got.ServiceIPs) || !maps.Equal(want.Endpoints, got.Endpoints) || !slices.Equal(want.NoEndpoints, got.NoEndpoints) {
		diff := cmp.Diff(want, got, cmpopts.IgnoreFields(tableModel{}, "Chains"), cmpopts.EquateEmpty())
		t.Errorf("the Fake's elements differ from desired (-want +got):\n%s", diff)
	}
	for _, v := range got.ServiceIPs {
		if chain := strings.TrimPrefix(v, "goto "); !slices.Contains(got.Chains, chain) {
			t.Errorf("service-ips jumps to %s, which is not in the table (chains %v)", chain, got.Chains)
		}
	}
}

func TestFakeManyServicesAddOneIsThreeElements(t *testing.T) {
	f := NewFake()
	s := newFakeSyncer(t, f, Config{})
	ctx := context.Background()
	desired := manyServices(10000, 2)
	if err := s.Sync(ctx, desired); err != nil {
		t.Fatal(err)
	}
	checkFakeModel(t, f, desired)

	desired = append(desired, svc("one-more", "10.97.0.1", TCP, 80, ep("10.89.0.1", 80), ep("10.89.0.2", 80)))
	if err := s.Sync(ctx, desired); err != nil {
		t.Fatal(err)
	}
	want := "add element ip skiff endpoints { 10.97.0.1 . tcp . 80 . 0 : 10.89.0.1 . 80 }\n" +
		"add element ip skiff endpoints { 10.97.0.1 . tcp . 80 . 1 : 10.89.0.2 . 80 }\n" +
		"add element ip skiff service-ips { 10.97.0.1 . tcp . 80 : goto lb-2 }\n"
	if diff := cmp.Diff(want, f.LastTransaction()); diff != "" {
		t.Errorf("adding one Service to 10,000 sent (-want +got):\n%s", diff)
	}
	checkFakeModel(t, f, desired)

	// Deleting a Service in the middle deletes its three elements only.
	desired = slices.Delete(desired, 5000, 5001)
	if err := s.Sync(ctx, desired); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(f.LastTransaction(), "\n"); n != 3 {
		t.Errorf("deleting one Service sent %d operations, want 3:\n%s", n, f.LastTransaction())
	}
	checkFakeModel(t, f, desired)
}

func TestFakeFullMapsGrowWithAFullSync(t *testing.T) {
	f := NewFake()
	s := newFakeSyncer(t, f, Config{})
	ctx := context.Background()
	if err := s.Sync(ctx, manyServices(100, 2)); err != nil {
		t.Fatal(err)
	}
	// 3,000 Services with 2 endpoints each overflow the endpoints map of 4,096: the Fake refuses
	// elements past a map's size as the kernel does, so only a new table lets them in.
	large := manyServices(3000, 2)
	if err := s.Sync(ctx, large); err != nil {
		t.Fatalf("Sync past the map size: %v", err)
	}
	tx := f.LastTransaction()
	if !strings.HasPrefix(tx, "add table ip skiff\ndelete table ip skiff\n") {
		t.Errorf("the sync past the map size was not a full one:\n%.300s", tx)
	}
	if want := "add map ip skiff endpoints { type ipv4_addr . inet_proto . inet_service . integer : ipv4_addr . inet_service; size 16384; }"; !strings.Contains(f.Dump(), want) {
		t.Errorf("the endpoints map was not re-created with size 16384")
	}
	checkFakeModel(t, f, large)
}

func TestFakeInvalidInputChangesNothing(t *testing.T) {
	f := NewFake()
	s := newFakeSyncer(t, f, Config{})
	ctx := context.Background()
	state := []ServicePort{svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80))}
	if err := s.Sync(ctx, state); err != nil {
		t.Fatal(err)
	}
	before, n := f.Dump(), f.Transactions()
	err := s.Sync(ctx, append(state, svc("dup", "10.96.0.1", TCP, 80)))
	if !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("Sync with a duplicate port: error = %v, want events.ErrInvalidArgument", err)
	}
	if f.Dump() != before || f.Transactions() != n {
		t.Errorf("a refused Sync changed the table:\n%s", f.Dump())
	}
	// Invalid input does not force a full sync: the next one sends only the change.
	next := append(state, svc("api", "10.96.0.2", TCP, 80))
	if err := s.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	if want := "add element ip skiff no-endpoints { 10.96.0.2 . tcp . 80 }\n"; f.LastTransaction() != want {
		t.Errorf("the sync after refused input sent:\n%s\nwant:\n%s", f.LastTransaction(), want)
	}
}

func TestFakeSyncAfterCloseOrCancel(t *testing.T) {
	f := NewFake()
	s := newFakeSyncer(t, f, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Sync(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync with a cancelled context: error = %v, want context.Canceled", err)
	}
	if d := f.Dump(); d != "" {
		t.Errorf("a cancelled Sync wrote:\n%s", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background(), nil); !errors.Is(err, events.ErrFailedPrecondition) {
		t.Errorf("Sync after Close: error = %v, want events.ErrFailedPrecondition", err)
	}
}

func TestFakeConcurrentSyncsAreSerialized(t *testing.T) {
	f := NewFake()
	s := newFakeSyncer(t, f, Config{MaxElementsPerMessage: 50})
	ctx := context.Background()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			for i := range 10 {
				if err = s.Sync(ctx, manyServices(50*(g+1)+i, 1+(g+i)%3)); err != nil {
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
	checkFakeModel(t, f, final)
}

// TestFakeAppliesABatchWholeOrNotAtAll sends batches whose last message the kernel refuses:
// whatever the earlier messages did must be gone, and the error must name the refused message.
func TestFakeAppliesABatchWholeOrNotAtAll(t *testing.T) {
	key := newSvcKey([4]byte{10, 96, 0, 1}, TCP, 80)
	// base writes a table with its sets and chains and one service with one endpoint.
	base := func(b *batch) {
		b.addTable("t", "add table t")
		for _, s := range tableSets {
			b.addSet("t", s, 2)
		}
		for _, c := range baseChains {
			b.addBaseChain("t", c)
		}
		b.addChain("t", "lb-1")
		w := b.elements("t", mapEndpoints, true, 10)
		at := w.next(key, 0)
		w.key(key, 0)
		w.endpointValue(newEpKey([4]byte{10, 88, 0, 1}, 80))
		b.end(at)
		w.flush()
	}
	addServiceIP := func(b *batch, k svcKey, chain string) {
		w := b.elements("t", mapServiceIPs, true, 10)
		at := w.next(k, -1)
		w.key(k, -1)
		w.gotoValue(chain)
		b.end(at)
		w.flush()
	}
	tests := []struct {
		name  string
		build func(b *batch)
		errno unix.Errno
		what  string // the start of the refused message's description
	}{
		{"goto a missing chain", func(b *batch) { base(b); addServiceIP(b, key, "lb-7") }, unix.ENOENT, "add 1 elements of service-ips"},
		{"goto a base chain", func(b *batch) { base(b); addServiceIP(b, key, chainNATOutput) }, unix.EOPNOTSUPP, "add 1 elements of service-ips"},
		{"a map element's value changed", func(b *batch) {
			base(b)
			w := b.elements("t", mapEndpoints, true, 10)
			at := w.next(key, 0)
			w.key(key, 0)
			w.endpointValue(newEpKey([4]byte{10, 88, 0, 2}, 80))
			b.end(at)
			w.flush()
		}, unix.EEXIST, "add 1 elements of endpoints"},
		{"delete a missing element", func(b *batch) {
			base(b)
			w := b.elements("t", setNoEndpoints, false, 10)
			at := w.next(key, -1)
			w.key(key, -1)
			b.end(at)
			w.flush()
		}, unix.ENOENT, "delete 1 elements of no-endpoints"},
		{"a map past its size", func(b *batch) {
			base(b)
			for i := range 3 {
				addServiceIP(b, newSvcKey([4]byte{10, 96, 0, byte(i)}, TCP, 80), "lb-1")
			}
		}, unix.ENFILE, "add 1 elements of service-ips"},
		{"a rule in a missing chain", func(b *batch) {
			base(b)
			if err := b.addRule("t", "lb-2", lbRuleExprs(2)); err != nil {
				t.Fatal(err)
			}
		}, unix.ENOENT, "add rule to chain lb-2"},
		{"a table deleted twice", func(b *batch) { base(b); b.delTable("t"); b.delTable("t") }, unix.ENOENT, "delete table t"},
		{"a key of the wrong length", func(b *batch) {
			base(b)
			b.startNFT(unix.NFT_MSG_NEWSETELEM, unix.NLM_F_CREATE, "add a short key")
			b.attrString(unix.NFTA_SET_ELEM_LIST_TABLE, "t")
			b.attrString(unix.NFTA_SET_ELEM_LIST_SET, setNoEndpoints)
			list := b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
			elem := b.nest(unix.NFTA_LIST_ELEM)
			k := b.nest(unix.NFTA_SET_ELEM_KEY)
			b.attr(unix.NFTA_DATA_VALUE, []byte{10, 96, 0, 1})
			b.end(k)
			b.end(elem)
			b.end(list)
			b.finish()
		}, unix.EINVAL, "add a short key"},
		{"a message the fake does not model", func(b *batch) {
			base(b)
			b.startNFT(unix.NFT_MSG_DELCHAIN, 0, "delete chain lb-1")
			b.attrString(unix.NFTA_CHAIN_TABLE, "t")
			b.attrString(unix.NFTA_CHAIN_NAME, "lb-1")
			b.finish()
		}, unix.EOPNOTSUPP, "delete chain lb-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake()
			// The base batch alone is accepted.
			ok := newBatch(1, 4096)
			base(ok)
			ok.close()
			if err := f.transact(context.Background(), ok); err != nil {
				t.Fatalf("the base batch was refused: %v", err)
			}
			if err := f.DeleteTable("t"); err != nil {
				t.Fatal(err)
			}

			b := newBatch(1, 4096)
			tt.build(b)
			b.close()
			err := f.transact(context.Background(), b)
			var ke *kernelError
			if !errors.As(err, &ke) || ke.errno != tt.errno || !strings.HasPrefix(ke.what, tt.what) {
				t.Fatalf("transact error = %v, want a kernel error %v for %q", err, tt.errno, tt.what)
			}
			if d := f.Dump(); d != "" {
				t.Errorf("a refused batch left:\n%s", d)
			}
		})
	}
}
