package leader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/utils/clock"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// DefaultTTL is the leader key's expiry: a standby takes over at most this long after a leader
// died without resigning.
const DefaultTTL = 10 * time.Second

// Key is the key the control loops' leader holds in api.LeaderBucket.
const Key = "controllers"

// OpenBucket opens api.LeaderBucket, which the bootstrap step creates with the cluster's TTL
// (package bootstrap); it never creates it.
//
// Errors: events.ErrNotFound when the bucket does not exist; events.ErrUnavailable when
// JetStream does not answer.
func OpenBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return api.OpenKeyValue(ctx, js, api.LeaderBucket)
}

// Config tunes an election. The zero value works: intervals follow the bucket's TTL.
type Config struct {
	// RenewInterval is how often the leader renews the key; default TTL/3.
	RenewInterval time.Duration
	// RetryInterval is how often a standby tries to take the key when it has heard nothing;
	// default TTL/3.
	RetryInterval time.Duration
	// Clock times renewals and the term's end; default the real clock. The key's TTL runs on
	// the server's clock, so a fake one is for tests that step it past a deadline.
	Clock  Clock
	Logger *slog.Logger
}

// Clock is the election's time; clock.RealClock is the real one.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) clock.Timer
	NewTicker(d time.Duration) clock.Ticker
}

// Run campaigns for leadership as id until ctx ends, and calls onLead for every term won, with a
// context cancelled the moment the term ends (see the package doc). When ctx ends while leading,
// Run cancels onLead's context, waits for onLead to return and resigns (deletes the key, if it
// still holds it) so a standby takes over at once. If onLead returns on its own, Run resigns too
// and campaigns again.
//
// Run returns nil when ctx ends. Errors: events.ErrFailedPrecondition if the bucket has no TTL
// (a dead leader would hold the key forever); events.ErrUnavailable if the bucket's status cannot
// be read.
func Run(ctx context.Context, kv jetstream.KeyValue, id string, cfg Config, onLead func(ctx context.Context)) error {
	st, err := kv.Status(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("leader bucket %s status: %w", kv.Bucket(), errors.Join(err, events.ErrUnavailable))
	}
	ttl := st.TTL()
	if ttl <= 0 {
		return fmt.Errorf("leader bucket %s has no TTL, so a dead leader would hold it forever: recreate it with a TTL: %w",
			kv.Bucket(), events.ErrFailedPrecondition)
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = ttl / 3
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = ttl / 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	c := &candidate{kv: kv, id: id, value: []byte(id), ttl: ttl, cfg: cfg, log: cfg.Logger.With("candidate", id)}
	return c.run(ctx, onLead)
}

type candidate struct {
	kv    jetstream.KeyValue
	id    string
	value []byte
	ttl   time.Duration
	cfg   Config
	log   *slog.Logger
}

func (c *candidate) run(ctx context.Context, onLead func(context.Context)) error {
	// vacated is signalled when the key is deleted or expires.
	vacated := make(chan struct{}, 1)
	if w, err := c.kv.Watch(ctx, Key, jetstream.UpdatesOnly()); err != nil {
		c.log.Warn("cannot watch the leader key; polling only", "err", err)
	} else {
		go func() {
			for e := range w.Updates() {
				if e != nil {
					c.log.Debug("leader key changed", "op", e.Operation(), "revision", e.Revision(), "created", e.Created())
				}
				if e != nil && e.Operation() != jetstream.KeyValuePut {
					select {
					case vacated <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	retry := c.cfg.Clock.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C():
		case <-vacated:
		}
		sent := c.cfg.Clock.Now()
		rev, err := c.acquire(ctx)
		if err == nil {
			c.lead(ctx, rev, sent, onLead)
			if ctx.Err() != nil {
				return nil
			}
		} else if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			c.log.Warn("campaign failed", "err", err)
		}
		reset(retry, c.cfg.RetryInterval)
	}
}

// reset resets t to fire after d. It drains a firing nobody received first: a fake clock's
// timer, unlike time.Timer since Go 1.23, would keep it and fire at once.
func reset(t clock.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C():
		default:
		}
	}
	t.Reset(d)
}

// acquire takes the key if it is free, or if it already holds our id (we restarted, or our last
// renewal timed out but landed).
func (c *candidate) acquire(ctx context.Context) (uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RetryInterval)
	defer cancel()
	rev, err := c.kv.Create(rctx, Key, c.value)
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, err
	}
	e, gerr := c.kv.Get(rctx, Key)
	if gerr != nil || !bytes.Equal(e.Value(), c.value) {
		return 0, err
	}
	return c.kv.Update(rctx, Key, c.value, e.Revision())
}

// lead runs one term: onLead on its own goroutine, renewals here, until the term ends.
func (c *candidate) lead(ctx context.Context, rev uint64, renewed time.Time, onLead func(context.Context)) {
	start := c.cfg.Clock.Now()
	c.log.Info("became leader", "revision", rev)
	termCtx, endTerm := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		onLead(termCtx)
	}()
	end := func(why string, args ...any) {
		endTerm()
		<-done
		c.log.Info("leadership ended", append([]any{"why", why, "term", c.cfg.Clock.Now().Sub(start).Round(time.Millisecond)}, args...)...)
	}
	// Past this point the server may have expired the key and handed it to someone else, so
	// the term ends then even if no renewal has answered yet.
	margin := c.ttl / 10
	deadline := renewed.Add(c.ttl - margin)
	expire := c.cfg.Clock.NewTimer(deadline.Sub(c.cfg.Clock.Now()))
	defer expire.Stop()
	tick := c.cfg.Clock.NewTicker(c.cfg.RenewInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			end("shutting down")
			c.resign(rev)
			return
		case <-done:
			end("onLead returned")
			c.resign(rev)
			return
		case <-expire.C():
			end("could not renew in time")
			return
		case <-tick.C():
		}
		sent := c.cfg.Clock.Now()
		rctx, cancel := context.WithTimeout(ctx, deadline.Sub(sent))
		next, err := c.kv.Update(rctx, Key, c.value, rev)
		cancel()
		switch {
		case err == nil:
			rev, deadline = next, sent.Add(c.ttl-margin)
			reset(expire, deadline.Sub(c.cfg.Clock.Now()))
		case ctx.Err() != nil:
			// Shutting down: the next select resigns.
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
			end("key taken or expired", "err", err)
			return
		default:
			// The expire timer ends the term if no retry gets through in time.
			c.log.Warn("renewal failed; retrying", "err", err, "until", deadline)
		}
	}
}

// resign deletes the key if it still holds our revision, so a standby does not wait for expiry.
func (c *candidate) resign(rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RetryInterval)
	defer cancel()
	if err := c.kv.Delete(ctx, Key, jetstream.LastRevision(rev)); err != nil {
		c.log.Warn("could not resign; the key expires by itself", "err", err)
		return
	}
	c.log.Info("resigned")
}
