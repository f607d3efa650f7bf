package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// LoadConfig says which snapshot a reader can use.
type LoadConfig struct {
	// Stream is the identity of the log the reader folds (Identity): a snapshot of another is
	// refused.
	Stream string
	// Head is the log's last sequence: a snapshot past it is of another log. 0: not checked.
	Head uint64
	// MaxSeq is the newest sequence the reader wants (a replay up to a point); 0: any.
	MaxSeq uint64
	// Kinds are what the reader folds (nil: every kind). A snapshot of more is restricted to
	// them (state.Restrict); one of fewer is skipped.
	Kinds  []string
	Logger *slog.Logger
}

// Loaded is the snapshot a reader starts from.
type Loaded struct {
	State  *state.State
	Info   Info
	Header Header
	// Skipped counts the newer snapshots that could not be used (each logged).
	Skipped int
	// Took is the time to list, read and decode.
	Took time.Duration
}

// Load returns the newest snapshot in b that cfg can use, trying older ones when one is
// unusable (corrupt, truncated, of another version or log, or unreadable), and logging one line
// for each it skips. It returns nil and no error when none is usable; an error only when the
// bucket cannot be listed.
func (b *Bucket) Load(ctx context.Context, cfg LoadConfig) (*Loaded, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	infos, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	skipped := 0
	for _, in := range infos {
		if cfg.MaxSeq > 0 && in.Seq > cfg.MaxSeq {
			continue
		}
		l, err := b.load(ctx, in, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			skipped++
			log.Warn("skipping snapshot", "bucket", b.name, "snapshot", in.Name, "seq", in.Seq, "err", err)
			continue
		}
		l.Skipped, l.Took = skipped, time.Since(start)
		return l, nil
	}
	return nil, nil
}

func (b *Bucket) load(ctx context.Context, in Info, cfg LoadConfig) (*Loaded, error) {
	if cfg.Stream != "" && in.Stream != "" && in.Stream != cfg.Stream {
		// Known from the listing: not worth reading.
		return nil, fmt.Errorf("%w: folded from %s, this log is %s", ErrOtherStream, in.Stream, cfg.Stream)
	}
	data, err := b.Get(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	st, h, err := Decode(data, cfg.Stream)
	if err != nil {
		return nil, err
	}
	switch {
	case h.Seq != in.Seq:
		return nil, fmt.Errorf("%w: named for sequence %d, holds %d", ErrCorrupt, in.Seq, h.Seq)
	case cfg.Head > 0 && h.Seq > cfg.Head:
		return nil, fmt.Errorf("%w: at sequence %d, past the log's last (%d)", ErrOtherStream, h.Seq, cfg.Head)
	case !holds(h.Kinds, cfg.Kinds):
		return nil, fmt.Errorf("it holds %s only, this reader folds %s", kindsString(h.Kinds), kindsString(cfg.Kinds))
	}
	if cfg.Kinds != nil && !slices.Equal(h.Kinds, cfg.Kinds) {
		if err := st.Restrict(cfg.Kinds); err != nil {
			return nil, err
		}
	}
	return &Loaded{State: st, Info: in, Header: h}, nil
}

// holds reports whether a snapshot of kinds have has everything of want (nil: every kind).
func holds(have, want []string) bool {
	if have == nil {
		return true
	}
	if want == nil {
		return false
	}
	for _, k := range want {
		if !slices.Contains(have, k) {
			return false
		}
	}
	return true
}

func kindsString(k []string) string {
	if k == nil {
		return "every kind"
	}
	return strings.Join(k, ", ")
}

// Start returns the state a service's projection starts from: the newest usable snapshot in
// the bucket called bucket, restricted to kinds (nil: every kind), or state.New() when there is
// none, the bucket is missing or may not be read. Reading snapshots never stops a service: it
// says, in one line, why it replays the log from its start instead.
func Start(ctx context.Context, st *store.Store, bucket string, kinds []string, log *slog.Logger) *state.State {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := LoadFrom(ctx, st, bucket, kinds, 0, log)
	if err != nil {
		log.Warn("cannot read snapshots: replaying the log from its start", "bucket", bucket, "err", err)
		return state.New()
	}
	if l == nil {
		log.Info("no usable snapshot: replaying the log from its start", "bucket", bucket)
		return state.New()
	}
	log.Info("starting from snapshot", "bucket", bucket, "seq", l.Header.Seq, "bytes", l.Info.Size,
		"skipped", l.Skipped, "took", l.Took.Round(time.Millisecond))
	return l.State
}

// LoadFrom opens the bucket called bucket and loads the newest snapshot of st's log in it, up
// to maxSeq (0: any), restricted to kinds (nil: every kind). It returns nil and no error when
// the bucket has none that can be used. Errors: Open's, and those of listing the bucket or
// asking the log for its identity and head.
func LoadFrom(ctx context.Context, st *store.Store, bucket string, kinds []string, maxSeq uint64, log *slog.Logger) (*Loaded, error) {
	b, err := Open(ctx, st.JetStream(), bucket)
	if err != nil {
		return nil, err
	}
	id, err := Identity(ctx, st)
	if err != nil {
		return nil, err
	}
	head, err := st.Head(ctx)
	if err != nil {
		return nil, err
	}
	return b.Load(ctx, LoadConfig{Stream: id, Head: head, MaxSeq: maxSeq, Kinds: kinds, Logger: log})
}
