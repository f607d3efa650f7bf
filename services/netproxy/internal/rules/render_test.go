package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name    string
		table   string
		desired []ServicePort
	}{
		{name: "empty"},
		{
			name: "mixed",
			desired: []ServicePort{
				// Endpoints out of order and repeated: rendered sorted, once.
				svc("web", "10.96.0.10", TCP, 80, ep("10.88.0.12", 8080), ep("10.88.0.11", 8080), ep("10.88.0.12", 8080)),
				svc("dns", "10.96.0.2", UDP, 53, ep("10.88.1.3", 53)),
				svc("dns-tcp", "10.96.0.2", TCP, 53, ep("10.88.1.3", 53)),
				svc("empty", "10.96.0.99", TCP, 443),
				svc("empty-udp", "10.96.0.99", UDP, 443),
				svc("three", "10.96.1.1", TCP, 6379, ep("10.88.2.1", 6379), ep("10.88.2.2", 6379), ep("10.88.2.3", 6379)),
			},
		},
		{
			name:    "custom-table",
			table:   "skiff-test",
			desired: []ServicePort{svc("web", "10.96.0.10", TCP, 80, ep("10.88.0.11", 8080))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.table, tt.desired)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkGolden(t, filepath.Join("testdata", tt.name+".golden"), got)
		})
	}
}

// checkGolden compares got with the golden file at path, or rewrites the file with -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -run %s -update to create it): %v", t.Name(), err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("output differs from %s (-want +got; go test -run %s -update rewrites it):\n%s", path, t.Name(), diff)
	}
}

func TestRenderRejectsWhatSyncRejects(t *testing.T) {
	tests := []struct {
		name    string
		desired []ServicePort
	}{
		{"ipv6 VIP", []ServicePort{svc("v6", "fd00::1", TCP, 80)}},
		{"ipv6 endpoint", []ServicePort{svc("v6", "10.96.0.1", TCP, 80, ep("fd00::2", 80))}},
		{"port zero", []ServicePort{svc("zero", "10.96.0.1", TCP, 0)}},
		{"endpoint port zero", []ServicePort{svc("zero", "10.96.0.1", TCP, 80, ep("10.88.0.1", 0))}},
		{"sctp", []ServicePort{svc("sctp", "10.96.0.1", Protocol(132), 80)}},
		{"invalid VIP", []ServicePort{{Name: "novip", Protocol: TCP, Port: 80}}},
		{"duplicate", []ServicePort{svc("a", "10.96.0.1", TCP, 80), svc("b", "10.96.0.1", TCP, 80)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render("", tt.desired)
			if !errors.Is(err, events.ErrInvalidArgument) {
				t.Fatalf("Render error = %v, want one wrapping events.ErrInvalidArgument", err)
			}
		})
	}
}

func TestRenderAcceptsIPv4MappedIPv6(t *testing.T) {
	mapped := svc("web", "::ffff:10.96.0.1", TCP, 80, ep("::ffff:10.88.0.1", 80))
	plain := svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80))
	got, err := Render("", []ServicePort{mapped})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Render("", []ServicePort{plain})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IPv4-mapped addresses render differently from IPv4 (-want +got):\n%s", diff)
	}
}
