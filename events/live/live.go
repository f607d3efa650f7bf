// Package live keeps a projection current: it follows the log, folds every event into a
// state.State, and lets readers look at it, wait for a sequence, and hear about changes.
//
// # Ordering and concurrency
//
// Run applies events in stream order under a write lock (with several filters, in order per
// filter; see Run). View runs readers under
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

	synced     chan struct{}
	syncedOnce sync.Once

	// notify is closed and replaced after every applied event: a broadcast without queues.
	nmu    sync.Mutex
	notify chan struct{}
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
	if len(filters) <= 1 {
		return p.follow(ctx, s, filters, from, func(head uint64) {
			p.syncedOnce.Do(func() { close(p.synced) })
			p.log.Info("projection synced", "seq", head)
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		pending = len(filters)
		first   error
	)
	for _, f := range filters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.follow(ctx, s, []string{f}, from, func(head uint64) {
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

// follow runs one consumer over filters and folds what it delivers.
func (p *Projection) follow(ctx context.Context, s *store.Store, filters []string, from uint64, caughtUp func(uint64)) error {
	err := s.Follow(ctx, store.FollowOptions{
		Filters: filters,
		From:    from,
		OnPoison: func(subject string, seq uint64, err error) {
			p.log.Warn("skipping event that does not decode", "subject", subject, "seq", seq, "err", err)
			p.mu.Lock()
			p.st.Skip(subject, seq)
			p.mu.Unlock()
			p.broadcast()
		},
		CaughtUp: caughtUp,
	}, p.Apply)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// MarkSynced closes p's Synced channel: for tests and tools that feed a projection with Apply
// instead of Run.
func MarkSynced(p *Projection) { p.syncedOnce.Do(func() { close(p.synced) }) }

// Apply folds one event (Run calls it; tests may call it directly).
func (p *Projection) Apply(ev *events.Event) {
	p.mu.Lock()
	if err := p.st.Apply(ev); err != nil {
		p.log.Warn("event does not apply", "seq", ev.Seq, "subject", ev.Subject, "err", err)
	}
	for _, h := range p.hooks {
		h(p.st, ev)
	}
	p.mu.Unlock()
	p.broadcast()
}

func (p *Projection) broadcast() {
	p.nmu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.nmu.Unlock()
}

// Changed returns a channel closed at the next applied event.
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

// Seq is the sequence of the last applied event.
func (p *Projection) Seq() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.st.Seq
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
