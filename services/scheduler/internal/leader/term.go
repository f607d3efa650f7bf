package leader

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// TermLog is the part of the log a term is recorded in; *store.Store implements it.
type TermLog interface {
	LastTerm(ctx context.Context) (store.Term, error)
	Append(ctx context.Context, ev *events.Event, expect uint64) (uint64, error)
}

var _ TermLog = (*store.Store)(nil)

// Term is one term of this replica's leadership as the log records it, and the guard of its
// writes: every control loop writes through a store.Fenced writer of the term (Fence), and the
// first write the log refuses because a newer term began ends the term at once.
type Term struct {
	store.Term
	stepDown context.CancelFunc

	mu       sync.Mutex
	rejected int
	newer    store.Term
}

// Begin records a new term for replica in the log: a LeaderElected after the last term the log
// holds, conditional on that term's sequence, so that of two replicas that both believe they
// won (a stale leader that has not noticed its key expired, and its successor) only one starts
// a term after the same predecessor, and the later term fences the earlier's writes. Call it
// once the leader key is held. The returned context ends with ctx or when the term is found to
// be over (a fenced write); run the term's loops under it and call End after they stopped.
//
// Errors: events.ErrConflict when another term began between the read and the append (give the
// key up and campaign again); events.ErrUnavailable, events.ErrPermissionDenied as for
// store.Append.
func Begin(ctx context.Context, log TermLog, replica string, meta events.Meta, now time.Time) (context.Context, *Term, error) {
	last, err := log.LastTerm(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("begin a term: %w", err)
	}
	ev, err := events.New(now, meta, events.TermRef, "", &events.LeaderElected{Replica: replica, Term: last.Number + 1})
	if err != nil {
		return nil, nil, fmt.Errorf("begin a term: %w", err)
	}
	seq, err := log.Append(ctx, ev, last.Seq)
	if err != nil {
		return nil, nil, fmt.Errorf("begin the term after %s: %w", last, err)
	}
	tctx, cancel := context.WithCancel(ctx)
	return tctx, &Term{Term: store.Term{Replica: replica, Number: last.Number + 1, Seq: seq}, stepDown: cancel}, nil
}

// Fence is the configuration of the term's store.Fenced writers: actor signs the fence events,
// and a refusal by a newer term is counted and ends the term.
func (t *Term) Fence(actor string, clock func() time.Time) store.FenceConfig {
	return store.FenceConfig{Actor: actor, Clock: clock, OnFenced: t.fenced}
}

func (t *Term) fenced(rejected int, newer store.Term) {
	t.mu.Lock()
	t.rejected += rejected
	if newer.Seq > t.newer.Seq {
		t.newer = newer
	}
	t.mu.Unlock()
	t.stepDown()
}

// Rejected is how many writes of the term the log refused because a newer term began, and the
// newest term seen doing so.
func (t *Term) Rejected() (int, store.Term) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rejected, t.newer
}

// End ends the term (if a fenced write has not already) and, if any of its writes were refused
// by a newer term, says so in one line at warn level, in a fixed form that tools count:
//
//	lost leadership: N writes rejected by a newer term (term T, now U)
//
// Call it after the term's loops have stopped, so N counts every refused write.
func (t *Term) End(log *slog.Logger) {
	t.stepDown()
	n, newer := t.Rejected()
	if n == 0 {
		return
	}
	log.Warn(fmt.Sprintf("lost leadership: %d writes rejected by a newer term (term %d, now %d)", n, t.Number, newer.Number),
		"rejected", n, "term", t.Number, "termSeq", t.Seq, "newer", newer.Number, "newerSeq", newer.Seq, "newerReplica", newer.Replica)
}
