package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// Config configures a Server. Conn and Node are required; every other zero value works.
type Config struct {
	Conn *nats.Conn
	// Node is this node's name: the server answers api.LogsSubject(Node).
	Node string
	// Dir is the runtime's log directory; default /var/log/skiff/pods, the runtime's default.
	Dir string
	// Poll is how often a follower looks for new output; default 200 ms.
	Poll time.Duration
	// Heartbeat is how often a stream probes its client; default 5 s.
	Heartbeat time.Duration
	// AckTimeout is how long a client may take to answer one chunk; default 1 min. A client
	// whose output is blocked longer (a paused pager) loses the stream.
	AckTimeout time.Duration
	// MaxStreams bounds the streams running at once; default 64.
	MaxStreams int
	Logger     *slog.Logger
	// Ready, if set, is called once the server is subscribed.
	Ready func()
}

// DefaultDir is where the runtime writes container logs unless configured otherwise.
const DefaultDir = "/var/log/skiff/pods"

func (c Config) withDefaults() Config {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.Poll <= 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = time.Minute
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// probeTimeout is how long a client may take to answer a liveness probe. Its alive subscription
// answers from its own goroutine, so only a client that is gone or cut off takes long.
func (c Config) probeTimeout() time.Duration { return max(2*c.Heartbeat, 2*time.Second) }

// Server answers log requests for one node.
type Server struct {
	cfg Config
	log *slog.Logger

	// wait is when a follower looks for news next: every Poll; tests step it by hand.
	wait func() <-chan time.Time

	active atomic.Int64
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New returns a server; Serve runs it.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	return &Server{cfg: cfg, log: cfg.Logger, wait: func() <-chan time.Time { return time.After(cfg.Poll) }}
}

// Serve answers log requests for node from the logs under dir until ctx ends.
func Serve(ctx context.Context, nc *nats.Conn, node, dir string, logger *slog.Logger) error {
	return New(Config{Conn: nc, Node: node, Dir: dir, Logger: logger}).Serve(ctx)
}

// Serve answers requests until ctx ends, then waits for the streams it started. Errors: an
// error wrapping events.ErrInvalidArgument without Conn or Node; the subscription's error.
func (s *Server) Serve(ctx context.Context) error {
	if s.cfg.Conn == nil || s.cfg.Node == "" {
		return fmt.Errorf("logs server: Conn and Node are required: %w", events.ErrInvalidArgument)
	}
	subject := api.LogsSubject(s.cfg.Node)
	sub, err := s.cfg.Conn.Subscribe(subject, func(m *nats.Msg) { s.accept(ctx, m) })
	if err != nil {
		return fmt.Errorf("logs server: subscribe %s: %w", subject, err)
	}
	if err := s.cfg.Conn.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("logs server: subscribe %s: %w", subject, errors.Join(err, events.ErrUnavailable))
	}
	s.log.Info("serving container logs", "subject", subject, "dir", s.cfg.Dir)
	if s.cfg.Ready != nil {
		s.cfg.Ready()
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	// A callback running now may still start a stream; closed makes it refuse instead, so
	// that Wait never races an Add.
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Streams is the number of streams running now.
func (s *Server) Streams() int { return int(s.active.Load()) }

// accept runs in the subscription's goroutine: it must not block, so the stream gets its own.
func (s *Server) accept(ctx context.Context, m *nats.Msg) {
	if !api.IsInbox(m.Reply) {
		// Answering would write wherever the sender pointed, the log included.
		s.log.Warn("log request dropped: its reply subject is not an inbox", "reply", m.Reply)
		return
	}
	s.mu.Lock()
	if s.closed || ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	if s.active.Load() >= int64(s.cfg.MaxStreams) {
		s.mu.Unlock()
		refuse(m, fmt.Errorf("node %s already streams %d logs; try again later: %w", s.cfg.Node, s.cfg.MaxStreams, events.ErrUnavailable))
		return
	}
	s.active.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.active.Add(-1)
		s.stream(ctx, m)
	}()
}

func refuse(m *nats.Msg, err error) {
	_ = api.Reply(m, api.LogsResponse{Error: api.ErrorFrom(err)})
}

// stream answers one request and, if it was accepted, sends the log.
func (s *Server) stream(ctx context.Context, m *nats.Msg) {
	var req api.LogsRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		refuse(m, fmt.Errorf("log request does not decode: %v: %w", err, events.ErrInvalidArgument))
		return
	}
	if err := validate(req); err != nil {
		refuse(m, err)
		return
	}
	log := s.log.With("pod", req.Namespace+"/"+req.Pod, "container", req.Container)
	src, err := openSource(s.cfg.Dir, s.cfg.Node, req)
	if err != nil {
		log.Debug("log request refused", "err", err)
		refuse(m, err)
		return
	}
	defer src.close()
	if err := api.Reply(m, api.LogsResponse{Restart: src.run, HeartbeatMillis: s.cfg.Heartbeat.Milliseconds()}); err != nil {
		log.Warn("answer log request", "err", err)
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := &sender{nc: s.cfg.Conn, inbox: req.Inbox, ackTimeout: s.cfg.AckTimeout}
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		s.probe(sctx, cancel, req.Inbox)
	}()
	err = src.send(sctx, st, req.Follow && !req.Previous, s.wait)
	gone := sctx.Err() != nil && ctx.Err() == nil // the probe found the client gone
	cancel()
	<-probed
	switch {
	case err == nil:
		log.Debug("log stream done", "chunks", st.seq)
	case ctx.Err() != nil:
		// Tell the client why the stream ends, rather than leave it to notice the silence.
		st.fail(fmt.Errorf("the node agent of %s is stopping: %w", s.cfg.Node, events.ErrUnavailable))
	case errors.Is(err, errClientGone) || gone:
		log.Debug("log stream ended: the client went away", "chunks", st.seq, "err", err)
	default:
		log.Warn("log stream failed", "chunks", st.seq, "err", err)
		st.fail(err)
	}
}

// probe asks the client whether it is still there every heartbeat, and cancels the stream when
// it is not.
func (s *Server) probe(ctx context.Context, cancel context.CancelFunc, inbox string) {
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	subject := api.LogsAliveSubject(inbox)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, pcancel := context.WithTimeout(ctx, s.cfg.probeTimeout())
		_, err := s.cfg.Conn.RequestWithContext(pctx, subject, nil)
		pcancel()
		if err != nil && ctx.Err() == nil {
			s.log.Debug("log client gone", "inbox", inbox, "err", err)
			cancel()
			return
		}
	}
}

// validate rejects requests that are incomplete or whose names could leave the log directory:
// anyone allowed to publish on the node's subject can send one.
func validate(r api.LogsRequest) error {
	for _, f := range []struct{ what, v string }{
		{"namespace", r.Namespace}, {"pod", r.Pod}, {"uid", r.UID}, {"container", r.Container},
	} {
		if f.v == "" || f.v == "." || f.v == ".." || strings.ContainsAny(f.v, "/\\\x00") || len(f.v) > 253 {
			return fmt.Errorf("log request: %s %q is not a valid name: %w", f.what, f.v, events.ErrInvalidArgument)
		}
	}
	if !api.IsInbox(r.Inbox) || strings.ContainsAny(r.Inbox, " \t\r\n*>") {
		return fmt.Errorf("log request: inbox %q is not an inbox to send chunks to: %w", r.Inbox, events.ErrInvalidArgument)
	}
	return nil
}

// errClientGone ends a stream whose client no longer listens.
var errClientGone = errors.New("the client went away")

// sender sends the chunks of one stream, each acknowledged before the next.
type sender struct {
	nc         *nats.Conn
	inbox      string
	ackTimeout time.Duration
	seq        uint64
}

// send sends one chunk and waits for the client's answer. Errors: errClientGone when no one
// listens on the inbox any more or the client took longer than the ack timeout; ctx's error.
func (s *sender) send(ctx context.Context, data []byte, last bool) error {
	s.seq++
	c := api.LogsChunk{Seq: s.seq, Data: data, Last: last}
	m, err := c.Msg(s.inbox)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, s.ackTimeout)
	defer cancel()
	_, err = s.nc.RequestMsgWithContext(actx, m)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrNoResponders):
		return errClientGone
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		// Say why, in case the client comes back to read it; a publish never blocks.
		s.fail(fmt.Errorf("the client did not take chunk %d within %s: %w", s.seq, s.ackTimeout, events.ErrUnavailable))
		return fmt.Errorf("%w: chunk %d not taken within %s", errClientGone, s.seq, s.ackTimeout)
	}
	return fmt.Errorf("send log chunk %d: %w", s.seq, err)
}

// fail tells the client the stream broke, without waiting for an answer.
func (s *sender) fail(err error) {
	s.seq++
	c := api.LogsChunk{Seq: s.seq, Last: true, Error: api.ErrorFrom(err)}
	if m, merr := c.Msg(s.inbox); merr == nil {
		_ = s.nc.PublishMsg(m)
	}
}
