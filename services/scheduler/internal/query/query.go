// Package query answers reads (`skiff get`) from this replica's projection.
//
// An answer reflects one projection sequence (GetChunk.Seq) and is built under one read lock,
// so it is a consistent cut of the log. A request with MinSeq waits until the projection has
// applied that sequence, so a `get` right after an `apply` sees the change on any replica.
package query

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/table"
)

// Handler answers api.GetRequest messages.
type Handler struct {
	NC         *nats.Conn
	Projection *live.Projection
	Clock      func() time.Time
	Logger     *slog.Logger
	// MaxWait bounds how long a request waits for MinSeq; default 5 s.
	MaxWait time.Duration
}

// Serve handles one request message.
func (h *Handler) Serve(msg *nats.Msg) {
	var req api.GetRequest
	seq := h.Projection.Seq()
	w := api.NewChunkWriter(h.NC, msg, seq)
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		_ = w.Fail(fmt.Errorf("malformed query: %v: %w", err, events.ErrInvalidArgument))
		return
	}
	if err := h.answer(&req, w); err != nil {
		if ferr := w.Fail(err); ferr != nil {
			h.Logger.Warn("answer query", "kind", req.Kind, "err", ferr)
		}
	}
}

func (h *Handler) answer(req *api.GetRequest, w *api.ChunkWriter) error {
	res, ok := table.Lookup(req.Kind)
	if !ok {
		return fmt.Errorf("the server doesn't have a resource type %q: %w", req.Kind, events.ErrInvalidArgument)
	}
	wait := h.MaxWait
	if wait == 0 {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.Projection.WaitSynced(ctx); err != nil {
		return fmt.Errorf("this scheduler is still reading the log: %w", events.ErrUnavailable)
	}
	if req.MinSeq > 0 {
		if err := h.Projection.WaitSeq(ctx, req.MinSeq); err != nil {
			return fmt.Errorf("this scheduler has not yet seen sequence %d: %w", req.MinSeq, events.ErrUnavailable)
		}
	}
	opts := table.Options{Namespace: req.Namespace, AllNamespaces: req.AllNamespaces, Name: req.Name, Selector: req.Selector, Wide: req.Wide}
	clock := h.Clock
	if clock == nil {
		clock = time.Now
	}
	var (
		rows  [][]string
		items []json.RawMessage
		err   error
		seq   uint64
	)
	h.Projection.View(func(st *state.State) {
		seq = st.Seq
		if req.Table {
			rows = table.Rows(st, res.Plural, opts, clock())
			return
		}
		items, err = table.Objects(st, res.Plural, opts)
	})
	if err != nil {
		return err
	}
	if req.Name != "" && len(rows) == 0 && len(items) == 0 {
		return fmt.Errorf("%s %q not found: %w", res.Plural, req.Name, events.ErrNotFound)
	}
	w.SetSeq(seq)
	if req.Table {
		w.Columns(table.Columns(res.Plural, req.Wide, req.AllNamespaces))
		for _, r := range rows {
			if err := w.Row(r); err != nil {
				return err
			}
		}
	}
	for _, it := range items {
		if err := w.Item(it); err != nil {
			return err
		}
	}
	return w.Close()
}
