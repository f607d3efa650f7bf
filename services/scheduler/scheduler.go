package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/utils/clock"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/store"
	"skiff.dev/events/telemetry"
	"skiff.dev/services/scheduler/internal/admission"
	"skiff.dev/services/scheduler/internal/controllers"
	"skiff.dev/services/scheduler/internal/controllers/nodelifecycle"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
	"skiff.dev/services/scheduler/internal/leader"
	"skiff.dev/services/scheduler/internal/query"
	"skiff.dev/services/scheduler/internal/scheduling"
)

// Config configures one scheduler replica. Conn is required; every other zero value works.
type Config struct {
	Conn *nats.Conn
	// Stream is the log's stream name (default SKIFF). The scheduler only attaches to it: the
	// bootstrap step (package bootstrap) creates it and sets its replicas.
	Stream string
	// ID names this replica in the leader key and in event actors; default hostname-pid.
	ID string
	// ServiceCIDR is where ClusterIPs come from (default 10.96.0.0/16); PodCIDRRange is split
	// into one /24 per node (default 10.88.0.0/16).
	ServiceCIDR  netip.Prefix
	PodCIDRRange netip.Prefix
	// LeaseTimeout is how long a node may go without renewing its lease before it is NotReady
	// (default 40 s).
	LeaseTimeout time.Duration
	// Clock is the replica's one clock: leader lease renewals and expiry, node lease timeouts,
	// evictions, back-offs and event times; default the real clock. The control loops sleep in
	// real time, at most their resync interval, and read this clock when they wake, so a fake
	// clock stepped by a test is noticed within that interval; the leader renews its lease on
	// this clock's timers, so a fake one must be stepped for it to keep leading.
	Clock  Clock
	Logger *slog.Logger
	// Ready, if set, is called once the replica answers commands and queries.
	Ready func()
	// Metrics, if set, receives the replica's metrics (skiff_scheduler_*); Run fails if it
	// holds them already.
	Metrics prometheus.Registerer
	// Snapshots says when the leader writes a snapshot of its projection (package snapshot):
	// every Snapshots.Every events or Snapshots.Interval, whichever comes first; the zero
	// value never writes. Every replica starts from the newest snapshot it can read whatever
	// this says.
	Snapshots snapshot.WriterConfig

	// hooks stand in, in tests, for what a real process suffers (a SIGSTOP).
	hooks *hooks
	// tracer is the replica's, set up by Run from the OTEL_* environment (package telemetry);
	// nil when tracing is off. spans records the scheduling loop's spans, by the thousand a
	// second, outside the SDK (telemetry.SpanBatcher); nil when tracing is off.
	tracer trace.Tracer
	spans  *telemetry.SpanBatcher
}

// flushTraces sends the spans still buffered, for a few seconds at most: a collector that is
// gone must not hold up a replica's exit.
func flushTraces(tp *telemetry.Provider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		log.Warn("flush traces", "err", err)
	}
}

// hooks wrap what a replica's leadership goes through, so a test can freeze one replica in
// process: its leader key renewals and every write of its control loops.
type hooks struct {
	leaderKV func(jetstream.KeyValue) jetstream.KeyValue
	log      func(loop string, l appender) appender
}

// appender is what every control loop writes through (reconcile.Log, scheduling.Appender).
type appender interface {
	AppendAll(ctx context.Context, ws []store.Write) []error
}

// Clock is the replica's time; clock.RealClock is the real one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
	NewTimer(d time.Duration) clock.Timer
	NewTicker(d time.Duration) clock.Ticker
}

func (c *Config) defaults() {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
}

// Run serves until ctx ends. It returns an error only when it cannot start or the log becomes
// unreachable for good.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.Conn == nil {
		return fmt.Errorf("scheduler: no NATS connection: %w", events.ErrInvalidArgument)
	}
	tp, err := telemetry.Setup(ctx, telemetry.Config{Service: telemetry.ServiceScheduler, Instance: cfg.ID, Batcher: true})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	defer flushTraces(tp, cfg.Logger)
	if tp.Enabled() {
		cfg.Logger = slog.New(telemetry.NewLogHandler(cfg.Logger.Handler()))
	}
	cfg.tracer, cfg.spans = tp.Tracer(), tp.Batcher()
	log := cfg.Logger.With("replica", cfg.ID)
	actor := "scheduler/" + cfg.ID
	st, err := store.Attach(ctx, cfg.Conn, store.Config{Stream: cfg.Stream, Logger: log})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if err := st.CheckFencing(); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	// From the newest snapshot, folding only the log's tail; from the log's start without one.
	proj := live.New(snapshot.Start(ctx, st, api.SnapshotBucket, nil, log), log)
	met, err := newReplicaMetrics(cfg.Metrics, proj, st, cfg.spans)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	// The goroutines end with ctx, so it is cancelled before they are waited for (defers run
	// last first): an error returned on the way must not wait for the caller to end ctx.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := proj.Run(ctx, st, nil); err != nil {
			runErr <- fmt.Errorf("follow the log: %w", err)
			cancel()
		}
	}()

	adm := admission.New(admission.Config{Log: st, Projection: proj, ServiceCIDR: cfg.ServiceCIDR, Actor: actor,
		Clock: cfg.Clock.Now, Logger: log, Tracer: cfg.tracer})
	q := &query.Handler{NC: cfg.Conn, Projection: proj, Clock: cfg.Clock.Now, Logger: log}
	subs, err := serve(cfg.Conn, adm, q, log)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	defer func() {
		for _, s := range subs {
			_ = s.Drain()
		}
		// A round trip makes sure the server has dropped our interest before Run returns, so
		// no request sent after that is routed to this replica and lost.
		_ = cfg.Conn.FlushTimeout(2 * time.Second)
	}()
	log.Info("scheduler serving commands and queries")
	if cfg.Ready != nil {
		cfg.Ready()
	}

	js := st.JetStream()
	kv, err := leader.OpenBucket(ctx, js)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if cfg.hooks != nil && cfg.hooks.leaderKV != nil {
		kv = cfg.hooks.leaderKV(kv)
	}
	err = leader.Run(ctx, kv, cfg.ID, leader.Config{Clock: cfg.Clock, Logger: log}, func(lctx context.Context) {
		lead(lctx, cfg, st, proj, met, actor, log)
	})
	select {
	case e := <-runErr:
		return e
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// lead runs one term: it records the term in the log, waits until the projection holds every
// write of the terms before (none of theirs can land after this term's LeaderElected), and runs
// the control loops, whose writes are fenced on the term, until the leader key is lost or a
// newer term refuses a write.
func lead(ctx context.Context, cfg Config, st *store.Store, proj *live.Projection, met *replicaMetrics, actor string, log *slog.Logger) {
	log.Info("leading: starting control loops")
	if err := proj.WaitSynced(ctx); err != nil {
		return
	}
	tctx, term, err := leader.Begin(ctx, st, cfg.ID, events.Meta{Actor: actor}, cfg.Clock.Now())
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("could not begin a term; giving leadership up", "err", err)
		}
		return
	}
	log.Info("term began", "term", term.Number, "seq", term.Seq)
	if err := waitTermSeq(tctx, proj, term.Seq, log); err == nil {
		met.leader.Set(1)
		runLoops(tctx, cfg, st, proj, term, met, actor, log)
		met.leader.Set(0)
	}
	term.End(log)
	log.Info("control loops stopped", "term", term.Number)
}

// termSeqWarn is how long the projection may take to reach a new term's sequence before the
// wait is reported.
const termSeqWarn = 10 * time.Second

// waitTermSeq waits until the projection has applied seq. The loops wait for it; if it takes
// long, say so once, with every goroutine's stack: a projection that stopped folding (seen once
// after a freeze and thaw under load, not understood yet) leaves the cluster without a leader
// that acts.
func waitTermSeq(ctx context.Context, proj *live.Projection, seq uint64, log *slog.Logger) error {
	wctx, cancel := context.WithTimeout(ctx, termSeqWarn)
	err := proj.WaitSeq(wctx, seq)
	cancel()
	if err == nil || ctx.Err() != nil {
		return err
	}
	var stacks bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
	log.Warn("the projection has not reached the new term's sequence", "after", termSeqWarn, "at", proj.Seq(), "want", seq,
		"goroutines", stacks.String())
	return proj.WaitSeq(ctx, seq)
}

// runLoops runs the leader-only control loops until ctx ends, each writing through its own
// fenced writer of term.
func runLoops(ctx context.Context, cfg Config, st *store.Store, proj *live.Projection, term *leader.Term, met *replicaMetrics, actor string, log *slog.Logger) {
	logFor := func(loop string) appender {
		var l appender = st.Fenced(term.Term, loop, term.Fence(actor, cfg.Clock.Now))
		if cfg.hooks != nil && cfg.hooks.log != nil {
			l = cfg.hooks.log(loop, l)
		}
		return l
	}
	var leases nodelifecycle.Leases
	if kv, err := nodelifecycle.OpenLeaseBucket(ctx, st.JetStream()); err != nil {
		log.Error("node lease bucket unavailable: node readiness is not tracked", "err", err)
	} else {
		leases = kv
	}
	podCIDRRange := ""
	if cfg.PodCIDRRange.IsValid() {
		podCIDRRange = cfg.PodCIDRRange.String()
	}
	loops := map[string]func(context.Context) error{
		"scheduling": scheduling.New(scheduling.Config{Log: logFor("scheduling"), Projection: proj, Actor: actor, Clock: cfg.Clock.Now,
			Logger: log.With("loop", "scheduling"), Metrics: met.scheduling, Spans: cfg.spans}).Run,
		"controllers": func(ctx context.Context) error {
			return controllers.Run(ctx, controllers.Config{
				LogFor:     func(name string) reconcile.Log { return logFor(name) },
				Projection: proj, Leases: leases, Actor: actor, Clock: cfg.Clock.Now, Logger: log, Tracer: cfg.tracer,
				PodCIDRRange: podCIDRRange, LeaseTimeout: cfg.LeaseTimeout})
		},
	}
	if w := snapshotWriter(ctx, cfg, st, proj, log); w != nil {
		loops["snapshots"] = w.Run
	}
	var wg sync.WaitGroup
	for name, run := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A loop that fails is restarted after a pause, as long as we lead: one broken loop
			// must not take the others down.
			for ctx.Err() == nil {
				if err := run(ctx); err != nil && ctx.Err() == nil {
					log.Error("control loop failed; restarting", "loop", name, "err", err)
					select {
					case <-cfg.Clock.After(time.Second):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
}

// snapshotWriter returns the leader's snapshot writer, or nil when snapshots are off or their
// bucket is missing (a log bootstrapped before snapshots: said once per term).
func snapshotWriter(ctx context.Context, cfg Config, st *store.Store, proj *live.Projection, log *slog.Logger) *snapshot.Writer {
	wc := cfg.Snapshots
	if wc.Every == 0 && wc.Interval == 0 {
		return nil
	}
	log = log.With("loop", "snapshots")
	full, err := snapshot.Open(ctx, st.JetStream(), api.SnapshotBucket)
	if err != nil {
		log.Warn("not writing snapshots", "err", err)
		return nil
	}
	nodes, err := snapshot.Open(ctx, st.JetStream(), api.NodeSnapshotBucket)
	if err != nil {
		log.Warn("not writing node snapshots", "err", err)
		nodes = nil
	}
	wc.Logger = log
	if wc.After == nil {
		wc.After = cfg.Clock.After
	}
	return snapshot.NewWriter(st, full, nodes, proj, wc)
}

// serve subscribes the command and query handlers in the replicas' queue group. Each handler
// acknowledges a request (api.Accept) before anything else, so a client that asked knows at
// once that a live replica took it, and resends only what went to a dead one.
func serve(nc *nats.Conn, adm *admission.Admission, q *query.Handler, log *slog.Logger) ([]*nats.Subscription, error) {
	seen := newRecentCommands(recentTTL, recentMax, time.Now)
	var subs []*nats.Subscription
	handle := func(subject string, fn nats.MsgHandler) error {
		s, err := nc.QueueSubscribe(subject, api.QueueGroup, fn)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, s)
		return nil
	}
	errs := []error{
		handle(api.SubjectApply+".*", command(adm.Apply, seen, log)),
		handle(api.SubjectDelete+".*", command(adm.Delete, seen, log)),
		handle(api.SubjectScale+".*", command(adm.Scale, seen, log)),
		handle(api.SubjectCordon+".*", command(adm.Cordon, seen, log)),
		handle(api.SubjectGet, func(msg *nats.Msg) {
			if !api.IsInbox(msg.Reply) {
				log.Warn("query dropped: its reply subject is not an inbox", "reply", msg.Reply)
				return
			}
			if err := api.Accept(msg); err != nil {
				log.Warn("acknowledge query", "err", err)
			}
			go q.Serve(msg)
		}),
	}
	if len(errs) > 0 && errors.Join(errs...) == nil {
		// Ready means answering: the server must know of the subscriptions before we say so.
		errs = append(errs, nc.Flush())
	}
	if err := errors.Join(errs...); err != nil {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
		return nil, err
	}
	return subs, nil
}

// command turns one admission method into a NATS handler for its request type. The actor is the
// identity in the subject's last token, which the server authenticated; whatever the request
// says is replaced. A request whose reply subject is not an inbox is dropped unanswered (the
// answer would land wherever the sender pointed it, the log included). A copy of a command this
// replica already took (same request id, subject and content) gets the first copy's answer.
func command[R any, PR interface {
	*R
	SetActor(string)
	SetIdempotencyKey(string)
}](run func(context.Context, PR) *api.Response, seen *recentCommands, log *slog.Logger) nats.MsgHandler {
	return func(msg *nats.Msg) {
		if !api.IsInbox(msg.Reply) {
			log.Warn("command dropped: its reply subject is not an inbox", "subject", msg.Subject, "reply", msg.Reply)
			return
		}
		if err := api.Accept(msg); err != nil {
			log.Warn("acknowledge command", "subject", msg.Subject, "err", err)
		}
		// Commands are handled on their own goroutine: a command may wait for the projection,
		// which must not block the connection's dispatch.
		go func() {
			// Well inside the CLI's default 30 s, so a command that cannot be carried out gets
			// its reason back rather than a timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			key := ""
			if id := api.RequestID(msg); id != "" {
				key = idempotencyKey(msg.Subject, id, msg.Data)
			}
			resp := seen.do(ctx, key, func() *api.Response {
				var req R
				if err := json.Unmarshal(msg.Data, &req); err != nil {
					return &api.Response{Error: &api.Error{Code: "InvalidArgument", Message: "malformed request: " + err.Error()}}
				}
				PR(&req).SetActor(api.CommandActor(msg.Subject))
				PR(&req).SetIdempotencyKey(key)
				return run(ctx, &req)
			})
			if err := api.Reply(msg, resp); err != nil {
				log.Warn("reply to command", "subject", msg.Subject, "err", err)
			}
		}()
	}
}
