package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
)

// Call sends req to subject and decodes the single reply into resp. A server-side failure comes
// back as resp.Error; Call's own error means no answer (no scheduler running, timeout).
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return noAnswer(subject, err)
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("decode answer to %s: %w", subject, err)
	}
	return nil
}

func noAnswer(subject string, err error) error {
	if errors.Is(err, nats.ErrNoResponders) {
		return events.Errorf(events.ErrUnavailable, "no scheduler is answering %s: is skiff-scheduler (or skiff up) running?", subject)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return events.Errorf(events.ErrUnavailable, "no answer to %s in time", subject)
	}
	return fmt.Errorf("%s: %w", subject, err)
}

// Reply answers a request with one JSON message.
func Reply(msg *nats.Msg, resp any) error {
	data, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	return msg.Respond(data)
}

// Get runs a query and calls fn for every chunk of the answer, in order.
func Get(ctx context.Context, nc *nats.Conn, req GetRequest, fn func(*GetChunk) error) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode query: %w", err)
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", inbox, err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.PublishRequest(SubjectGet, inbox, data); err != nil {
		return fmt.Errorf("send query: %w", err)
	}
	for i := 0; ; i++ {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return noAnswer(SubjectGet, err)
		}
		if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
			return noAnswer(SubjectGet, nats.ErrNoResponders)
		}
		var c GetChunk
		if err := json.Unmarshal(msg.Data, &c); err != nil {
			return fmt.Errorf("decode answer chunk %d: %w", i, err)
		}
		if c.Error != nil {
			return c.Error
		}
		if err := fn(&c); err != nil {
			return err
		}
		if c.Last {
			return nil
		}
	}
}

// ChunkBytes bounds one chunk of a query answer, well under NATS's default 1 MiB payload.
const ChunkBytes = 512 << 10

// ChunkWriter sends a query answer in chunks to a reply subject.
type ChunkWriter struct {
	nc    *nats.Conn
	reply string
	cur   GetChunk
	size  int
	sent  int
}

// NewChunkWriter starts an answer to msg reflecting projection sequence seq.
func NewChunkWriter(nc *nats.Conn, msg *nats.Msg, seq uint64) *ChunkWriter {
	return &ChunkWriter{nc: nc, reply: msg.Reply, cur: GetChunk{Seq: seq}}
}

// SetSeq sets the projection sequence the answer reflects.
func (w *ChunkWriter) SetSeq(seq uint64) { w.cur.Seq = seq }

// Columns sets the table header; call before any Row.
func (w *ChunkWriter) Columns(cols []string) { w.cur.Columns = cols }

// Row adds a table row.
func (w *ChunkWriter) Row(row []string) error {
	w.cur.Rows = append(w.cur.Rows, row)
	for _, c := range row {
		w.size += len(c) + 3
	}
	return w.maybeFlush()
}

// Item adds an object.
func (w *ChunkWriter) Item(item json.RawMessage) error {
	w.cur.Items = append(w.cur.Items, item)
	w.size += len(item) + 1
	return w.maybeFlush()
}

func (w *ChunkWriter) maybeFlush() error {
	if w.size < ChunkBytes {
		return nil
	}
	return w.flush()
}

func (w *ChunkWriter) flush() error {
	data, err := json.Marshal(&w.cur)
	if err != nil {
		return fmt.Errorf("encode chunk: %w", err)
	}
	if err := w.nc.Publish(w.reply, data); err != nil {
		return fmt.Errorf("send chunk: %w", err)
	}
	w.sent++
	w.cur = GetChunk{Seq: w.cur.Seq}
	w.size = 0
	return nil
}

// Close sends the last chunk.
func (w *ChunkWriter) Close() error {
	w.cur.Last = true
	return w.flush()
}

// Fail answers with an error instead.
func (w *ChunkWriter) Fail(err error) error {
	w.cur = GetChunk{Seq: w.cur.Seq, Error: ErrorFrom(err), Last: true}
	return w.flush()
}
