package rules

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"skiff.dev/events"
)

// ops is a plan in words, for table tests.
type ops struct {
	Full      bool
	NewChains []int
	Del, Add  []string
	UDPFlush  []string
}

func describe(p *plan) ops {
	o := ops{Full: p.full, NewChains: p.newChains}
	// In the order of the transaction: deletions from service-ips, no-endpoints, endpoints;
	// additions to endpoints, no-endpoints, service-ips.
	for _, e := range p.del.serviceIPs {
		o.Del = append(o.Del, "service-ips "+e.key.String())
	}
	for _, k := range p.del.noEndpoints {
		o.Del = append(o.Del, "no-endpoints "+k.String())
	}
	for _, e := range p.del.endpoints {
		o.Del = append(o.Del, fmt.Sprintf("endpoints %s . %d", e.key, e.slot))
	}
	for _, e := range p.add.endpoints {
		o.Add = append(o.Add, fmt.Sprintf("endpoints %s . %d : %s . %d", e.key, e.slot, netip.AddrFrom4(e.ep.ip()), e.ep.port()))
	}
	for _, k := range p.add.noEndpoints {
		o.Add = append(o.Add, "no-endpoints "+k.String())
	}
	for _, e := range p.add.serviceIPs {
		o.Add = append(o.Add, "service-ips "+e.key.String()+" : goto "+lbChain(e.n))
	}
	for _, f := range p.udpFlush {
		var keep []string
		for _, e := range f.keep {
			keep = append(keep, e.String())
		}
		o.UDPFlush = append(o.UDPFlush, fmt.Sprintf("%s keep [%s]", f.key, strings.Join(keep, " ")))
	}
	return o
}

func TestPlanSyncDiff(t *testing.T) {
	web := func(eps ...Endpoint) ServicePort { return svc("web", "10.96.0.1", TCP, 80, eps...) }
	dns := func(eps ...Endpoint) ServicePort { return svc("dns", "10.96.0.10", UDP, 53, eps...) }
	a, b, c := ep("10.88.0.1", 8080), ep("10.88.0.2", 8080), ep("10.88.0.3", 8080)
	d1, d2 := ep("10.88.0.1", 53), ep("10.88.0.2", 53)

	tests := []struct {
		name          string
		before, after []ServicePort
		want          ops
	}{
		{
			name:   "no change",
			before: []ServicePort{web(a, b), dns(d1)},
			after:  []ServicePort{dns(d1), web(a, b)},
		},
		{
			name:   "endpoints reordered and repeated is no change",
			before: []ServicePort{web(a, b)},
			after:  []ServicePort{web(b, a, b)},
		},
		{
			name:   "service added with a known endpoint count",
			before: []ServicePort{web(a, b)},
			after:  []ServicePort{web(a, b), svc("api", "10.96.0.2", TCP, 443, c, a)},
			want: ops{Add: []string{
				"endpoints 10.96.0.2 . tcp . 443 . 0 : 10.88.0.1 . 8080",
				"endpoints 10.96.0.2 . tcp . 443 . 1 : 10.88.0.3 . 8080",
				"service-ips 10.96.0.2 . tcp . 443 : goto lb-2",
			}},
		},
		{
			name:   "service added with a new endpoint count adds its chain",
			before: []ServicePort{web(a, b)},
			after:  []ServicePort{web(a, b), svc("api", "10.96.0.2", TCP, 443, a, b, c)},
			want: ops{NewChains: []int{3}, Add: []string{
				"endpoints 10.96.0.2 . tcp . 443 . 0 : 10.88.0.1 . 8080",
				"endpoints 10.96.0.2 . tcp . 443 . 1 : 10.88.0.2 . 8080",
				"endpoints 10.96.0.2 . tcp . 443 . 2 : 10.88.0.3 . 8080",
				"service-ips 10.96.0.2 . tcp . 443 : goto lb-3",
			}},
		},
		{
			name:   "service removed",
			before: []ServicePort{web(a, b), dns(d1)},
			after:  []ServicePort{dns(d1)},
			want: ops{Del: []string{
				"service-ips 10.96.0.1 . tcp . 80",
				"endpoints 10.96.0.1 . tcp . 80 . 0",
				"endpoints 10.96.0.1 . tcp . 80 . 1",
			}},
		},
		{
			name:   "endpoint added moves the service to lb-3",
			before: []ServicePort{web(a, b)},
			after:  []ServicePort{web(a, b, c)},
			want: ops{
				NewChains: []int{3},
				Del:       []string{"service-ips 10.96.0.1 . tcp . 80"},
				Add: []string{
					"endpoints 10.96.0.1 . tcp . 80 . 2 : 10.88.0.3 . 8080",
					"service-ips 10.96.0.1 . tcp . 80 : goto lb-3",
				},
			},
		},
		{
			name:   "endpoint replaced keeps the verdict",
			before: []ServicePort{web(a, b)},
			after:  []ServicePort{web(a, c)},
			want: ops{
				Del: []string{"endpoints 10.96.0.1 . tcp . 80 . 1"},
				Add: []string{"endpoints 10.96.0.1 . tcp . 80 . 1 : 10.88.0.3 . 8080"},
			},
		},
		{
			name:   "middle endpoint removed shifts the slots after it",
			before: []ServicePort{web(a, b, c)},
			after:  []ServicePort{web(a, c)},
			want: ops{
				NewChains: []int{2},
				Del: []string{
					"service-ips 10.96.0.1 . tcp . 80",
					"endpoints 10.96.0.1 . tcp . 80 . 1",
					"endpoints 10.96.0.1 . tcp . 80 . 2",
				},
				Add: []string{
					"endpoints 10.96.0.1 . tcp . 80 . 1 : 10.88.0.3 . 8080",
					"service-ips 10.96.0.1 . tcp . 80 : goto lb-2",
				},
			},
		},
		{
			name:   "last endpoint gone rejects instead",
			before: []ServicePort{web(a, b)},
			after:  []ServicePort{web()},
			want: ops{
				Del: []string{
					"service-ips 10.96.0.1 . tcp . 80",
					"endpoints 10.96.0.1 . tcp . 80 . 0",
					"endpoints 10.96.0.1 . tcp . 80 . 1",
				},
				Add: []string{"no-endpoints 10.96.0.1 . tcp . 80"},
			},
		},
		{
			name:   "UDP port gets its first endpoint and clears un-NATed flows",
			before: []ServicePort{dns()},
			after:  []ServicePort{dns(d1)},
			want: ops{
				NewChains: []int{1},
				Del:       []string{"no-endpoints 10.96.0.10 . udp . 53"},
				Add: []string{
					"endpoints 10.96.0.10 . udp . 53 . 0 : 10.88.0.1 . 53",
					"service-ips 10.96.0.10 . udp . 53 : goto lb-1",
				},
				UDPFlush: []string{"10.96.0.10 . udp . 53 keep [10.88.0.1:53]"},
			},
		},
		{
			name:   "UDP endpoint removed clears its flows",
			before: []ServicePort{dns(d1, d2)},
			after:  []ServicePort{dns(d2)},
			want: ops{
				NewChains: []int{1},
				Del: []string{
					"service-ips 10.96.0.10 . udp . 53",
					"endpoints 10.96.0.10 . udp . 53 . 0",
					"endpoints 10.96.0.10 . udp . 53 . 1",
				},
				Add: []string{
					"endpoints 10.96.0.10 . udp . 53 . 0 : 10.88.0.2 . 53",
					"service-ips 10.96.0.10 . udp . 53 : goto lb-1",
				},
				UDPFlush: []string{"10.96.0.10 . udp . 53 keep [10.88.0.2:53]"},
			},
		},
		{
			name:   "UDP endpoint added clears nothing",
			before: []ServicePort{dns(d1)},
			after:  []ServicePort{dns(d1, d2)},
			want: ops{
				NewChains: []int{2},
				Del:       []string{"service-ips 10.96.0.10 . udp . 53"},
				Add: []string{
					"endpoints 10.96.0.10 . udp . 53 . 1 : 10.88.0.2 . 53",
					"service-ips 10.96.0.10 . udp . 53 : goto lb-2",
				},
			},
		},
		{
			name:   "UDP service removed clears all its flows",
			before: []ServicePort{dns(d1)},
			after:  nil,
			want: ops{
				Del: []string{
					"service-ips 10.96.0.10 . udp . 53",
					"endpoints 10.96.0.10 . udp . 53 . 0",
				},
				UDPFlush: []string{"10.96.0.10 . udp . 53 keep []"},
			},
		},
		{
			name:   "port change is a removal and an addition",
			before: []ServicePort{web(a)},
			after:  []ServicePort{svc("web", "10.96.0.1", TCP, 8080, a)},
			want: ops{
				Del: []string{"service-ips 10.96.0.1 . tcp . 80", "endpoints 10.96.0.1 . tcp . 80 . 0"},
				Add: []string{
					"endpoints 10.96.0.1 . tcp . 8080 . 0 : 10.88.0.1 . 8080",
					"service-ips 10.96.0.1 . tcp . 8080 : goto lb-1",
				},
			},
		},
		{
			name:   "removed service without endpoints leaves no-endpoints",
			before: []ServicePort{web()},
			after:  nil,
			want:   ops{Del: []string{"no-endpoints 10.96.0.1 . tcp . 80"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k kernelState
			first, err := k.plan(tt.before, true)
			if err != nil {
				t.Fatalf("plan before: %v", err)
			}
			k.commit(first)
			p, err := k.plan(tt.after, false)
			if err != nil {
				t.Fatalf("plan after: %v", err)
			}
			if diff := cmp.Diff(tt.want, describe(p), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if got, want := p.empty(), len(tt.want.Del)+len(tt.want.Add)+len(tt.want.NewChains) == 0; got != want {
				t.Errorf("plan.empty() = %v, want %v", got, want)
			}
		})
	}
}

func TestPlanSyncFullWritesEverything(t *testing.T) {
	var k kernelState
	p, err := k.plan([]ServicePort{
		svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.2", 80), ep("10.88.0.1", 80)),
		svc("dns", "10.96.0.10", UDP, 53, ep("10.88.0.1", 53)),
		svc("none", "10.96.0.11", TCP, 80),
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := ops{
		Full:      true,
		NewChains: []int{1, 2},
		Add: []string{
			"endpoints 10.96.0.1 . tcp . 80 . 0 : 10.88.0.1 . 80",
			"endpoints 10.96.0.1 . tcp . 80 . 1 : 10.88.0.2 . 80",
			"endpoints 10.96.0.10 . udp . 53 . 0 : 10.88.0.1 . 53",
			"no-endpoints 10.96.0.11 . tcp . 80",
			"service-ips 10.96.0.1 . tcp . 80 : goto lb-2",
			"service-ips 10.96.0.10 . udp . 53 : goto lb-1",
		},
		UDPFlush: []string{"10.96.0.10 . udp . 53 keep [10.88.0.1:53]"},
	}
	if diff := cmp.Diff(want, describe(p), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("full plan (-want +got):\n%s", diff)
	}
}

func TestPlanSyncRefusesInvalidInputWithoutChangingState(t *testing.T) {
	var k kernelState
	before := []ServicePort{svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80))}
	p, err := k.plan(before, true)
	if err != nil {
		t.Fatal(err)
	}
	k.commit(p)
	for name, desired := range map[string][]ServicePort{
		"duplicate of a written port": {before[0], before[0]},
		"duplicate of a new port":     {svc("a", "10.96.0.2", TCP, 80), svc("b", "10.96.0.2", TCP, 80)},
		"invalid endpoint":            {svc("web", "10.96.0.1", TCP, 80, ep("fd00::1", 80))},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := k.plan(desired, false); !errors.Is(err, events.ErrInvalidArgument) {
				t.Fatalf("plan error = %v, want events.ErrInvalidArgument", err)
			}
			// The record is untouched: planning the old state again changes nothing.
			p, err := k.plan(before, false)
			if err != nil {
				t.Fatal(err)
			}
			if !p.empty() {
				t.Errorf("after a refused plan, re-planning the written state is not empty: %+v", describe(p))
			}
		})
	}
}

func TestPlanSyncDoesNotKeepCallerSlices(t *testing.T) {
	var k kernelState
	eps := []Endpoint{ep("10.88.0.1", 80), ep("10.88.0.2", 80)}
	p, err := k.plan([]ServicePort{svc("web", "10.96.0.1", TCP, 80, eps...)}, true)
	if err != nil {
		t.Fatal(err)
	}
	k.commit(p)
	eps[0] = ep("10.88.0.9", 80) // the caller reuses its slice
	p, err = k.plan([]ServicePort{svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80), ep("10.88.0.2", 80))}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !p.empty() {
		t.Errorf("the record changed with the caller's slice: %+v", describe(p))
	}
}

// fakeKernel applies plans the way nf_tables applies the transaction, and refuses what the
// kernel would refuse: deleting a missing element, adding an element that exists, a verdict to a
// missing chain, an lb chain twice.
type fakeKernel struct {
	serviceIPs  map[svcKey]int
	noEndpoints map[svcKey]bool
	endpoints   map[slotKey]epKey
	chains      map[int]bool
}

type slotKey struct {
	key  svcKey
	slot int
}

func (f *fakeKernel) apply(p *plan) error {
	if p.full || f.serviceIPs == nil {
		*f = fakeKernel{map[svcKey]int{}, map[svcKey]bool{}, map[slotKey]epKey{}, map[int]bool{}}
	}
	for _, n := range p.newChains {
		if f.chains[n] {
			return fmt.Errorf("chain lb-%d exists", n)
		}
		f.chains[n] = true
	}
	for _, e := range p.del.serviceIPs {
		if _, ok := f.serviceIPs[e.key]; !ok {
			return fmt.Errorf("delete service-ips %s: no such element", e.key)
		}
		delete(f.serviceIPs, e.key)
	}
	for _, k := range p.del.noEndpoints {
		if !f.noEndpoints[k] {
			return fmt.Errorf("delete no-endpoints %s: no such element", k)
		}
		delete(f.noEndpoints, k)
	}
	for _, e := range p.del.endpoints {
		sk := slotKey{e.key, e.slot}
		if _, ok := f.endpoints[sk]; !ok {
			return fmt.Errorf("delete endpoints %s . %d: no such element", e.key, e.slot)
		}
		delete(f.endpoints, sk)
	}
	for _, e := range p.add.endpoints {
		sk := slotKey{e.key, e.slot}
		if _, ok := f.endpoints[sk]; ok {
			return fmt.Errorf("add endpoints %s . %d: exists", e.key, e.slot)
		}
		f.endpoints[sk] = e.ep
	}
	for _, k := range p.add.noEndpoints {
		if f.noEndpoints[k] {
			return fmt.Errorf("add no-endpoints %s: exists", k)
		}
		f.noEndpoints[k] = true
	}
	for _, e := range p.add.serviceIPs {
		if _, ok := f.serviceIPs[e.key]; ok {
			return fmt.Errorf("add service-ips %s: exists", e.key)
		}
		if !f.chains[e.n] {
			return fmt.Errorf("add service-ips %s: goto lb-%d, which does not exist", e.key, e.n)
		}
		f.serviceIPs[e.key] = e.n
	}
	return nil
}

// content is what a packet can observe: chains that are only there from earlier endpoint
// counts are not part of it.
func (f *fakeKernel) content() fakeKernel {
	return fakeKernel{serviceIPs: f.serviceIPs, noEndpoints: f.noEndpoints, endpoints: f.endpoints}
}

// TestPlanSyncIncrementalEqualsFull drives random changes through incremental plans into a
// fake kernel and checks after every step that it holds what a full sync of the same desired
// state writes.
func TestPlanSyncIncrementalEqualsFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vips := []netip.Addr{ip("10.96.0.1"), ip("10.96.0.2"), ip("10.96.0.3")}
	pods := []netip.Addr{ip("10.88.0.1"), ip("10.88.0.2"), ip("10.88.0.3"), ip("10.88.0.4"), ip("10.88.0.5")}
	randomDesired := func() []ServicePort {
		var out []ServicePort
		for _, vip := range vips {
			for _, proto := range []Protocol{TCP, UDP} {
				for _, port := range []uint16{53, 80} {
					if rng.IntN(3) == 0 {
						continue
					}
					sp := ServicePort{Name: "s", VIP: vip, Protocol: proto, Port: port}
					for range rng.IntN(5) {
						sp.Endpoints = append(sp.Endpoints, Endpoint{pods[rng.IntN(len(pods))], uint16(8080 + rng.IntN(2))})
					}
					out = append(out, sp)
				}
			}
		}
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}

	// Half of the steps edit the previous list in place (the caller keeps a stable order, which
	// the plan diffs side by side), the others draw a new shuffled one.
	edit := func(prev []ServicePort) []ServicePort {
		out := slices.Clone(prev)
		switch rng.IntN(4) {
		case 0: // drop from the tail
			out = out[:rng.IntN(len(out)+1)]
		case 1: // change endpoints in place
			if len(out) > 0 {
				i := rng.IntN(len(out))
				out[i].Endpoints = append(slices.Clone(out[i].Endpoints), Endpoint{pods[rng.IntN(len(pods))], 9000})
			}
		case 2: // append what is not there yet
			for _, sp := range randomDesired() {
				if !slices.ContainsFunc(out, func(o ServicePort) bool { return o.VIP == sp.VIP && o.Protocol == sp.Protocol && o.Port == sp.Port }) {
					out = append(out, sp)
				}
			}
		case 3: // drop one from the middle
			if len(out) > 0 {
				i := rng.IntN(len(out))
				out = slices.Delete(out, i, i+1)
			}
		}
		return out
	}

	var k kernelState
	var kernel fakeKernel
	var desired []ServicePort
	full := true
	for step := range 1000 {
		if step%2 == 0 {
			desired = randomDesired()
		} else {
			desired = edit(desired)
		}
		p, err := k.plan(desired, full)
		if err != nil {
			t.Fatalf("step %d: plan: %v", step, err)
		}
		if err := kernel.apply(p); err != nil {
			t.Fatalf("step %d: the kernel would refuse the plan: %v\nplan: %+v", step, err, describe(p))
		}
		k.commit(p)
		full = step%97 == 96 // now and then a full sync in between, as after a failure

		// The record's order is the desired list's.
		if len(k.order) != len(desired) || len(k.written) != len(desired) {
			t.Fatalf("step %d: record holds %d ports in order and %d in all, want %d", step, len(k.order), len(k.written), len(desired))
		}
		for i, e := range k.order {
			want, _ := keyOf(&desired[i])
			if e.key != want || e.st != k.written[e.key] || e.st.key != e.key || e.st.pos != i || !slices.Equal(e.eps, e.st.eps) {
				t.Fatalf("step %d: record order[%d] = %s (pos %d), want %s", step, i, e.key, e.st.pos, want)
			}
		}

		var fresh kernelState
		fp, err := fresh.plan(slices.Clone(desired), true)
		if err != nil {
			t.Fatal(err)
		}
		var want fakeKernel
		if err := want.apply(fp); err != nil {
			t.Fatalf("step %d: full plan refused: %v", step, err)
		}
		if diff := cmp.Diff(want.content(), kernel.content(), cmp.AllowUnexported(fakeKernel{}, slotKey{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("step %d: incremental state differs from a full sync (-full +incremental):\n%s", step, diff)
		}
	}
}

func TestPlanSyncTurnsFullWhenAMapWouldOverflow(t *testing.T) {
	var k kernelState
	p, err := k.plan(manyServices(1000, 2), true)
	if err != nil {
		t.Fatal(err)
	}
	if p.capServiceIPs != 4096 || p.capEndpoints != 4096 {
		t.Fatalf("sizes for 1,000 ports and 2,000 endpoints = %d, %d; want 4096, 4096", p.capServiceIPs, p.capEndpoints)
	}
	k.commit(p)

	// 2,048 endpoints still fit (4,096), 2,049 ports with 2 endpoints (4,098) do not.
	if p, err = k.plan(manyServices(2048, 2), false); err != nil || p.full {
		t.Fatalf("plan for 4,096 endpoints: full = %v, err = %v; want an incremental plan", p != nil && p.full, err)
	}
	p, err = k.plan(manyServices(2049, 2), false)
	if err != nil {
		t.Fatal(err)
	}
	if !p.full || p.capEndpoints != 16384 || p.reason != "the maps are full" { // room for twice 4,098
		t.Errorf("plan for 4,098 endpoints: full = %v, endpoints size %d, reason %q; want a full plan with size 16384",
			p.full, p.capEndpoints, p.reason)
	}
}
