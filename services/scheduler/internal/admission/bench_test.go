package admission

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
)

func BenchmarkDecodeDeployment(b *testing.B) {
	doc := docs(b, deploymentYAML)[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, causes := Decode(doc); causes != nil {
			b.Fatal(causes)
		}
	}
}

// BenchmarkAllocate10k: the lowest free address with 10,000 Services already holding the range's
// bottom, the worst case of a linear scan at that size.
func BenchmarkAllocate10k(b *testing.B) {
	st := state.New()
	a := New(Config{})
	ip := netip.MustParseAddr("10.96.0.2")
	for i := range 10000 {
		name := fmt.Sprintf("s%d", i)
		ev, err := events.New(testTime, events.Meta{}, events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: name}, "",
			&events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: name, Namespace: "default"}, Spec: events.ServiceSpec{ClusterIP: ip.String()}}})
		if err != nil {
			b.Fatal(err)
		}
		ev.Seq = uint64(i + 1)
		if err := st.Apply(ev); err != nil {
			b.Fatal(err)
		}
		ip = ip.Next()
	}
	b.ResetTimer()
	for b.Loop() {
		got, ok := a.allocate(st, nil, netip.Addr{})
		if !ok || got != ip {
			b.Fatalf("allocated %v, want %v", got, ip)
		}
	}
}

// BenchmarkApply is one apply of a Deployment through a replica on a real embedded JetStream:
// catching up with the log head, deciding, and (configured) one conditional append.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		name    string
		changed bool
	}{{"unchanged", false}, {"configured", true}} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCluster(b)
			r := c.replica(Config{})
			ctx := context.Background()
			variants := [][]api.Document{docs(b, deploymentYAML), docs(b, strings.Replace(deploymentYAML, "replicas: 3", "replicas: 4", 1))}
			if resp := r.Apply(ctx, &api.ApplyRequest{Documents: variants[0]}); resp.Error != nil {
				b.Fatal(resp.Error)
			}
			i := 0
			for b.Loop() {
				if bc.changed {
					i++
				}
				resp := r.Apply(ctx, &api.ApplyRequest{Documents: variants[i%2]})
				if resp.Error != nil {
					b.Fatal(resp.Error)
				}
				if want := map[bool]string{false: "unchanged", true: "configured"}[bc.changed]; resp.Results[0].Action != want {
					b.Fatalf("action %s, want %s", resp.Results[0].Action, want)
				}
			}
		})
	}
}

var testTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
