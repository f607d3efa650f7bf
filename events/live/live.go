// Package live keeps a projection current: it follows the log, folds every event into a
// state.State, and lets readers look at it, wait for a sequence, and hear about changes.
//
// # Ordering and concurrency
//
// Run applies events in stream order under a write lock, as many at a time as have arrived (with
// several filters, in order per filter; see Run). View runs readers under
// a read lock, so a reader always sees the state after a whole event, never half of one. Readers
// must not keep pointers into the state after View returns.
//
// # Synced
//
// Synced is closed once the projection has applied everything the log held when Run started: a
// service must not act before that (like kube-proxy's "synced" gate).
package live

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// Projection is a live state.State.
type Projection struct {
	log *slog.Logger

	mu    sync.RWMutex
	st    *state.State
	hooks []func(*state.State, *events.Event)
	// watches collect the changes for controllers that work on what changed (see Watch);
	// guarded by mu.
	watches map[*Changes]struct{}

	synced     chan struct{}
	syncedOnce sync.Once

	// notify is closed and replaced after every applied batch of events: a broadcast without
	// queues.
	nmu    sync.Mutex
	notify chan struct{}

	// folds counts the folder's batches (for tests); only the folder writes it.
	folds int
	// folded counts the events applied or skipped, for metrics: one atomic add per batch.
	folded atomic.Uint64

	// With several filters (see Run): the log and where each filter's consumer is.
	store     *store.Store
	followers []*follower
}

// follower is one filter's consumer and the last sequence it delivered.
type follower struct {
	filter string
	pos    atomic.Uint64
}

// New returns a projection starting from st (state.New() for the beginning of the log, or a
// snapshot).
func New(st *state.State, log *slog.Logger) *Projection {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Projection{log: log, st: st, synced: make(chan struct{}), notify: make(chan struct{})}
}

// OnEvent registers fn to run after each event is applied, under the write lock: fn must be fast
// and must not call View. Register hooks before Run.
func (p *Projection) OnEvent(fn func(*state.State, *events.Event)) {
	p.hooks = append(p.hooks, fn)
}

// Run follows the log from the state's sequence onward until ctx ends.
//
// With several filters, Run follows each with its own consumer (so each travels in the
// consumer-create subject, where the server's permissions can check it, as a node's must):
// events of one subject still come in order, but events matching different filters may
// interleave out of log order, and Seq is the highest sequence applied. Synced waits for all.
func (p *Projection) Run(ctx context.Context, s *store.Store, filters []string) error {
	p.mu.RLock()
	from := p.st.Seq + 1
	p.mu.RUnlock()
	// The followers hand what they read to one folder, which applies whatever has queued up
	// under one lock (see fold).
	q := make(chan item, foldQueue)
	folded := make(chan struct{})
	go func() {
		defer close(folded)
		p.fold(q)
	}()
	defer func() {
		close(q)
		<-folded
	}()
	if len(filters) <= 1 {
		return p.follow(ctx, s, filters, from, nil, q, func(head uint64) {
			p.syncedOnce.Do(func() { close(p.synced) })
			p.log.Info("projection synced", "seq", head)
		})
	}
	p.store = s
	for _, f := range filters {
		p.followers = append(p.followers, &follower{filter: f})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		pending = len(filters)
		first   error
	)
	for _, fl := range p.followers {
		f := fl.filter
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.follow(ctx, s, []string{f}, from, &fl.pos, q, func(head uint64) {
				mu.Lock()
				defer mu.Unlock()
				if pending--; pending == 0 {
					p.syncedOnce.Do(func() { close(p.synced) })
					p.log.Info("projection synced", "seq", p.Seq())
				}
			})
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("follow %s: %w", f, err)
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	return first
}

// follow runs one consumer over filters and queues what it delivers for the folder; pos, if
// set, records the last sequence folded.
func (p *Projection) follow(ctx context.Context, s *store.Store, filters []string, from uint64, pos *atomic.Uint64, q chan<- item, caughtUp func(uint64)) error {
	if pos == nil {
		pos = new(atomic.Uint64)
	}
	err := s.Follow(ctx, store.FollowOptions{
		Filters: filters,
		From:    from,
		OnPoison: func(subject string, seq uint64, err error) {
			p.log.Warn("skipping event that does not decode", "subject", subject, "seq", seq, "err", err)
			q <- item{skip: subject, seq: seq, pos: pos}
		},
		// Caught up means folded: the mark goes through the queue behind the events.
		CaughtUp: func(head uint64) { q <- item{then: func() { caughtUp(head) }} },
	}, func(ev *events.Event) {
		q <- item{ev: ev, seq: ev.Seq, pos: pos}
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// item is one thing for the folder: an event to apply, a poison event's subject to skip, or a
// function to run once everything queued before it is applied.
type item struct {
	ev   *events.Event
	skip string
	seq  uint64
	pos  *atomic.Uint64 // the follower's position, set to seq once applied
	then func()
}

// foldQueue is how many items wait for the folder at most, and foldBatch how many it applies
// under one lock.
const (
	foldQueue = 8192
	foldBatch = 1024
)

// fold applies queued items until q closes. It takes whatever has queued up, up to foldBatch,
// under one write lock and wakes the readers once. Applying one event per lock made the fold
// wait, for every event, for the readers' scans in progress, which start again at every wake-up:
// a burst of 30,000 PodCreated folded at a few hundred events a second behind the controllers.
func (p *Projection) fold(q <-chan item) {
	batch := make([]item, 0, foldBatch)
	for it := range q {
		batch = append(batch[:0], it)
	drain:
		for len(batch) < foldBatch {
			select {
			case it, ok := <-q:
				if !ok {
					break drain
				}
				batch = append(batch, it)
			default:
				break drain
			}
		}
		p.mu.Lock()
		p.folds++
		n := 0
		for _, it := range batch {
			switch {
			case it.ev != nil:
				p.applyLocked(it.ev)
				n++
			case it.skip != "":
				p.st.Skip(it.skip, it.seq)
				n++
			}
		}
		p.mu.Unlock()
		p.folded.Add(uint64(n))
		for _, it := range batch {
			if it.pos != nil {
				it.pos.Store(it.seq)
			}
		}
		p.broadcast()
		for _, it := range batch {
			if it.then != nil {
				it.then()
			}
		}
		clear(batch) // drop the events for the collector
	}
}

// MarkSynced closes p's Synced channel: for tests and tools that feed a projection with Apply
// instead of Run.
func MarkSynced(p *Projection) { p.syncedOnce.Do(func() { close(p.synced) }) }

// Apply folds one event (for tests and tools that feed a projection themselves; Run folds in
// batches).
func (p *Projection) Apply(ev *events.Event) {
	p.mu.Lock()
	p.applyLocked(ev)
	p.mu.Unlock()
	p.folded.Add(1)
	p.broadcast()
}

func (p *Projection) applyLocked(ev *events.Event) {
	var pod *state.Pod
	if len(p.watches) > 0 && ev.Object.Kind == events.KindPod {
		// Looked up before the event applies, so a deleted pod's owner and labels are known.
		pod = p.st.Pods[state.Key{Namespace: ev.Object.Namespace, Name: ev.Object.Name}]
	}
	if err := p.st.Apply(ev); err != nil {
		p.log.Warn("event does not apply", "seq", ev.Seq, "subject", ev.Subject, "err", err)
	}
	for _, h := range p.hooks {
		h(p.st, ev)
	}
	if len(p.watches) > 0 {
		if pod == nil && ev.Object.Kind == events.KindPod {
			pod = p.st.Pods[state.Key{Namespace: ev.Object.Namespace, Name: ev.Object.Name}]
		}
		ch := Change{Object: ev.Object, Type: ev.Type, Seq: ev.Seq, Pod: pod, Traceparent: ev.Traceparent}
		for w := range p.watches {
			w.add(ch)
		}
	}
}

// Change is one applied event, as a Watch collects it: what it was about, not its payload
// (which the state holds, and a watch must not keep alive).
type Change struct {
	Object events.ObjectRef
	Type   string
	Seq    uint64
	// Pod is the pod a pod event is about, as the state knew it just before the event (or just
	// after, for the event that created it); nil for other kinds and unknown pods. Only its
	// fields that never change after creation (metadata, owner, spec) may be read outside View.
	Pod *state.Pod
	// Traceparent is the event's trace context, for the span of a reaction to link. Only that:
	// a watch may hold a million changes, and each word costs.
	Traceparent string
}

// MaxChanges is how many changes a Watch holds between two Takes; past it, it forgets them and
// Take asks for a full pass instead.
const MaxChanges = 1 << 20

// Changes collects the events a projection applies, for a controller that works on what changed
// instead of rescanning the whole state: Take returns what was applied since the last Take.
// Take before looking at the state: every change Take returned is in the state View shows after
// it, and a change applied in between comes again at the next Take.
type Changes struct {
	mu      sync.Mutex
	changes []Change
	all     bool
}

// Watch starts collecting changes; the first Take asks for a full pass. Stop it with Unwatch.
func (p *Projection) Watch() *Changes {
	c := &Changes{all: true}
	p.mu.Lock()
	if p.watches == nil {
		p.watches = map[*Changes]struct{}{}
	}
	p.watches[c] = struct{}{}
	p.mu.Unlock()
	return c
}

// Unwatch stops c collecting changes.
func (p *Projection) Unwatch(c *Changes) {
	p.mu.Lock()
	delete(p.watches, c)
	p.mu.Unlock()
}

func (c *Changes) add(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.all {
		return
	}
	if len(c.changes) >= MaxChanges {
		c.changes, c.all = nil, true
		return
	}
	c.changes = append(c.changes, ch)
}

// Take returns the changes collected since the last Take, or all true when the caller must look
// at the whole state instead (the first Take, after too many changes, or after Redo).
func (c *Changes) Take() (changes []Change, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changes, all = c.changes, c.all
	c.changes, c.all = nil, false
	if all {
		changes = nil
	}
	return changes, all
}

// Redo asks for a full pass at the next Take: for a pass that could not finish what it took.
func (c *Changes) Redo() {
	c.mu.Lock()
	c.changes, c.all = nil, true
	c.mu.Unlock()
}

func (p *Projection) broadcast() {
	p.nmu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.nmu.Unlock()
}

// Changed returns a channel closed when the next event (or batch of events) has been applied.
func (p *Projection) Changed() <-chan struct{} {
	p.nmu.Lock()
	defer p.nmu.Unlock()
	return p.notify
}

// Synced is closed once the projection caught up with the log.
func (p *Projection) Synced() <-chan struct{} { return p.synced }

// View runs fn with the state under a read lock.
func (p *Projection) View(fn func(*state.State)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	fn(p.st)
}

// Folded is how many events the projection has applied or skipped (as undecodable) so far.
func (p *Projection) Folded() uint64 { return p.folded.Load() }

// Seq is the sequence of the last applied event.
func (p *Projection) Seq() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.st.Seq
}

// Complete is a sequence up to which the projection has applied every event its filters match:
// what a reader may claim to reflect. With one consumer that is Seq. With several (see Run), Seq
// may run ahead of a filter whose consumer is behind, so Complete asks the log: the head first,
// then each filter's last sequence; a filter whose consumer has delivered that last sequence has
// everything up to the head, any other everything up to what it delivered. On an error it
// returns the lowest delivered sequence, which is always safe.
func (p *Projection) Complete(ctx context.Context) (uint64, error) {
	if len(p.followers) == 0 {
		return p.Seq(), nil
	}
	lowest := p.followers[0].pos.Load()
	for _, f := range p.followers[1:] {
		lowest = min(lowest, f.pos.Load())
	}
	head, err := p.store.Head(ctx)
	if err != nil {
		return lowest, err
	}
	complete := head
	for _, f := range p.followers {
		pos := f.pos.Load()
		last, err := p.store.LastSeq(ctx, f.filter)
		if err != nil {
			return lowest, err
		}
		if last > pos {
			complete = min(complete, pos)
		}
	}
	return complete, nil
}

// WaitSeq waits until the projection has applied seq, or ctx ends.
func (p *Projection) WaitSeq(ctx context.Context, seq uint64) error {
	for {
		ch := p.Changed()
		if p.Seq() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for sequence %d (at %d): %w", seq, p.Seq(), ctx.Err())
		}
	}
}

// WaitSynced waits until Synced or ctx ends.
func (p *Projection) WaitSynced(ctx context.Context) error {
	select {
	case <-p.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the projection to catch up with the log: %w", ctx.Err())
	}
}
