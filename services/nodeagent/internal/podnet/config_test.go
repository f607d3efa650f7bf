package podnet

import (
	"errors"
	"net/netip"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

func TestRenderConfList(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"defaults", Config{PodCIDR: netip.MustParsePrefix("10.88.1.0/24")}},
		{"bridge-mtu-statedir", Config{
			PodCIDR:     netip.MustParsePrefix("10.88.7.0/24"),
			ClusterCIDR: netip.MustParsePrefix("10.88.0.0/16"),
			Bridge:      "br-pods",
			MTU:         1450,
			StateDir:    "/run/skiff/podnet",
		}},
		{"small-cidr", Config{PodCIDR: netip.MustParsePrefix("192.168.50.64/27")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			got, err := renderConfList(cfg)
			if err != nil {
				t.Fatal(err)
			}
			eventstest.Golden(t, "testdata/"+tt.name+".golden", got)
		})
	}
}

func TestConfigRejects(t *testing.T) {
	pod := netip.MustParsePrefix("10.88.1.0/24")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no pod CIDR", Config{}},
		{"IPv6 pod CIDR", Config{PodCIDR: netip.MustParsePrefix("fd00::/64")}},
		{"host bits set", Config{PodCIDR: netip.MustParsePrefix("10.88.1.5/24")}},
		{"too small", Config{PodCIDR: netip.MustParsePrefix("10.88.1.0/31")}},
		{"cluster CIDR not containing pod CIDR", Config{PodCIDR: pod, ClusterCIDR: netip.MustParsePrefix("10.89.0.0/16")}},
		{"cluster CIDR narrower than pod CIDR", Config{PodCIDR: pod, ClusterCIDR: netip.MustParsePrefix("10.88.1.0/25")}},
		{"bridge name too long", Config{PodCIDR: pod, Bridge: "a-very-long-bridge"}},
		{"relative state dir", Config{PodCIDR: pod, StateDir: "state"}},
		{"MTU too small", Config{PodCIDR: pod, MTU: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.withDefaults()
			if !errors.Is(err, events.ErrInvalidArgument) {
				t.Fatalf("withDefaults() = %v, want an error matching events.ErrInvalidArgument", err)
			}
		})
	}
}
