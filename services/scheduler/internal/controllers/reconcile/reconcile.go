package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/store"
)

// Log is the part of the event log a controller writes with; *store.Store implements it.
type Log interface {
	// AppendAll appends conditionally and returns one error per write (see store.AppendAll).
	AppendAll(ctx context.Context, ws []store.Write) []error
}

var _ Log = (*store.Store)(nil)

// Result is what one pass did, and what it wants from the loop.
type Result struct {
	// Written counts the events the pass appended.
	Written int
	// Seq is the highest sequence the pass wrote (0 if none): the next pass waits until the
	// projection has applied it.
	Seq uint64
	// Conflicts counts appends rejected because their subject had moved on. The loop decides
	// again once the projection has moved.
	Conflicts int
	// Fenced counts appends rejected because a newer leader term began (events.ErrFenced):
	// this replica no longer leads, and the loop stops.
	Fenced int
	// RequeueAt, if set, asks for another pass at that time on the controller's clock even if
	// the state does not change (a lease that runs out, an eviction that falls due).
	RequeueAt time.Time
}

// Requeue keeps the earlier of r.RequeueAt and at.
func (r *Result) Requeue(at time.Time) {
	if r.RequeueAt.IsZero() || at.Before(r.RequeueAt) {
		r.RequeueAt = at
	}
}

// Pass decides from the current state and appends what it decided.
type Pass func(ctx context.Context) (Result, error)

// Config configures a Loop. Projection is required; the rest has defaults.
type Config struct {
	// Name labels the loop's log lines ("deployments").
	Name       string
	Projection *live.Projection
	// Clock is the controller's clock; default time.Now.
	Clock func() time.Time
	// Resync bounds the real time the loop sleeps while a pass asked for a requeue; default 5 s.
	Resync time.Duration
	// MaxBackoff bounds the wait after a failed pass; default 5 s.
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// DefaultResync is Config.Resync's default.
const DefaultResync = 5 * time.Second

// Loop runs a Pass as the package doc describes.
type Loop struct {
	cfg     Config
	pass    Pass
	trigger chan struct{}
}

// NewLoop returns a loop that runs pass.
func NewLoop(cfg Config, pass Pass) *Loop {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Loop{cfg: cfg, pass: pass, trigger: make(chan struct{}, 1)}
}

// Trigger asks for a pass soon, for changes the projection does not carry (lease renewals).
func (l *Loop) Trigger() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Run waits until the projection is synced, then runs passes until ctx ends, and returns nil.
// A failing pass is logged and retried with backoff; it does not stop the loop.
func (l *Loop) Run(ctx context.Context) error {
	p, log := l.cfg.Projection, l.cfg.Logger
	if err := p.WaitSynced(ctx); err != nil {
		return nil
	}
	log.Info("controller started", "loop", l.cfg.Name, "seq", p.Seq())
	var backoff time.Duration
	for {
		// Taken before the pass, so an event applied while the pass runs wakes the next wait.
		changed := p.Changed()
		res, err := l.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if res.Written > 0 || res.Conflicts > 0 {
			log.Debug("pass", "written", res.Written, "conflicts", res.Conflicts, "seq", res.Seq)
		}
		if res.Fenced > 0 {
			// A newer term refused the pass: whatever this replica decides now is stale.
			log.Info("controller stopped: a newer leader term refused its writes", "loop", l.cfg.Name, "fenced", res.Fenced)
			return nil
		}
		if res.Seq > 0 {
			if p.WaitSeq(ctx, res.Seq) != nil {
				return nil
			}
		}
		var wake <-chan time.Time
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 100*time.Millisecond), l.cfg.MaxBackoff)
			log.Warn("pass failed; retrying", "err", err, "in", backoff)
			changed = nil // retry on the timer, not on every event
			wake = time.After(backoff)
		case res.Written > 0:
			// The state moved by our own writes: take the next step at once.
			backoff = 0
			continue
		default:
			backoff = 0
			if !res.RequeueAt.IsZero() {
				d := min(max(res.RequeueAt.Sub(l.cfg.Clock()), 0), l.cfg.Resync)
				wake = time.After(d)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-l.trigger:
		case <-wake:
		}
	}
}

// Batch collects the conditional appends of one pass, at most one per subject (a pass decides
// one step per object; the next step waits for the next pass).
type Batch struct {
	now      time.Time
	meta     events.Meta
	writes   []store.Write
	subjects map[string]bool
	err      error
	trace    *batchTrace // nil: tracing off
}

// NewBatch starts a batch whose events carry time now and meta.
func NewBatch(now time.Time, meta events.Meta) *Batch {
	return &Batch{now: now, meta: meta, subjects: map[string]bool{}}
}

// Add queues p about ref (node for bind and status subjects), conditional on its subject being at
// expect. It returns false, and queues nothing, if the batch already writes to that subject.
func (b *Batch) Add(ref events.ObjectRef, node string, p events.Payload, expect uint64) bool {
	return b.AddCaused(events.Cause{}, ref, node, p, expect)
}

// AddCaused is Add for an event reacting to cause: its causationId is cause's id, its
// correlation cause's, and it continues cause's trace (through a span of the pass, when
// traced).
func (b *Batch) AddCaused(cause events.Cause, ref events.ObjectRef, node string, p events.Payload, expect uint64) bool {
	meta := b.meta
	if b.trace != nil {
		meta.Traceparent = b.trace.span(cause, ref, node)
	}
	ev, err := events.New(b.now, meta.From(cause), ref, node, p)
	if err != nil {
		b.err = errors.Join(b.err, err)
		return false
	}
	if b.subjects[ev.Subject] {
		return false
	}
	b.subjects[ev.Subject] = true
	b.writes = append(b.writes, store.Write{Event: ev, Expect: expect})
	return true
}

// Has reports whether the batch already writes to subject.
func (b *Batch) Has(subject string) bool { return b.subjects[subject] }

// Len is the number of queued writes.
func (b *Batch) Len() int { return len(b.writes) }

// Writes returns the queued writes, for tests and logs.
func (b *Batch) Writes() []store.Write { return b.writes }

// chunk bounds the appends in flight: JetStream stalls an async publisher with more than a few
// thousand outstanding. It is also one fenced atomic batch: a fence and chunk writes.
const chunk = store.MaxBatch - 1

// Flush appends the batch and reports the outcome. Conflicts and writes refused by a newer
// leader term (Fenced) are counted in the result, not returned; any other failure is returned
// (joined), with the result still counting what landed. Through a store.Fenced log the chunks
// are atomic batches, each one fence and chunk writes (the server's limit is MaxBatch messages).
//
// Writes go out in subject order, so what a pass writes lands in the same order whatever order
// it decided in (passes range over maps); writes of one batch are independent of each other.
func (b *Batch) Flush(ctx context.Context, log Log) (Result, error) {
	slices.SortStableFunc(b.writes, func(x, y store.Write) int { return strings.Compare(x.Event.Subject, y.Event.Subject) })
	res := Result{}
	errs := b.err
	for start := 0; start < len(b.writes); start += chunk {
		ws := b.writes[start:min(start+chunk, len(b.writes))]
		for i, err := range log.AppendAll(ctx, ws) {
			switch {
			case err == nil:
				res.Written++
				res.Seq = max(res.Seq, ws[i].Event.Seq)
			case errors.Is(err, events.ErrFenced):
				res.Fenced++
			case errors.Is(err, events.ErrConflict):
				res.Conflicts++
			default:
				errs = errors.Join(errs, err)
			}
		}
	}
	b.trace.end(res)
	if errs != nil {
		return res, fmt.Errorf("append %d events (%d landed, %d conflicts, %d fenced): %w", len(b.writes), res.Written, res.Conflicts, res.Fenced, errs)
	}
	return res, nil
}

// Changes is what a controller's passes take from the projection's watch (live.Watch) while it
// runs: nothing watched means every pass looks at everything. Safe for concurrent use.
type Changes struct {
	mu sync.Mutex
	w  *live.Changes
}

// Watch starts watching p (the first Take asks for everything); stop ends it.
func (c *Changes) Watch(p *live.Projection) (stop func()) {
	w := p.Watch()
	c.mu.Lock()
	c.w = w
	c.mu.Unlock()
	return func() {
		p.Unwatch(w)
		c.mu.Lock()
		c.w = nil
		c.mu.Unlock()
	}
}

// Take returns the changes since the last Take, or all true when the pass must look at
// everything (nothing watched, the first Take, an overflow, a Redo).
func (c *Changes) Take() (changes []live.Change, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return nil, true
	}
	return c.w.Take()
}

// Done ends a pass: if its writes did not all land (err, or conflicts), the next pass looks at
// everything, since the changes that led to them were taken.
func (c *Changes) Done(res Result, err error) {
	if err == nil && res.Conflicts == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w != nil {
		c.w.Redo()
	}
}
