package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
)

// ReadOptions selects a range of the log.
type ReadOptions struct {
	// Filters are subjects (wildcards allowed); empty means the whole log.
	Filters []string
	// From is the first sequence to deliver; 0 and 1 both mean the beginning.
	From uint64
	// To is the last sequence to deliver; 0 means the head of the log when the read starts.
	To uint64
	// OnPoison is called for events that do not decode; default: log and skip.
	OnPoison func(subject string, seq uint64, err error)
	// Raw skips payload decoding: Event.Data is nil. For listings that only need envelopes.
	Raw bool
}

// FollowOptions selects where Follow starts and what it tells the caller.
type FollowOptions struct {
	Filters  []string
	From     uint64
	OnPoison func(subject string, seq uint64, err error)
	// CaughtUp is called once, right after the last event that existed when Follow started was
	// handled (immediately if there was none).
	CaughtUp func(head uint64)
}

// Read delivers the events in [From, To] matching Filters to fn, in order, and returns when the
// range is done. fn returning an error stops the read with that error.
func (s *Store) Read(ctx context.Context, opts ReadOptions, fn func(*events.Event) error) error {
	head, err := s.headOf(ctx, opts.Filters)
	if err != nil {
		return err
	}
	if opts.To != 0 && opts.To < head {
		head = opts.To
	}
	if head == 0 || head < opts.From {
		return nil
	}
	return s.consume(ctx, opts.Filters, opts.From, opts.OnPoison, opts.Raw, func(ev *events.Event) (bool, error) {
		if ev.Seq > head {
			return true, nil
		}
		if ev.Data != nil || opts.Raw {
			if err := fn(ev); err != nil {
				return true, err
			}
		}
		return ev.Seq >= head, nil
	})
}

// Follow delivers events matching Filters from From on, in order, until ctx is done, and then
// returns ctx's error. See FollowOptions.CaughtUp.
//
// A consumer can stall without an error: seen when the server that held it was killed while a
// stream leader was being elected (every agent and the scheduler stopped receiving, for good).
// So a watchdog compares, whenever nothing was delivered for StallCheck, what was delivered with
// the log's last sequence on the filters; when the log is ahead twice in a row, or the consumer
// fails as unavailable, Follow starts a new consumer after the last event it delivered. Nothing
// is delivered twice or skipped.
func (s *Store) Follow(ctx context.Context, opts FollowOptions, fn func(*events.Event)) error {
	head, err := s.headOf(ctx, opts.Filters)
	if err != nil {
		return err
	}
	caughtUp := false
	markCaughtUp := func() {
		caughtUp = true
		if opts.CaughtUp != nil {
			opts.CaughtUp(head)
		}
	}
	if head == 0 || head < opts.From {
		markCaughtUp()
	}
	from := max(opts.From, 1)
	var last atomic.Uint64 // the last sequence delivered (or skipped as poison)
	last.Store(from - 1)
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithCancel(ctx)
		var stalled atomic.Bool
		go s.watch(cctx, opts.Filters, &last, func() { stalled.Store(true); cancel() })
		err := s.consume(cctx, opts.Filters, last.Load()+1, opts.OnPoison, false, func(ev *events.Event) (bool, error) {
			if ev.Data != nil {
				fn(ev)
			}
			last.Store(ev.Seq)
			if !caughtUp && ev.Seq >= head {
				markCaughtUp()
			}
			return false, nil
		})
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !stalled.Load() && !errors.Is(err, events.ErrUnavailable) {
			return err
		}
		s.log.Warn("following the log again", "filters", opts.Filters, "after", last.Load(), "stalled", stalled.Load(), "err", err)
		select {
		case <-time.After(retryWait(attempt)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// StallCheck is how long a follower goes without a delivery before it asks whether the log has
// moved on without it.
var StallCheck = 5 * time.Second

// watch calls stalled when, twice in a row, StallCheck passed without a delivery while the log
// holds events on filters past the last one delivered.
func (s *Store) watch(ctx context.Context, filters []string, last *atomic.Uint64, stalled func()) {
	t := time.NewTicker(StallCheck)
	defer t.Stop()
	seen, behind := last.Load(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := last.Load()
		if now != seen {
			seen, behind = now, 0
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
		head, err := s.headOf(hctx, filters)
		cancel()
		if err != nil || head <= now {
			behind = 0
			continue
		}
		if behind++; behind >= 2 {
			stalled()
			return
		}
	}
}

// headOf is the last sequence among filters (the whole log when there are none).
func (s *Store) headOf(ctx context.Context, filters []string) (uint64, error) {
	if len(filters) == 0 {
		return s.Head(ctx)
	}
	var head uint64
	for _, f := range filters {
		seq, err := s.LastSeq(ctx, f)
		if err != nil {
			return 0, err
		}
		head = max(head, seq)
	}
	return head, nil
}

// consume runs an ordered consumer and hands each message to fn (with Data nil for poison
// events, which are reported) until fn says stop or ctx ends.
func (s *Store) consume(ctx context.Context, filters []string, from uint64, onPoison func(string, uint64, error), raw bool,
	fn func(*events.Event) (stop bool, err error)) error {
	if onPoison == nil {
		onPoison = func(subject string, seq uint64, err error) {
			s.log.Warn("skipping event that does not decode", "subject", subject, "seq", seq, "err", err)
		}
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from
	}
	cons, err := s.js.OrderedConsumer(ctx, s.name, cfg)
	if err != nil {
		return fmt.Errorf("read %v: %w", filters, translate(err))
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("read %v: %w", filters, translate(err))
	}
	// One goroutine reads messages off the consumer, the decoder decodes them on every core, and
	// this goroutine hands them to fn in order.
	dec := events.NewDecoder(raw)
	var readErr error // set before dec.Close, read after Next reports the end
	go func() {
		defer dec.Close()
		for {
			msg, err := it.Next()
			if err != nil {
				readErr = err
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				readErr = fmt.Errorf("message metadata: %w", err)
				return
			}
			dec.Submit(msg.Subject(), md.Sequence.Stream, msg.Data(), msg.Headers().Get(TraceparentHeader))
			// Catching up, batches fill; following live, a message goes out at once.
			if md.NumPending == 0 {
				dec.Flush()
			}
		}
	}()
	defer func() {
		it.Stop()
		// Let the reader finish whatever it was submitting.
		go func() {
			for {
				if _, ok := dec.Next(); !ok {
					return
				}
			}
		}()
	}()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
		}
	}()
	for {
		m, ok := dec.Next()
		if !ok {
			err := readErr
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return fmt.Errorf("read %v: iterator closed: %w", filters, events.ErrUnavailable)
			}
			return fmt.Errorf("read %v: %w", filters, translate(err))
		}
		ev := m.Event
		if m.Err != nil {
			onPoison(m.Subject, m.Seq, m.Err)
			ev = &events.Event{Subject: m.Subject, Seq: m.Seq}
		} else {
			ev.Traceparent = m.Header
		}
		stop, err := fn(ev)
		if err != nil || stop {
			return err
		}
	}
}
