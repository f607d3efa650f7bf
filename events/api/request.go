package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"skiff.dev/events"
)

// DefaultAckTimeout is how long a request waits for a replica to take it before it is sent
// again. A live replica acknowledges before it does any work, so this is a network round trip
// plus scheduling delay, never the time a command takes: two seconds is far above the first and
// well under the CLI's 30-second timeout, leaving room for many copies.
const DefaultAckTimeout = 2 * time.Second

// Client sends commands and queries to the scheduler replicas. Conn is required; the zero value
// of every other field works.
type Client struct {
	Conn *nats.Conn
	// AckTimeout is how long a request waits for a replica to take it (its acknowledgement or
	// the first message of its answer) before the request is sent again, on a fresh inbox, to
	// whichever replica the server picks then; default DefaultAckTimeout.
	AckTimeout time.Duration
	// Logger reports resends (debug level); default none.
	Logger *slog.Logger
}

// Call is Client{Conn: nc}.Call.
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	return Client{Conn: nc}.Call(ctx, subject, req, resp)
}

// Get is Client{Conn: nc}.Get.
func Get(ctx context.Context, nc *nats.Conn, req GetRequest, fn func(*GetChunk) error) error {
	return Client{Conn: nc}.Get(ctx, req, fn)
}

// Call sends the command req to subject and decodes the single answer into resp. A failure the
// scheduler reports comes back as resp.Error. Call's own errors:
//   - events.ErrUnavailable when nobody is subscribed to subject (no scheduler runs), and
//     *NoAnswerError (also events.ErrUnavailable) when ctx ended before an answer came.
//   - a decoding error when the answer is not a Response.
//
// Every copy of the command carries one request ID: a replica that took an earlier copy
// answers a later one with the earlier one's answer (see the package doc).
func (c Client) Call(ctx context.Context, subject string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	return c.exchange(ctx, subject, data, func(msg *nats.Msg) (bool, error) {
		if err := json.Unmarshal(msg.Data, resp); err != nil {
			return true, fmt.Errorf("decode answer to %s: %w", subject, err)
		}
		return true, nil
	})
}

// Get runs a query and calls fn for every chunk of the answer, in order. It returns the error
// of a chunk that carries one (an *Error), fn's error, or Call's errors.
func (c Client) Get(ctx context.Context, req GetRequest, fn func(*GetChunk) error) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode query: %w", err)
	}
	i := 0
	return c.exchange(ctx, SubjectGet, data, func(msg *nats.Msg) (bool, error) {
		var ch GetChunk
		if err := gojson.Unmarshal(msg.Data, &ch); err != nil {
			return true, fmt.Errorf("decode answer chunk %d: %w", i, err)
		}
		i++
		if ch.Error != nil {
			return true, ch.Error
		}
		if err := fn(&ch); err != nil {
			return true, err
		}
		return ch.Last, nil
	})
}

// exchange sends data to subject and hands every message of the answer to handle until handle
// says the answer is complete.
//
// Each copy of the request goes out with its own reply inbox, all under one subscription, so
// the answer of one replica is never mixed with another's: the first inbox to receive part of
// an answer is the one read, and whatever arrives on the others is dropped. While no replica
// has taken the request (no acknowledgement, no answer), it is sent again every AckTimeout: the
// copy went to a replica that is gone although the server has not noticed yet. Earlier inboxes
// stay open, so an old replica that answers without acknowledging, only slowly, is still heard.
func (c Client) exchange(ctx context.Context, subject string, data []byte, handle func(*nats.Msg) (bool, error)) error {
	nc := c.Conn
	wait := c.AckTimeout
	if wait <= 0 {
		wait = DefaultAckTimeout
	}
	base := nc.NewInbox()
	// An asynchronous subscription feeding a queue of our own: SubscribeSync would allocate a
	// 64K-message channel (512 KiB) per request, which cost a millisecond per request.
	var replies replyQueue
	replies.ready = make(chan struct{}, 1)
	sub, err := nc.Subscribe(base+".*", replies.put)
	if err != nil {
		return fmt.Errorf("subscribe %s.*: %w", base, err)
	}
	defer sub.Unsubscribe()
	// A large answer may arrive faster than it is read; the default limits would drop chunks.
	_ = sub.SetPendingLimits(-1, -1)

	id := nuid.Next()
	start := time.Now()
	sends := 0
	send := func() error {
		sends++
		msg := nats.NewMsg(subject)
		msg.Reply = base + "." + strconv.Itoa(sends)
		msg.Data = data
		msg.Header.Set(HeaderAck, AckRequested)
		msg.Header.Set(HeaderRequestID, id)
		if err := nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("send %s: %w", subject, err)
		}
		return nil
	}
	if err := send(); err != nil {
		return err
	}
	var (
		taken     bool   // a replica acknowledged or began to answer: stop resending
		answering string // the inbox whose answer is being read
		resendAt  = start.Add(wait)
	)
	for {
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if !taken {
			wctx, cancel = context.WithDeadline(ctx, resendAt)
		}
		msg, err := replies.next(wctx)
		cancel()
		if err != nil {
			if !taken && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				if c.Logger != nil {
					c.Logger.Debug("no scheduler took the request in time; sending it again",
						"subject", subject, "request", id, "sends", sends, "waited", wait)
				}
				if err := send(); err != nil {
					return err
				}
				resendAt = time.Now().Add(wait)
				continue
			}
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return &NoAnswerError{Subject: subject, Sends: sends, Taken: taken, Waited: time.Since(start), Err: err}
		}
		switch {
		case answering != "" && msg.Subject != answering:
			// Another replica's answer to another copy; one answer is read.
		case isNoResponders(msg):
			// The server's status for a copy nobody was subscribed to receive.
			if !taken {
				return noResponders(subject)
			}
		case isAck(msg):
			taken = true
		default:
			if answering == "" {
				answering, taken = msg.Subject, true
			}
			if done, err := handle(msg); done || err != nil {
				return err
			}
		}
	}
}

// replyQueue holds the replies of one request until exchange reads them, however many.
type replyQueue struct {
	mu    sync.Mutex
	msgs  []*nats.Msg
	ready chan struct{} // capacity 1: something was put since the last wait
}

func (q *replyQueue) put(m *nats.Msg) {
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *replyQueue) next(ctx context.Context) (*nats.Msg, error) {
	for {
		q.mu.Lock()
		if len(q.msgs) > 0 {
			m := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			q.mu.Unlock()
			return m, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func noResponders(subject string) error {
	return events.Errorf(events.ErrUnavailable, "no scheduler is answering %s: is skiff-scheduler (or skiff up) running?", subject)
}

// NoAnswerError is a request whose context ended before its answer came: no replica took it
// (Taken false: none is running, or none that can be reached), or the one that took it did not
// finish in time. It is of class events.ErrUnavailable.
type NoAnswerError struct {
	Subject string
	Sends   int  // copies sent
	Taken   bool // a replica acknowledged it or began to answer
	Waited  time.Duration
	Err     error // the context's error, or the connection's
}

func (e *NoAnswerError) Error() string {
	if !errors.Is(e.Err, context.DeadlineExceeded) {
		return fmt.Sprintf("%s (sent %d %s): %v", e.Subject, e.Sends, plural(e.Sends, "time", "times"), e.Err)
	}
	if e.Taken {
		return fmt.Sprintf("the scheduler that took %s did not answer within %s: it may be busy or still reading the log",
			e.Subject, e.Waited.Round(time.Millisecond))
	}
	return fmt.Sprintf("no scheduler took %s within %s (sent %d %s): is skiff-scheduler (or skiff up) running?",
		e.Subject, e.Waited.Round(time.Millisecond), e.Sends, plural(e.Sends, "time", "times"))
}

func (e *NoAnswerError) Unwrap() []error { return []error{events.ErrUnavailable, e.Err} }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
