package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/store"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// passes records what each pass saw; wait blocks until a pass saw at least seq.
type passes struct {
	mu   sync.Mutex
	seen []uint64
	cond chan struct{}
}

func newPasses() *passes { return &passes{cond: make(chan struct{}, 1000)} }

func (p *passes) record(seq uint64) {
	p.mu.Lock()
	p.seen = append(p.seen, seq)
	p.mu.Unlock()
	select {
	case p.cond <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (p *passes) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

// waitCount waits until n passes ran and returns the sequence the n-th saw.
func (p *passes) waitCount(t *testing.T, n int) uint64 {
	t.Helper()
	deadline := time.After(ct.Timeout)
	for {
		p.mu.Lock()
		if len(p.seen) >= n {
			seq := p.seen[n-1]
			p.mu.Unlock()
			return seq
		}
		p.mu.Unlock()
		select {
		case <-p.cond:
		case <-deadline:
			t.Fatalf("pass %d did not run (ran %d)", n, p.count())
		}
	}
}

func nsEvent(t *testing.T, name string) *events.Event {
	ev, err := events.New(ct.T0, events.Meta{Actor: "test"}, events.ObjectRef{Kind: events.KindNamespace, Name: name}, "",
		&events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: name}}})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func appendNamespaces(t *testing.T, c *ct.Cluster, prefix string, n int) uint64 {
	ws := make([]store.Write, n)
	for i := range ws {
		ws[i] = store.Write{Event: nsEvent(t, fmt.Sprintf("%s%d", prefix, i))}
	}
	var last uint64
	for i, err := range c.Store.AppendAll(c.Context(), ws) {
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, ws[i].Event.Seq)
	}
	return last
}

// TestCoalesces: a hundred events that land during one pass cause one more pass, not a hundred.
func TestCoalesces(t *testing.T) {
	c := ct.NewCluster(t)
	rec := newPasses()
	release := make(chan struct{})
	var first atomic.Bool
	loop := reconcile.NewLoop(reconcile.Config{Projection: c.Projection}, func(ctx context.Context) (reconcile.Result, error) {
		if first.CompareAndSwap(false, true) {
			<-release
		}
		rec.record(c.Projection.Seq())
		return reconcile.Result{}, nil
	})
	c.Go(loop.Run)
	last := appendNamespaces(t, c, "a", 100)
	if err := c.Projection.WaitSeq(c.Context(), last); err != nil {
		t.Fatal(err)
	}
	close(release)
	rec.waitCount(t, 1)
	if seen := rec.waitCount(t, 2); seen != last {
		t.Fatalf("second pass saw seq %d, want %d", seen, last)
	}
	// One more event: it must be the third pass that sees it, or passes were queued per event.
	more := appendNamespaces(t, c, "b", 1)
	if seen := rec.waitCount(t, 3); seen != more {
		t.Fatalf("third pass saw seq %d, want %d (passes: %d)", seen, more, rec.count())
	}
}

// TestWaitsForOwnWrites: the pass after a write sees the write, even when the projection is slow
// to apply it.
func TestWaitsForOwnWrites(t *testing.T) {
	c := ct.NewCluster(t)
	// The loop reads a projection the test feeds by hand: it follows another, empty log (so it
	// is synced), and gets the loop's writes only when the test applies them.
	p := ct.NewCluster(t).Projection
	rec := newPasses()
	var wrote atomic.Uint64
	loop := reconcile.NewLoop(reconcile.Config{Projection: p}, func(ctx context.Context) (reconcile.Result, error) {
		seen := p.Seq()
		if wrote.Load() != 0 {
			rec.record(seen)
			return reconcile.Result{}, nil
		}
		defer rec.record(seen)
		b := reconcile.NewBatch(ct.T0, events.Meta{Actor: "test"})
		b.Add(events.ObjectRef{Kind: events.KindNamespace, Name: "mine"}, "",
			&events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "mine"}}}, 0)
		res, err := b.Flush(ctx, c.Store)
		wrote.Store(res.Seq)
		return res, err
	})
	c.Go(loop.Run)
	rec.waitCount(t, 1)
	ev, err := c.Store.Get(c.Context(), wrote.Load())
	if err != nil {
		t.Fatal(err)
	}
	p.Apply(ev)
	if seen := rec.waitCount(t, 2); seen < wrote.Load() {
		t.Fatalf("the pass after the write saw seq %d, before its own write at %d", seen, wrote.Load())
	}
}

// TestConflictWaitsForChange: after a conflict the loop waits for the projection to move instead
// of spinning.
func TestConflictWaitsForChange(t *testing.T) {
	c := ct.NewCluster(t)
	rec := newPasses()
	loop := reconcile.NewLoop(reconcile.Config{Projection: c.Projection}, func(ctx context.Context) (reconcile.Result, error) {
		rec.record(c.Projection.Seq())
		return reconcile.Result{Conflicts: 1}, nil
	})
	c.Go(loop.Run)
	rec.waitCount(t, 1)
	seq := appendNamespaces(t, c, "a", 1)
	if seen := rec.waitCount(t, 2); seen != seq {
		t.Fatalf("second pass saw %d, want %d", seen, seq)
	}
	seq = appendNamespaces(t, c, "b", 1)
	if seen := rec.waitCount(t, 3); seen != seq {
		t.Fatalf("third pass saw %d, want %d: the loop spun after a conflict (%d passes)", seen, seq, rec.count())
	}
}

// TestRequeueOnTheClock: a pass that asks for a requeue runs again when the (fake) clock gets
// there, without any event.
func TestRequeueOnTheClock(t *testing.T) {
	c := ct.NewCluster(t)
	rec := newPasses()
	due := ct.T0.Add(time.Hour)
	loop := reconcile.NewLoop(reconcile.Config{Projection: c.Projection, Clock: c.Clock.Now, Resync: 5 * time.Millisecond},
		func(ctx context.Context) (reconcile.Result, error) {
			rec.record(uint64(c.Clock.Now().Sub(ct.T0)))
			if c.Clock.Now().Before(due) {
				return reconcile.Result{RequeueAt: due}, nil
			}
			return reconcile.Result{}, nil
		})
	c.Go(loop.Run)
	rec.waitCount(t, 1)
	c.Clock.Advance(time.Hour)
	deadline := time.After(ct.Timeout)
	for {
		rec.mu.Lock()
		last := rec.seen[len(rec.seen)-1]
		rec.mu.Unlock()
		if time.Duration(last) >= time.Hour {
			break
		}
		select {
		case <-rec.cond:
		case <-deadline:
			t.Fatal("no pass after the clock reached the requeue time")
		}
	}
}

func TestTriggerAndBackoff(t *testing.T) {
	c := ct.NewCluster(t)
	rec := newPasses()
	var calls atomic.Int32
	loop := reconcile.NewLoop(reconcile.Config{Projection: c.Projection}, func(ctx context.Context) (reconcile.Result, error) {
		rec.record(0)
		if calls.Add(1) == 1 {
			return reconcile.Result{}, fmt.Errorf("server away: %w", events.ErrUnavailable)
		}
		return reconcile.Result{}, nil
	})
	c.Go(loop.Run)
	rec.waitCount(t, 2) // the failed pass is retried on its own
	loop.Trigger()
	rec.waitCount(t, 3)
}

func TestBatch(t *testing.T) {
	c := ct.NewCluster(t)
	ctx := c.Context()
	b := reconcile.NewBatch(ct.T0, events.Meta{Actor: "test"})
	ns := func(name string) (events.ObjectRef, events.Payload) {
		return events.ObjectRef{Kind: events.KindNamespace, Name: name},
			&events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: name}}}
	}
	for i := range 1500 {
		ref, p := ns(fmt.Sprintf("n%d", i))
		if !b.Add(ref, "", p, 0) {
			t.Fatalf("write %d refused", i)
		}
	}
	ref, p := ns("n7")
	if b.Add(ref, "", p, 0) {
		t.Error("a second write to the same subject was queued")
	}
	res, err := b.Flush(ctx, c.Store)
	if err != nil || res.Written != 1500 || res.Conflicts != 0 {
		t.Fatalf("Flush = %+v, %v; want 1500 written", res, err)
	}
	if head := c.Head(); res.Seq != head {
		t.Errorf("Seq = %d, want the head %d", res.Seq, head)
	}

	// Writing the same subjects again expecting them empty: all conflicts, no error.
	b = reconcile.NewBatch(ct.T0, events.Meta{Actor: "test"})
	for _, n := range []string{"n1", "n2"} {
		ref, p := ns(n)
		b.Add(ref, "", p, 0)
	}
	res, err = b.Flush(ctx, c.Store)
	if err != nil || res.Written != 0 || res.Conflicts != 2 {
		t.Errorf("Flush of stale writes = %+v, %v; want 2 conflicts", res, err)
	}

	// A payload that is not a pointer is a programming error, reported by Flush.
	b = reconcile.NewBatch(ct.T0, events.Meta{Actor: "test"})
	b.Add(events.ObjectRef{Kind: events.KindNamespace, Name: "x"}, "", events.NamespaceDeleted{}, 0)
	if _, err := b.Flush(ctx, c.Store); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("Flush with a bad payload = %v, want ErrInvalidArgument", err)
	}
}

// startTerm records a leader term in c's log, as the leader does when it wins.
func startTerm(t *testing.T, c *ct.Cluster, replica string) store.Term {
	t.Helper()
	prev, err := c.Store.LastTerm(c.Context())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.New(ct.T0, events.Meta{Actor: "scheduler/" + replica}, events.TermRef, "", &events.LeaderElected{Replica: replica, Term: prev.Number + 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Append(c.Context(), ev, prev.Seq); err != nil {
		t.Fatal(err)
	}
	term, err := c.Store.LastTerm(c.Context())
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// Through a fenced log a pass's writes land while its term is the newest; once a newer term
// began, they are counted as Fenced (not conflicts, not errors), and the loop stops.
func TestFencedPasses(t *testing.T) {
	c := ct.NewCluster(t)
	old := startTerm(t, c, "a")
	log := c.Store.Fenced(old, "test", store.FenceConfig{Actor: "scheduler/a"})
	ns := func(name string) *reconcile.Batch {
		b := reconcile.NewBatch(ct.T0, events.Meta{Actor: "scheduler/a"})
		b.Add(events.ObjectRef{Kind: events.KindNamespace, Name: name}, "",
			&events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: name}}}, 0)
		return b
	}
	res, err := ns("first").Flush(c.Context(), log)
	if err != nil || res.Written != 1 || res.Fenced != 0 {
		t.Fatalf("Flush in the current term = %+v, %v", res, err)
	}
	startTerm(t, c, "b")

	var passes atomic.Int32
	loop := reconcile.NewLoop(reconcile.Config{Projection: c.Projection, Name: "test"}, func(ctx context.Context) (reconcile.Result, error) {
		passes.Add(1)
		res, err := ns(fmt.Sprintf("stale%d", passes.Load())).Flush(ctx, log)
		if err != nil || res.Fenced != 1 || res.Conflicts != 0 || res.Written != 0 {
			t.Errorf("Flush after a newer term = %+v, %v; want 1 fenced", res, err)
		}
		return res, err
	})
	done := make(chan error, 1)
	go func() { done <- loop.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil || passes.Load() != 1 {
			t.Fatalf("loop returned %v after %d passes; want nil after one", err, passes.Load())
		}
	case <-time.After(ct.Timeout):
		t.Fatal("the loop kept running after its writes were fenced")
	}
	if evs, _ := c.Store.History(c.Context(), events.KindFilter(events.KindNamespace)); len(evs) != 1 {
		t.Fatalf("%d namespace events, want only the first", len(evs))
	}
}
