package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"skiff.dev/events/api"
)

// The table answers a key seen before with the first answer, and forgets keys after the TTL
// and beyond its size, oldest first.
func TestRecentCommands(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRecentCommands(time.Minute, 3, func() time.Time { return now })
	runs := 0
	do := func(key string) string {
		resp := r.do(context.Background(), key, func() *api.Response {
			runs++
			return &api.Response{Results: []api.Result{{Name: fmt.Sprintf("run%d", runs)}}}
		})
		return resp.Results[0].Name
	}
	for _, step := range []struct {
		advance time.Duration
		key     string
		want    string
	}{
		{0, "a", "run1"},
		{0, "a", "run1"}, // a copy: the first answer
		{0, "", "run2"},  // no key: always runs
		{0, "", "run3"},
		{30 * time.Second, "b", "run4"},
		{0, "c", "run5"},
		{0, "d", "run6"}, // a fourth key: "a", the oldest, is forgotten
		{0, "a", "run7"},
		{0, "c", "run5"},
		{61 * time.Second, "c", "run8"}, // past the TTL
	} {
		now = now.Add(step.advance)
		if got := do(step.key); got != step.want {
			t.Fatalf("key %q at %s: %s, want %s", step.key, now.Format(time.TimeOnly), got, step.want)
		}
	}
}

// A copy that arrives while the first is still running waits for the first's answer; if its own
// time runs out first, it says so.
func TestRecentCommandsCopyWaitsForTheFirst(t *testing.T) {
	r := newRecentCommands(time.Minute, 10, time.Now)
	release := make(chan struct{})
	started := make(chan struct{})
	first := make(chan *api.Response, 1)
	go func() {
		first <- r.do(context.Background(), "k", func() *api.Response {
			close(started)
			<-release
			return &api.Response{Seq: 7}
		})
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if resp := r.do(ctx, "k", func() *api.Response { t.Fatal("a copy ran"); return nil }); resp.Error == nil || resp.Error.Code != "Unavailable" {
		t.Errorf("impatient copy: %+v, want Unavailable", resp)
	}
	second := make(chan *api.Response, 1)
	go func() {
		second <- r.do(context.Background(), "k", func() *api.Response { t.Error("a copy ran"); return nil })
	}()
	close(release)
	if a, b := <-first, <-second; a.Seq != 7 || b.Seq != 7 {
		t.Errorf("answers seq %d and %d, want both the first's 7", a.Seq, b.Seq)
	}
}
