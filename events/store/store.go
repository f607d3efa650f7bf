package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
)

// Config configures the stream. The zero value is a single-replica stream named SKIFF that keeps
// everything.
type Config struct {
	// Stream is the stream name; default "SKIFF".
	Stream string
	// Replicas is 1 on one machine, 3 in a cluster; default 1.
	Replicas int
	// MaxAge bounds retention (events older than this are dropped); zero keeps everything.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size: once it is reached appends fail with ErrFull and
	// nothing old is dropped. Zero is no limit.
	MaxBytes int64
	Logger   *slog.Logger
}

// DefaultStream is the stream name used when Config.Stream is empty.
const DefaultStream = "SKIFF"

// Store appends to and reads from the log.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	name   string
	log    *slog.Logger
	// batches lets one atomic batch of Fenced writers go at a time: a clustered stream refuses a
	// batch while another's fence is being checked (both check the term subject).
	batches chan struct{}
}

func newStore(js jetstream.JetStream, st jetstream.Stream, name string, log *slog.Logger) *Store {
	return &Store{js: js, stream: st, name: name, log: log, batches: make(chan struct{}, 1)}
}

// BootstrapHint is what to do about a missing stream or bucket: only the bootstrap step (package
// bootstrap) creates them.
const BootstrapHint = `create it with "skiff cluster bootstrap" (admin credentials), or run "skiff up"`

// Bootstrap creates the stream, or brings its settings to cfg, and returns a Store on it. Only the
// bootstrap step calls it (package bootstrap, with admin credentials); everyone else Attaches.
func Bootstrap(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(AsyncAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	sc := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "Skiff event log: the cluster's only state",
		Subjects:    []string{events.AllFilter},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		// At MaxBytes the stream refuses new events rather than dropping old ones: the log is
		// the cluster's only state, and a dropped PodBound or ServiceApplied would silently
		// change what every service folds. Appends then fail with ErrFull.
		Discard:     jetstream.DiscardNew,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    orUnlimited(cfg.MaxBytes),
		MaxMsgs:     -1,
		Duplicates:  2 * time.Minute,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		// The leader's writes go in atomic batches opened by a fence (Fenced).
		AllowAtomicPublish: true,
	}
	st, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Stream, translate(err))
	}
	return newStore(js, st, cfg.Stream, cfg.Logger), nil
}

// Attach opens an existing stream without creating or changing it: services and the CLI need
// no stream-admin permission and never reset an operator's replicas or retention.
// Errors: events.ErrNotFound when there is no such stream (the message says how to create it);
// events.ErrUnavailable when JetStream does not answer.
// Of cfg only Stream and Logger count.
func Attach(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	stream := cfg.Stream
	if stream == "" {
		stream = DefaultStream
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(AsyncAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	st, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, events.Errorf(events.ErrNotFound, "stream %s not found: %s", stream, BootstrapHint)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, translate(err))
	}
	return newStore(js, st, stream, cfg.Logger), nil
}

func orUnlimited(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// Name is the stream's name.
func (s *Store) Name() string { return s.name }

// JetStream returns the underlying JetStream handle, for KV buckets and object stores.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Append writes ev if the last sequence on its subject is still expect (0: the subject is empty),
// and returns the event's sequence. Errors:
//   - events.ErrConflict: another writer appended to the subject first; re-read and decide again.
//   - events.ErrUnavailable: the server did not answer in time; retrying with the same event is
//     safe (the event id deduplicates).
//   - events.ErrPermissionDenied: the server refused this identity a publish on the subject
//     (NATS says so asynchronously; the append notices when no ack came).
//   - ErrFull (also events.ErrFailedPrecondition): the log has no room for the event, which was
//     not written; the message says which limit and how to raise it.
//
// A server whose disk is full (ENOSPC rather than a limit) does not answer at all: nats-server
// logs a critical write error and refuses every later write to the stream until it restarts, so
// the append ends Unavailable when ctx does, and its message names that cause too.
func (s *Store) Append(ctx context.Context, ev *events.Event, expect uint64) (uint64, error) {
	msg, err := message(ev, expect)
	if err != nil {
		return 0, err
	}
	// An ack can be lost with the server or stream leader that was to send it, and a stream
	// without a leader for a moment answers nothing: rather than wait out ctx, send the same
	// message again every AttemptTimeout. That is safe: the event id deduplicates, and a copy
	// that landed is recognised below.
	start := time.Now()
	tries, err := retrying(ctx, func(actx context.Context) error {
		ack, err := s.js.PublishMsg(actx, msg)
		if err != nil {
			if err = translate(err); errors.Is(err, events.ErrUnavailable) {
				err = s.refused(ev.Subject, err)
			}
			return err
		}
		ev.Seq = ack.Sequence
		return nil
	})
	if err == nil {
		return ev.Seq, nil
	}
	if errors.Is(err, events.ErrConflict) {
		// The server checks the expected sequence before deduplicating, so a retry of an
		// append whose ack was lost looks like a conflict: it is one only if the event on the
		// subject is not ours.
		if seq, ok := s.landed(ctx, ev); ok {
			ev.Seq = seq
			return seq, nil
		}
	}
	if errors.Is(err, events.ErrUnavailable) {
		err = noAck(err, time.Since(start), tries)
	}
	return 0, fmt.Errorf("append %s to %s: %w", ev.Type, ev.Subject, s.explainFull(ctx, err))
}

// AttemptTimeout bounds one try of an append: a stream that lost its leader elects another
// within a few seconds, and an ack lost with the old one is not worth waiting for longer.
const AttemptTimeout = 2 * time.Second

// AsyncAckTimeout bounds the wait for each ack of AppendAll's pipelined appends. Without it an ack
// lost with a stream leader is waited for until the caller's context ends; a controller would
// stall that long. It is longer than AttemptTimeout: a window of a thousand appends on a busy
// replicated stream takes a while, and a timed-out write is decided again (a pass re-reads).
const AsyncAckTimeout = 10 * time.Second

// retryWait is the pause before attempt+1: short at first, at most a second.
func retryWait(attempt int) time.Duration {
	return min(time.Duration(attempt)*100*time.Millisecond, time.Second)
}

// Write is one conditional append of AppendAll.
type Write struct {
	Event  *events.Event
	Expect uint64
}

// AppendAll pipelines many conditional appends and waits for all of them. It returns one error
// per write (nil where the write landed, with Event.Seq set). Writes to the same subject must not
// appear twice in one call. Any number of writes is fine: they go out in windows of
// appendWindow, well under the connection's limit of outstanding asynchronous publishes.
func (s *Store) AppendAll(ctx context.Context, ws []Write) []error {
	errs := make([]error, len(ws))
	for lo := 0; lo < len(ws); lo += appendWindow {
		hi := min(lo+appendWindow, len(ws))
		s.appendWindow(ctx, ws[lo:hi], errs[lo:hi])
	}
	return errs
}

// appendWindow bounds the appends in flight at once.
const appendWindow = 1024

func (s *Store) appendWindow(ctx context.Context, ws []Write, errs []error) {
	futures := make([]jetstream.PubAckFuture, len(ws))
	for i, w := range ws {
		msg, err := message(w.Event, w.Expect)
		if err != nil {
			errs[i] = err
			continue
		}
		f, err := s.js.PublishMsgAsync(msg)
		if err != nil {
			errs[i] = fmt.Errorf("append %s to %s: %w", w.Event.Type, w.Event.Subject, translate(err))
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			ws[i].Event.Seq = ack.Sequence
		case err := <-f.Err():
			err = translate(err)
			if errors.Is(err, events.ErrConflict) {
				if seq, ok := s.landed(ctx, ws[i].Event); ok {
					ws[i].Event.Seq = seq
					continue
				}
			}
			errs[i] = fmt.Errorf("append %s to %s: %w", ws[i].Event.Type, ws[i].Event.Subject, s.explainFull(ctx, err))
		case <-ctx.Done():
			errs[i] = fmt.Errorf("append %s to %s: %w", ws[i].Event.Type, ws[i].Event.Subject, errors.Join(ctx.Err(), events.ErrUnavailable))
		}
	}
}

// noAck words an append that got no acknowledgement after tries over took: the log lacks a
// majority of its servers, or cannot write. On a full disk nats-server logs a critical write
// error and answers nothing, then or later, until it is restarted, so that cause is named too.
func noAck(err error, took time.Duration, tries int) error {
	return events.Errorf(events.ErrUnavailable, "%v (no acknowledgement in %v, %d tries: the log needs a majority of its servers up "+
		"and able to write; a server whose disk is full answers nothing, says \"no space left on device\" in its log, and takes "+
		"writes again only once restarted with space freed); whether the event was written is unknown",
		err, took.Round(100*time.Millisecond), tries)
}

// landed reports whether ev is the last event on its subject.
// refused is err, unless the connection's last asynchronous error is the server's refusal to let
// it publish on subject: then that refusal.
func (s *Store) refused(subject string, err error) error {
	last := s.js.Conn().LastError()
	if errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), `"`+subject+`"`) {
		return fmt.Errorf("%w: %v (the server refused this identity a publish there)", events.ErrPermissionDenied, last)
	}
	return err
}

func (s *Store) landed(ctx context.Context, ev *events.Event) (uint64, bool) {
	m, err := s.stream.GetLastMsgForSubject(ctx, ev.Subject)
	if err != nil || m.Header.Get(jetstream.MsgIDHeader) != ev.ID {
		return 0, false
	}
	return m.Sequence, true
}

func message(ev *events.Event, expect uint64) (*nats.Msg, error) {
	data, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	return encoded(ev, data, expect), nil
}

// encoded is the message of ev, whose encoding is data.
func encoded(ev *events.Event, data []byte, expect uint64) *nats.Msg {
	msg := nats.NewMsg(ev.Subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(expect, 10))
	if ev.Traceparent != "" {
		msg.Header.Set(TraceparentHeader, ev.Traceparent)
	}
	return msg
}

// TraceparentHeader carries W3C trace context on log messages.
const TraceparentHeader = "traceparent"

// errCodeDuplicateInProcess is JetStream's "duplicate message id is in process" (nats.go has no
// name for it).
const errCodeDuplicateInProcess jetstream.ErrorCode = 10158

// translate maps JetStream errors onto the events error classes.
func translate(err error) error {
	var apiErr *jetstream.APIError
	if fe := asFull(err); fe != nil {
		return fe
	}
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return fmt.Errorf("%w: %v", events.ErrConflict, err)
	case errors.As(err, &apiErr) && apiErr.Code == 503:
		// "JetStream system temporarily unavailable" and its kin: a server rejoining after a
		// partition, a stream without a leader for a moment. Readers and writers try again.
		// The JetStream error stays in the chain: bootstrap tells a cluster still forming by it.
		return fmt.Errorf("%w: %w", events.ErrUnavailable, err)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess:
		// An earlier copy of this append (same event id) is still being replicated: the stream
		// has no quorum right now. Whether that copy lands is known later; try again then.
		return fmt.Errorf("%w: %v", events.ErrUnavailable, err)
	case errors.Is(err, nats.ErrPermissionViolation):
		return fmt.Errorf("%w: %v (the server refused it to this identity)", events.ErrPermissionDenied, err)
	case errors.Is(err, jetstream.ErrMsgNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w: %v", events.ErrNotFound, err)
	case errors.Is(err, nats.ErrNoResponders):
		// Nothing listens on the JetStream API: a server still registering the account, or no
		// JetStream at all. It stays in the chain: bootstrap waits a moment for the first.
		return fmt.Errorf("%w: %w", events.ErrUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%w: %v", events.ErrUnavailable, err)
	}
	return err
}

// LastSeq returns the sequence of the last event on subject (which may be a wildcard), or 0 if
// there is none.
func (s *Store) LastSeq(ctx context.Context, subject string) (uint64, error) {
	m, err := s.lastMsg(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("last sequence of %s: %w", subject, err)
	}
	if m == nil {
		return 0, nil
	}
	return m.Sequence, nil
}

// lastMsg returns the last message on subject (which may be a wildcard), nil if there is none,
// asking again while the stream does not answer (see retrying).
func (s *Store) lastMsg(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	var last *jetstream.RawStreamMsg
	_, err := retrying(ctx, func(ctx context.Context) error {
		m, err := s.stream.GetLastMsgForSubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			last = nil
		case err != nil:
			return translate(err)
		default:
			last = m
		}
		return nil
	})
	return last, err
}

// retrying runs try (an append, or a read of the stream) until it succeeds, fails other than
// Unavailable, or ctx ends, each try bounded by AttemptTimeout, and says how many tries it took:
// an answer lost with a stream leader that died is not worth waiting out the caller's deadline
// for (a command's head check waited 20 s for one).
func retrying(ctx context.Context, try func(context.Context) error) (tries int, err error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, AttemptTimeout)
		err := try(actx)
		cancel()
		if err == nil || !errors.Is(err, events.ErrUnavailable) || ctx.Err() != nil {
			return attempt, err
		}
		select {
		case <-time.After(retryWait(attempt)):
		case <-ctx.Done():
			return attempt, err
		}
	}
}

// Head returns the stream's last sequence.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	var head uint64
	_, err := retrying(ctx, func(ctx context.Context) error {
		info, err := s.stream.Info(ctx)
		if err != nil {
			return translate(err)
		}
		head = info.State.LastSeq
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", s.name, err)
	}
	return head, nil
}

// Get returns the event at seq.
func (s *Store) Get(ctx context.Context, seq uint64) (*events.Event, error) {
	m, err := s.stream.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", seq, translate(err))
	}
	ev, err := events.Decode(m.Subject, m.Sequence, m.Data)
	if err != nil {
		return nil, err
	}
	ev.Traceparent = m.Header.Get(TraceparentHeader)
	return ev, nil
}

// History returns every event on subject (which may be a wildcard) in order. Events that do not
// decode are reported through the logger and left out.
func (s *Store) History(ctx context.Context, subject string) ([]*events.Event, error) {
	var out []*events.Event
	err := s.Read(ctx, ReadOptions{Filters: []string{subject}}, func(ev *events.Event) error {
		out = append(out, ev)
		return nil
	})
	return out, err
}
