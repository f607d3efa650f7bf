package eventstest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// Follow starts a live projection of st, as every service keeps one, that runs until cleanup,
// and waits until it has caught up with the log. filters are live.Projection.Run's (none: the
// whole log). The projection logs to t.
func Follow(t testing.TB, st *store.Store, filters ...string) *live.Projection {
	t.Helper()
	p := live.New(state.New(), Logger(t).With("component", "projection"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx, st, filters); err != nil && ctx.Err() == nil {
			t.Errorf("projection: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, Timeout)
	defer wcancel()
	if err := p.WaitSynced(wctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// WaitState waits until cond holds for p's state, checking it again after every change p
// applies (no polling), and fails t with what if timeout passes first.
func WaitState(t testing.TB, p *live.Projection, timeout time.Duration, what string, cond func(*state.State) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := p.Changed() // before the check, so that no change between them is missed
		ok := false
		p.View(func(s *state.State) { ok = cond(s) })
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("waiting for %s: not within %v (projection at seq %d)", what, timeout, p.Seq())
		}
	}
}

// Append writes evs (at most one per subject) to st, each conditional on the sequence p has
// folded for its subject, as every writer in Skiff does, and waits until p has applied them. It
// returns the highest sequence written. Errors: events.ErrConflict where another writer
// appended to a subject that p had not yet seen (wait for p and decide again); otherwise the
// store's errors, or ctx's while waiting for p.
func Append(ctx context.Context, st *store.Store, p *live.Projection, evs ...*events.Event) (uint64, error) {
	ws := make([]store.Write, len(evs))
	p.View(func(s *state.State) {
		for i, ev := range evs {
			ws[i] = store.Write{Event: ev, Expect: s.SubjectSeq(ev.Subject)}
		}
	})
	if err := errors.Join(st.AppendAll(ctx, ws)...); err != nil {
		return 0, err
	}
	var last uint64
	for _, ev := range evs {
		last = max(last, ev.Seq)
	}
	if err := p.WaitSeq(ctx, last); err != nil {
		return 0, fmt.Errorf("wait for the projection to apply the appends: %w", err)
	}
	return last, nil
}
