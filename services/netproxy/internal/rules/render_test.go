package rules

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

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
