package nodeagent

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"skiff.dev/events/eventstest"
)

// An agent that does not stop in time is reported with what its goroutines wait for, and its
// Stuck hook runs; one that stops in time is not.
func TestWatchStop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stop      bool
		wantStuck bool
	}{
		{name: "stops in time", stop: true},
		{name: "hangs", wantStuck: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs eventstest.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			stuck := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				watchStop(ctx, stopped, 200*time.Millisecond, func() { close(stuck) }, log)
			}()
			cancel()
			if tc.stop {
				close(stopped)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("watchStop did not return")
			}
			select {
			case <-stuck:
				if !tc.wantStuck {
					t.Error("Stuck called for an agent that stopped")
				}
				if out := logs.String(); !strings.Contains(out, "node agent has not stopped") || !strings.Contains(out, "goroutine") {
					t.Errorf("log %q: want the report with the goroutines", out)
				}
			default:
				if tc.wantStuck {
					t.Error("Stuck not called for an agent that hung")
				}
			}
		})
	}
}
