package rules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"skiff.dev/events"
)

// FuzzPlan drives a Syncer on a Fake through a few syncs of Services and Endpoints decoded from
// the fuzzer's bytes (odd ports and protocols, IPv6 and IPv4-mapped addresses, repeated
// endpoints, empty endpoint sets, deleted and reordered Services, kernel failures) and checks
// every step against a model that knows nothing of the plan: invalid input is refused and
// changes nothing; valid input leaves every Service port in the table once, leading to exactly
// its endpoints; a refused transaction changes nothing. A panic anywhere in plan, encode or
// the Fake fails it too. The seeds in testdata/fuzz/FuzzPlan run with every go test.
func FuzzPlan(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		fake := NewFake()
		s, err := fake.NewSyncer(Config{MaxElementsPerMessage: 1 + int(in.next()%4)})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var desired []ServicePort
		failPending := false
		for step := 0; step < 6 && len(in.b) > 0; step++ {
			desired = in.nextDesired(desired)
			if in.next()%8 == 0 && !failPending {
				fake.FailNextTransaction(unix.EIO)
				failPending = true
			}
			before, applied := fake.Dump(), fake.Transactions()
			err := s.Sync(ctx, desired)
			want, invalid := modelOf(desired)

			switch {
			case invalid != "":
				if !errors.Is(err, events.ErrInvalidArgument) {
					t.Fatalf("step %d: %s, but Sync returned %v\ndesired: %v", step, invalid, err, desired)
				}
			case errors.Is(err, events.ErrInvalidArgument):
				t.Fatalf("step %d: Sync refused valid input: %v\ndesired: %v", step, err, desired)
			case err != nil:
				// Only the injected failure may fail a valid sync: any other means the plan
				// sent something the kernel refuses.
				if !failPending || !errors.Is(err, events.ErrUnavailable) || !errors.Is(err, unix.EIO) {
					t.Fatalf("step %d: Sync: %v\ndesired: %v", step, err, desired)
				}
				failPending = false
			}
			if err != nil {
				if d := fake.Dump(); d != before || fake.Transactions() != applied {
					t.Fatalf("step %d: a failed Sync (%v) changed the tables:\nbefore:\n%s\nafter:\n%s", step, err, before, d)
				}
				continue
			}
			checkTableHolds(t, step, fake.Dump(), want)
		}
	})
}

// fuzzInput hands out the fuzzer's bytes; past the end it hands out zeros.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) next() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

// The values the fuzzer picks from: mostly valid ones that collide often, and a few invalid.
var (
	fuzzVIPs = []netip.Addr{
		ip("10.96.0.1"), ip("10.96.0.2"), ip("10.96.0.3"), ip("10.96.1.0"), ip("10.96.255.255"), ip("0.0.0.0"),
		ip("255.255.255.255"), ip("10.96.0.1"),
		ip("::ffff:10.96.0.1"), // the same VIP as 10.96.0.1
		ip("fd00::1"),          // invalid: IPv6
		{},                     // invalid: no address
	}
	fuzzIPs = []netip.Addr{
		ip("10.88.0.1"), ip("10.88.0.2"), ip("10.88.0.3"), ip("10.88.1.1"), ip("10.88.0.1"), ip("10.96.0.1"),
		ip("::ffff:10.88.0.2"), ip("fd00::2"), {},
	}
	fuzzPorts = []uint16{80, 53, 1, 65535, 8080, 443, 80, 0}
)

func (in *fuzzInput) port() uint16 {
	c := in.next()
	if c&0x80 != 0 { // any port, 0 included
		return uint16(c&0x7f)<<8 | uint16(in.next())
	}
	return fuzzPorts[int(c)%len(fuzzPorts)]
}

func (in *fuzzInput) protocol() Protocol {
	switch c := in.next(); c % 8 {
	case 6:
		return Protocol(in.next()) // anything, TCP and UDP included
	default:
		return []Protocol{TCP, UDP}[c%2]
	}
}

func (in *fuzzInput) endpoints() []Endpoint {
	eps := make([]Endpoint, in.next()%6)
	for i := range eps {
		eps[i] = Endpoint{IP: fuzzIPs[int(in.next())%len(fuzzIPs)], Port: in.port()}
	}
	return eps
}

// nextDesired returns the next desired list: a new one, or prev with one port deleted, one
// port's endpoints changed, or its order reversed (each kind of change takes another path
// through the plan).
func (in *fuzzInput) nextDesired(prev []ServicePort) []ServicePort {
	out := slices.Clone(prev)
	switch op := in.next() % 4; {
	case op == 1 && len(out) > 0:
		i := int(in.next()) % len(out)
		return slices.Delete(out, i, i+1)
	case op == 2 && len(out) > 0:
		i := int(in.next()) % len(out)
		out[i].Endpoints = in.endpoints()
		return out
	case op == 3:
		slices.Reverse(out)
		return out
	}
	out = make([]ServicePort, in.next()%7)
	for i := range out {
		out[i] = ServicePort{
			Namespace: "fuzz", Name: fmt.Sprintf("svc-%d", i),
			VIP: fuzzVIPs[int(in.next())%len(fuzzVIPs)], Protocol: in.protocol(), Port: in.port(),
			Endpoints: in.endpoints(),
		}
	}
	return out
}

// modelOf is what the table must hold for desired, from the rules of the Service API alone:
// Service port (VIP . protocol . port) to its endpoints as "IP:port", sorted and unique. An
// IPv4-mapped IPv6 address is the IPv4 address. invalid says why desired must be refused.
func modelOf(desired []ServicePort) (model map[string][]string, invalid string) {
	model = map[string][]string{}
	for _, sp := range desired {
		vip := sp.VIP.Unmap()
		switch {
		case !vip.Is4():
			return nil, fmt.Sprintf("VIP %v is not IPv4", sp.VIP)
		case sp.Protocol != TCP && sp.Protocol != UDP:
			return nil, fmt.Sprintf("protocol %d", sp.Protocol)
		case sp.Port == 0:
			return nil, "port 0"
		}
		key := fmt.Sprintf("%s . %s . %d", vip, sp.Protocol, sp.Port)
		if _, dup := model[key]; dup {
			return nil, "duplicate " + key
		}
		eps := []string{}
		for _, e := range sp.Endpoints {
			if !e.IP.Unmap().Is4() || e.Port == 0 {
				return nil, fmt.Sprintf("endpoint %v:%d", e.IP, e.Port)
			}
			eps = append(eps, netip.AddrPortFrom(e.IP.Unmap(), e.Port).String())
		}
		slices.SortFunc(eps, func(a, b string) int {
			pa, pb := netip.MustParseAddrPort(a), netip.MustParseAddrPort(b)
			return cmp.Or(pa.Addr().Compare(pb.Addr()), cmp.Compare(pa.Port(), pb.Port()))
		})
		model[key] = slices.Compact(eps)
	}
	return model, ""
}

// checkTableHolds checks the dump of table ip skiff against the model: each Service port once,
// in service-ips with a goto to lb-N (a chain whose rule picks one of N slots) when it has N
// endpoints, in no-endpoints when it has none, and its endpoints in slots 0 to N-1.
func checkTableHolds(t *testing.T, step int, dump string, model map[string][]string) {
	t.Helper()
	got := modelFromDump(t, dump)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s\ntable:\n%s", step, fmt.Sprintf(format, args...), dump)
	}
	noEps := map[string]bool{}
	for _, k := range got.NoEndpoints {
		noEps[k] = true
	}
	slots := 0
	for key, eps := range model {
		verdict, inServiceIPs := got.ServiceIPs[key]
		switch {
		case len(eps) == 0 && (inServiceIPs || !noEps[key]):
			fail("%s has no endpoints: want it in no-endpoints only", key)
		case len(eps) > 0 && (!inServiceIPs || noEps[key]):
			fail("%s has endpoints %v: want it in service-ips only", key, eps)
		case len(eps) > 0 && verdict != fmt.Sprintf("goto lb-%d", len(eps)):
			fail("%s has %d endpoints but service-ips says %q", key, len(eps), verdict)
		case len(eps) > 0 && !strings.Contains(dump, fmt.Sprintf("add rule ip skiff lb-%d ", len(eps))) ||
			len(eps) > 0 && !strings.Contains(dump, fmt.Sprintf("= random mod %d ]", len(eps))):
			fail("no lb-%d chain picking one of %d slots", len(eps), len(eps))
		}
		var inSlots []string
		for i := range eps {
			ep, ok := got.Endpoints[fmt.Sprintf("%s . %d", key, i)]
			if !ok {
				fail("%s: slot %d of %d is empty", key, i, len(eps))
			}
			inSlots = append(inSlots, ep)
		}
		slices.Sort(inSlots)
		want := slices.Clone(eps)
		slices.Sort(want)
		if !slices.Equal(inSlots, want) {
			fail("%s leads to %v, want %v", key, inSlots, want)
		}
		slots += len(eps)
	}
	if len(got.ServiceIPs)+len(got.NoEndpoints) != len(model) || len(got.Endpoints) != slots {
		fail("the table holds %d service-ips, %d no-endpoints and %d endpoints elements; the model %d ports and %d endpoints",
			len(got.ServiceIPs), len(got.NoEndpoints), len(got.Endpoints), len(model), slots)
	}
}
