package cluster

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRulesSyncs(t *testing.T) {
	log := `=== 2026-11-27T18:35:42.667787384Z: /tmp/skiff-netproxy --server nats://10.211.0.1:4222 --log-level debug
time=2026-11-27T18:35:42.678Z level=INFO msg="projection synced" seq=0
time=2026-11-27T18:35:42.679Z level=INFO msg="nftables table synced" table=skiff full=true reason="start or failed sync" service_ports=0 elements=0 new_chains=0 bytes=2992 duration=336.22µs
time=2026-11-27T18:35:42.679Z level=DEBUG msg="rules synced" seq=0 servicePorts=0 took=355.428µs
time=2026-11-27T18:35:45.249Z level=DEBUG msg="rules synced" seq=27 servicePorts=1 took=1.5ms
time=2026-11-27T18:35:45.250Z level=DEBUG msg="rules synced" seq=x servicePorts=1 took=1ms
time=2026-11-27T18:35:45.251+01:00 level=DEBUG msg="rules synced" seq=28 servicePorts=2 took=205.696µs
level=DEBUG msg="rules synced" seq=29 servicePorts=2 took=1ms
`
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	want := []RulesSync{
		{Time: at("2026-11-27T18:35:42.679Z"), Seq: 0, ServicePorts: 0, Took: 355428 * time.Nanosecond},
		{Time: at("2026-11-27T18:35:45.249Z"), Seq: 27, ServicePorts: 1, Took: 1500 * time.Microsecond},
		// A line whose seq does not parse, and one without a time, are left out.
		{Time: at("2026-11-27T18:35:45.251+01:00"), Seq: 28, ServicePorts: 2, Took: 205696 * time.Nanosecond},
	}
	if diff := cmp.Diff(want, parseRulesSyncs(log)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// testdata/netproxy-table.json is `nft -j list table ip skiff` of a node whose proxy ran
// through TestServices without a restart: it still has lb-1 and lb-2 from the scaling.
func TestParseServiceRules(t *testing.T) {
	raw, err := os.ReadFile("testdata/netproxy-table.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseServiceRules(raw)
	if err != nil {
		t.Fatal(err)
	}
	web := ServicePort{VIP: "10.96.0.2", Protocol: "tcp", Port: 80}
	fresh := ServicePort{VIP: "10.96.0.4", Protocol: "tcp", Port: 8080}
	eps := map[int]string{0: "10.88.0.4:8080", 1: "10.88.1.2:8080", 2: "10.88.1.4:8080"}
	want := ServiceRules{
		Verdicts:    map[ServicePort]string{web: "goto lb-3", fresh: "goto lb-3"},
		Endpoints:   map[ServicePort]map[int]string{web: eps, fresh: eps},
		NoEndpoints: map[ServicePort]bool{{VIP: "10.96.0.3", Protocol: "tcp", Port: 80}: true},
		Chains:      []string{"filter-forward", "filter-output", "lb-1", "lb-2", "lb-3", "nat-output", "nat-postrouting", "nat-prerouting"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"10.96.0.2", "10.96.0.3", "10.96.0.4"}, got.VIPs()); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
}

func TestParseServiceRulesRejectsWhatItCannotRead(t *testing.T) {
	wrap := func(set, elem string) string {
		return `{"nftables":[{"map":{"name":"` + set + `","elem":[` + elem + `]}}]}`
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not JSON", `{"nftables":`, "nft -j output"},
		{"verdict that is not a goto", wrap("service-ips", `[{"concat":["10.96.0.2","tcp",80]},{"accept":null}]`), "want a goto verdict"},
		{"endpoint without a slot", wrap("endpoints", `[{"concat":["10.96.0.2","tcp",80]},{"concat":["10.88.0.2",8080]}]`), "want VIP . proto . port . slot"},
		{"endpoint value without a port", wrap("endpoints", `[{"concat":["10.96.0.2","tcp",80,0]},"10.88.0.2"]`), "want IP . port as the value"},
		{"key too short", wrap("no-endpoints", `{"concat":["10.96.0.2","tcp"]}`), "want VIP . proto . port"},
		{"map element that is not a pair", wrap("service-ips", `{"concat":["10.96.0.2","tcp",80]}`), "want [key, value]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseServiceRules([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
