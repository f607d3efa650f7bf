package snapshot

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// Defaults of the scheduler's flags.
const (
	DefaultEvery    = 100_000
	DefaultInterval = 10 * time.Minute
)

// WriterConfig says when a Writer writes. The zero value never writes.
type WriterConfig struct {
	// Every is how many events may be folded since the last snapshot before the next is
	// written; 0: never for that reason.
	Every uint64
	// Interval is how long after the last snapshot the next is written, if anything was folded
	// since; 0: never for that reason.
	Interval time.Duration
	// Keep is how many snapshots each bucket keeps (default DefaultKeep).
	Keep int
	// Compression of the bodies (default Zstd; see docs/bench/snapshots.md).
	Compression Compression
	// After is the clock (default time.After).
	After  func(time.Duration) <-chan time.Time
	Logger *slog.Logger
}

// Source is the projection a Writer snapshots: a live.Projection that follows the whole log
// with one consumer, so that its state at Seq is exactly the fold of the log's first Seq
// events.
type Source interface {
	View(func(*state.State))
	Seq() uint64
	Changed() <-chan struct{}
}

// Writer writes snapshots of a projection to the full bucket and, restricted to NodeKinds, to
// the node bucket, and keeps the newest Keep of each.
type Writer struct {
	log         *store.Store
	full, nodes *Bucket
	src         Source
	cfg         WriterConfig
	// size is the last body's size, to size the next buffer once.
	size int
}

// NewWriter returns a writer of src's snapshots; nodes may be nil.
func NewWriter(log *store.Store, full, nodes *Bucket, src Source, cfg WriterConfig) *Writer {
	if cfg.Keep == 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Compression == None {
		cfg.Compression = Zstd
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Writer{log: log, full: full, nodes: nodes, src: src, cfg: cfg}
}

// Written is what one snapshot cost.
type Written struct {
	Seq uint64
	// Locked is how long the projection's read lock was held (the fold waited that long, to
	// copy what it changes in place); Walked the writing of the bodies from the copy after it;
	// Encoded the compression and checksum; Took the whole write, buckets included.
	Locked, Walked, Encoded, Took time.Duration
	// Raw and Stored are the full snapshot's body size and what it took in the bucket.
	Raw, Stored int
	// NodeStored is the node bucket's snapshot size.
	NodeStored int
}

// Run writes a snapshot whenever one is due, until ctx ends. It starts counting from the
// newest snapshot in the full bucket. A failed write is logged and tried again when the next
// is due; Run returns only with ctx.
func (w *Writer) Run(ctx context.Context) error {
	if w.cfg.Every == 0 && w.cfg.Interval == 0 {
		return nil
	}
	var last uint64
	if infos, err := w.full.List(ctx); err == nil && len(infos) > 0 {
		last = infos[0].Seq
	}
	var timer <-chan time.Time
	if w.cfg.Interval > 0 {
		timer = w.cfg.After(w.cfg.Interval)
	}
	for {
		changed := w.src.Changed()
		fired := false
		select {
		case <-timer:
			fired = true
			timer = w.cfg.After(w.cfg.Interval)
		default:
		}
		// After the timer: what was folded before it fired counts.
		seq := w.src.Seq()
		due := w.cfg.Every > 0 && seq >= last+w.cfg.Every || fired && seq > last
		if due {
			wr, err := w.Write(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				w.cfg.Logger.Warn("write snapshot", "seq", seq, "err", err)
			} else {
				w.cfg.Logger.Info("wrote snapshot", "seq", wr.Seq, "bytes", wr.Stored, "raw", wr.Raw, "node_bytes", wr.NodeStored,
					"locked", wr.Locked.Round(time.Microsecond), "walked", wr.Walked.Round(time.Millisecond), "took", wr.Took.Round(time.Millisecond))
			}
			// A failed write waits for the next reason too, rather than being tried again at
			// once for every event.
			last = max(last, seq)
			if w.cfg.Interval > 0 {
				timer = w.cfg.After(w.cfg.Interval)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-timer:
			// Seen again at the top of the loop.
			timer = closedTimer()
		}
	}
}

// closedTimer is a channel that has fired, for the loop to see at once.
func closedTimer() <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

// Write writes one snapshot of the projection as it is now (replacing one of the same sequence)
// and prunes both buckets.
func (w *Writer) Write(ctx context.Context) (Written, error) {
	start := time.Now()
	var (
		wr         Written
		body, node []byte
		err        error
	)
	// Under the read lock only a copy of what the fold changes in place (the fold waits for
	// it, readers do not); walking it, compressing and the buckets come after.
	var frozen *state.Frozen
	w.src.View(func(s *state.State) {
		wr.Seq = s.Seq
		frozen = s.Freeze()
	})
	wr.Locked = time.Since(start)
	if body, err = frozen.MarshalSnapshot(make([]byte, 0, w.size+w.size/8), nil); err == nil && w.nodes != nil {
		node, err = frozen.MarshalSnapshot(nil, NodeKinds)
	}
	frozen = nil
	wr.Walked = time.Since(start) - wr.Locked
	if err != nil {
		return wr, err
	}
	if wr.Seq == 0 {
		return wr, fmt.Errorf("the log is empty: nothing to snapshot")
	}
	w.size, wr.Raw = len(body), len(body)
	id, err := Identity(ctx, w.log)
	if err != nil {
		return wr, err
	}
	h := Header{Stream: id, Seq: wr.Seq, Compression: w.cfg.Compression}
	// The time of the event at the sequence, for a replay up to a time; a snapshot without it
	// still serves every other reader.
	if ev, err := w.log.Get(ctx, wr.Seq); err == nil {
		h.Time = ev.Time
	}
	encStart := time.Now()
	data, err := Encode(h, body)
	if err != nil {
		return wr, err
	}
	var nodeData []byte
	if w.nodes != nil {
		nh := h
		nh.Kinds = NodeKinds
		if nodeData, err = Encode(nh, node); err != nil {
			return wr, err
		}
	}
	wr.Encoded = time.Since(encStart)
	wr.Stored, wr.NodeStored = len(data), len(nodeData)
	if _, err := w.full.Put(ctx, h, data); err != nil {
		return wr, err
	}
	if w.nodes != nil {
		nh := h
		nh.Kinds = NodeKinds
		if _, err := w.nodes.Put(ctx, nh, nodeData); err != nil {
			return wr, err
		}
	}
	// The node bucket holds the full one's sequences or fewer (its put comes second): it is
	// pruned by the full one's names, without a listing, which the scheduler's credentials do not
	// allow there (a JWT has little room left).
	deleted, err := w.full.Prune(ctx, w.cfg.Keep)
	if err != nil {
		w.cfg.Logger.Warn("prune snapshots", "bucket", w.full.Name(), "err", err)
	}
	if w.nodes != nil {
		if err := w.nodes.Delete(ctx, deleted...); err != nil {
			w.cfg.Logger.Warn("prune snapshots", "bucket", w.nodes.Name(), "err", err)
		}
	}
	wr.Took = time.Since(start)
	return wr, nil
}

// Flags registers the scheduler's snapshot flags on fs, into cfg, with their defaults:
// --snapshot-events, --snapshot-interval and --snapshot-keep.
func Flags(fs *flag.FlagSet, cfg *WriterConfig) {
	fs.Uint64Var(&cfg.Every, "snapshot-events", DefaultEvery, "the leader writes a snapshot of the fold after this many events (0: not for that reason)")
	fs.DurationVar(&cfg.Interval, "snapshot-interval", DefaultInterval, "the leader writes a snapshot this long after the last, if anything happened since (0: not for that reason)")
	fs.IntVar(&cfg.Keep, "snapshot-keep", DefaultKeep, "snapshots kept in each bucket; older ones are deleted")
}
