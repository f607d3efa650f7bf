package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"skiff.dev/events"
)

// Whatever bytes reach the log, decoding them never panics: it gives an event, or an
// InvalidArgument error that readers report and skip (a poison event). A decoded event
// encodes again and decodes to the same type and actor.
func FuzzDecode(f *testing.F) {
	golden, _ := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	for _, p := range golden {
		if data, err := os.ReadFile(p); err == nil {
			f.Add("skiff.ev.pod.default.web", data)
		}
	}
	f.Add("skiff.ev.status.n1.default.web", []byte(`{"type":"PodStatusReported","v":1,"payload":{}}`))
	f.Add("skiff.ev.node.n1", []byte(`{"type":"NodeRegistered","v":1,"actor":"user/x","payload":{"maxPods":3}}`))
	f.Add("skiff.ev.pod.default.web", []byte(`{"type":"PodCreated","v":99}`))
	f.Add("skiff.ev.pod.default.web", []byte(`not json`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		ev, err := events.Decode(subject, 7, data)
		if err != nil {
			if !errors.Is(err, events.ErrInvalidArgument) {
				t.Fatalf("decode error %v is not InvalidArgument", err)
			}
			return
		}
		again, err := ev.Marshal()
		if err != nil {
			t.Fatalf("a decoded %s does not encode: %v", ev.Type, err)
		}
		back, err := events.Decode(subject, 7, again)
		if err != nil {
			t.Fatalf("a decoded %s, encoded again, does not decode: %v", ev.Type, err)
		}
		if back.Type != ev.Type || back.Actor != ev.Actor {
			t.Fatalf("round trip changed %s/%s into %s/%s", ev.Type, ev.Actor, back.Type, back.Actor)
		}
	})
}

// Quantities parse or fail with an error, never panic, and never come out negative.
func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"1", "500m", "2.5", "1Gi", "128Mi", "1e3", "0.001", "-1", "", "9999999999999999999Ei", "1.5Ki"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if v, err := events.ParseCPU(q); err == nil && v < 0 {
			t.Fatalf("ParseCPU(%q) = %d", q, v)
		}
		if v, err := events.ParseMemory(q); err == nil && v < 0 {
			t.Fatalf("ParseMemory(%q) = %d", q, v)
		}
	})
}
