package admission

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/telemetry"
)

// Appender appends one event if its subject's last sequence is still expect. *store.Store
// satisfies it. It returns an error wrapping events.ErrConflict when another writer got there
// first, and events.ErrUnavailable when the outcome is unknown (retrying the same event is safe).
type Appender interface {
	Append(ctx context.Context, ev *events.Event, expect uint64) (uint64, error)
}

// Config configures admission. The zero value of every field but Log and Projection works.
type Config struct {
	Log        Appender
	Projection *live.Projection
	// ServiceCIDR is the range ClusterIPs are allocated from; default 10.96.0.0/16.
	ServiceCIDR netip.Prefix
	// Clock stamps events; default time.Now.
	Clock func() time.Time
	// Actor is the envelope's actor when a request names none; default "scheduler".
	Actor  string
	Logger *slog.Logger
	// Tracer traces each command (a child of the caller's span, or a new trace); nil traces
	// nothing and passes the caller's traceparent on to the events.
	Tracer oteltrace.Tracer
}

// DefaultServiceCIDR is the ClusterIP range when Config.ServiceCIDR is unset, as in Kubernetes.
var DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")

// Admission validates commands and appends their events. It is safe for concurrent use.
type Admission struct {
	log   Appender
	proj  *live.Projection
	cidr  netip.Prefix
	clock func() time.Time
	actor string
	lg    *slog.Logger
	trace oteltrace.Tracer

	// allocMu serializes, within this replica, applies that may claim ClusterIPs, so two
	// concurrent applies here never pick the same address. Across replicas, verifyClusterIP
	// repairs the rare collision after the fact (see doc.go).
	allocMu sync.Mutex
}

// New returns an Admission; cfg.Log and cfg.Projection are required.
func New(cfg Config) *Admission {
	if !cfg.ServiceCIDR.IsValid() {
		cfg.ServiceCIDR = DefaultServiceCIDR
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Actor == "" {
		cfg.Actor = "scheduler"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Admission{
		log:   cfg.Log,
		proj:  cfg.Projection,
		cidr:  cfg.ServiceCIDR.Masked(),
		clock: cfg.Clock,
		actor: cfg.Actor,
		lg:    cfg.Logger,
		trace: cfg.Tracer,
	}
}

// Bounds of the conflict loop: how many times a command is decided again after losing a race,
// and how long it waits for the projection to show the winner's write before deciding again.
const (
	maxAttempts  = 8
	conflictWait = 5 * time.Second
)

// start starts the span of one command, a child of the caller's (traceparent; a new trace
// when the request has none).
func (a *Admission) start(ctx context.Context, command, traceparent, actor string) (context.Context, oteltrace.Span) {
	return telemetry.Start(ctx, a.trace, "admit "+command, traceparent,
		oteltrace.WithSpanKind(oteltrace.SpanKindServer), oteltrace.WithAttributes(attribute.String("enduser.id", actor)))
}

// meta is the meta of every event a command writes: the command is their cause and their
// correlation, and they carry the command's span (ctx's) or else the caller's traceparent.
func (a *Admission) meta(ctx context.Context, actor, traceparent, key string) events.Meta {
	if actor == "" {
		actor = a.actor
	}
	if tp := telemetry.Traceparent(ctx); tp != "" {
		traceparent = tp
	}
	// One correlation id for every event of the request, so `skiff events log` can group them;
	// the same for every copy of a resent command, whichever replica writes which event.
	id := events.NewID()
	if key != "" {
		id = derivedID(key, "correlation")
	}
	return events.Meta{Actor: actor, CausationID: id, CorrelationID: id, Traceparent: traceparent}
}

// derivedID is an event or correlation id that every replica computes alike from a command's
// idempotency key and what the id is for.
func derivedID(key string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(key))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// eventID is the id of the event that the command with idempotency key writes on subject after
// sequence expect. Two replicas carrying out copies of one command from the same state derive
// the same id, so the second append finds the first's event as its own (store.Append checks the
// subject's last event id on a conflict) and the log holds it once. A later write of the same
// command to the same subject expects another sequence, so it gets another id.
func eventID(key, subject string, expect uint64) string {
	return derivedID(key, "event", subject, strconv.FormatUint(expect, 10))
}

// headReader tells the log's last sequence; *store.Store has it. See waitSynced.
type headReader interface {
	Head(ctx context.Context) (uint64, error)
}

// waitSynced refuses to decide on partial state. Beyond the projection's start-up sync, when
// the log can tell its head, it waits until the projection has applied everything the log held
// when the command arrived: then a command sees every write that was acknowledged before it was
// sent, whichever replica made it (a Namespace applied through one replica and a Deployment in it
// through another), and "not found" is never an artefact of a lagging projection.
func (a *Admission) waitSynced(ctx context.Context) *api.Error {
	unavailable := &api.Error{Code: events.Code(events.ErrUnavailable),
		Message: "this scheduler has not caught up with the event log yet, so it cannot check the command; retry in a moment " +
			"(if it lasts, the log may be unavailable: are most of the NATS servers up?)"}
	if err := a.proj.WaitSynced(ctx); err != nil {
		return unavailable
	}
	hr, ok := a.log.(headReader)
	if !ok {
		return nil
	}
	head, err := hr.Head(ctx)
	if err != nil {
		a.lg.WarnContext(ctx, "cannot read the log's head; deciding on the projection as it is", "err", err)
		return nil
	}
	if err := a.proj.WaitSeq(ctx, head); err != nil {
		return unavailable
	}
	return nil
}

// step is one object's part of a command, as decided on one view of the state: the result to
// report, the event to write (nil when nothing changes), or why the object cannot be changed.
type step struct {
	result api.Result
	ev     *events.Event
	expect uint64
	fails  []failure
}

func (s *step) fail(class error, label, doc, path, format string, args ...any) {
	reason := format
	if len(args) > 0 {
		reason = fmt.Sprintf(format, args...)
	}
	s.fails = append(s.fails, failure{label: label, doc: doc, problem: problem{path: path, reason: reason, class: class}})
}

// runOptions shape how run treats a command's steps.
type runOptions struct {
	// partial: objects that fail are reported and the others are still written (delete, like
	// kubectl). Otherwise one failure stops everything before the first write (apply).
	partial bool
	dryRun  bool
	// failSuffix ends the summary of an all-or-nothing failure.
	failSuffix string
	// key is the command's idempotency key (api.ApplyRequest.IdempotencyKey ...); when set,
	// event ids derive from it (eventID) instead of being random.
	key string
}

// run decides with decide on the projection's state and writes the events in order. When a write
// loses a race (events.ErrConflict) it waits until the projection shows the other write and
// decides again; steps written in earlier attempts keep their results. decide must return the
// same steps in the same order on every call.
func (a *Admission) run(ctx context.Context, opts runOptions, decide func(*state.State) []step) (*api.Response, map[int]api.Result) {
	written := map[int]api.Result{}
	var lastWritten uint64
	for attempt := 1; ; attempt++ {
		var steps []step
		var seen uint64
		a.proj.View(func(st *state.State) {
			steps = decide(st)
			seen = st.Seq
		})
		var fails []failure
		for _, s := range steps {
			fails = append(fails, s.fails...)
		}
		if len(fails) > 0 && !opts.partial {
			suffix := opts.failSuffix
			if len(written) > 0 {
				suffix = "some objects were written before the conflict was found: " + describeWritten(steps, written)
			}
			return &api.Response{Results: writtenResults(steps, written), Error: requestError(fails, suffix), Seq: max(seen, lastWritten)}, written
		}
		if opts.dryRun {
			resp := &api.Response{Seq: seen}
			for _, s := range steps {
				if len(s.fails) == 0 {
					// The action is what would happen; the client says it was a dry run.
					resp.Results = append(resp.Results, s.result)
				}
			}
			resp.Error = requestError(fails, "")
			return resp, written
		}
		conflicted := false
		for i, s := range steps {
			if s.ev == nil || len(s.fails) > 0 {
				continue
			}
			if opts.key != "" {
				s.ev.ID = eventID(opts.key, s.ev.Subject, s.expect)
			}
			seq, err := a.append(ctx, s.ev, s.expect)
			if errors.Is(err, events.ErrConflict) {
				a.lg.DebugContext(ctx, "lost a race, deciding again", "subject", s.ev.Subject, "expect", s.expect, "attempt", attempt)
				if attempt == maxAttempts {
					return a.tooManyConflicts(steps, i, written, max(seen, lastWritten)), written
				}
				if werr := a.waitForOther(ctx, s.ev.Subject, s.expect, lastWritten); werr != nil {
					return a.writeFailed(steps, i, written, werr, max(seen, lastWritten)), written
				}
				conflicted = true
				break
			}
			if err != nil {
				return a.writeFailed(steps, i, written, err, max(seen, lastWritten)), written
			}
			r := s.result
			if prev, ok := written[i]; ok {
				r.Action = prev.Action // "created" stays "created" when a retry writes again
			}
			r.Seq = seq
			written[i] = r
			lastWritten = max(lastWritten, seq)
			a.lg.InfoContext(ctx, "admitted", "object", s.ev.Object.String(), "event", s.ev.Type, "seq", seq, "actor", s.ev.Actor)
		}
		if conflicted {
			continue
		}
		resp := &api.Response{Seq: max(seen, lastWritten)}
		for i, s := range steps {
			if len(s.fails) > 0 {
				continue
			}
			if r, ok := written[i]; ok {
				resp.Results = append(resp.Results, r)
			} else {
				resp.Results = append(resp.Results, s.result)
			}
		}
		resp.Error = requestError(fails, "")
		if lastWritten > 0 {
			// Read-your-writes within this replica: the next command decides on a state that
			// holds these events. If the projection is slow the writes still stand.
			if err := a.proj.WaitSeq(ctx, lastWritten); err != nil {
				a.lg.WarnContext(ctx, "projection did not catch up with our own writes", "seq", lastWritten, "err", err)
			}
		}
		return resp, written
	}
}

// append retries an append whose outcome is unknown; the event id makes that safe.
func (a *Admission) append(ctx context.Context, ev *events.Event, expect uint64) (uint64, error) {
	for try := 1; ; try++ {
		seq, err := a.log.Append(ctx, ev, expect)
		if err == nil || !errors.Is(err, events.ErrUnavailable) || try == 3 || ctx.Err() != nil {
			return seq, err
		}
		a.lg.WarnContext(ctx, "append failed, retrying", "subject", ev.Subject, "err", err)
	}
}

// waitForOther waits until the projection has applied our own writes and shows that subject moved
// past expect, i.e. holds the write that beat ours.
func (a *Admission) waitForOther(ctx context.Context, subject string, expect, ours uint64) error {
	ctx, cancel := context.WithTimeout(ctx, conflictWait)
	defer cancel()
	if err := a.proj.WaitSeq(ctx, ours); err != nil {
		return fmt.Errorf("wait for the projection: %w", errors.Join(err, events.ErrUnavailable))
	}
	for {
		ch := a.proj.Changed()
		var moved bool
		a.proj.View(func(st *state.State) { moved = st.SubjectSeq(subject) != expect })
		if moved {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("another writer changed %s, and this scheduler's projection has not seen it yet: %w",
				subject, errors.Join(ctx.Err(), events.ErrUnavailable))
		}
	}
}

func (a *Admission) writeFailed(steps []step, at int, written map[int]api.Result, err error, seq uint64) *api.Response {
	msg := fmt.Sprintf("writing %s failed: %v", stepLabel(steps[at]), err)
	if len(written) > 0 {
		msg = "wrote " + describeWritten(steps, written) + "; then " + msg
	}
	from := at
	if errors.Is(err, events.ErrUnavailable) {
		// No answer from the log: that write may have landed, so it is not listed as unwritten
		// (the error says its outcome is unknown; applying again is safe either way).
		from = at + 1
	}
	if rest := describeUnwritten(steps, from, written); rest != "" {
		msg += "; not written: " + rest
	}
	a.lg.Error("command failed half-way", "err", err)
	return &api.Response{Results: writtenResults(steps, written), Seq: seq,
		Error: &api.Error{Code: events.Code(err), Message: msg}}
}

func (a *Admission) tooManyConflicts(steps []step, at int, written map[int]api.Result, seq uint64) *api.Response {
	msg := fmt.Sprintf("%s kept changing while this command was being applied (%d attempts); retry the command",
		stepLabel(steps[at]), maxAttempts)
	if len(written) > 0 {
		msg += "; already written: " + describeWritten(steps, written)
		if rest := describeUnwritten(steps, at, written); rest != "" {
			msg += "; not written: " + rest
		}
	} else {
		msg += "; nothing was written"
	}
	return &api.Response{Results: writtenResults(steps, written), Seq: seq,
		Error: &api.Error{Code: events.Code(events.ErrConflict), Message: msg}}
}

func stepLabel(s step) string { return fmt.Sprintf("%s %q", s.result.Kind, s.result.Name) }

func writtenResults(steps []step, written map[int]api.Result) []api.Result {
	var out []api.Result
	for i := range steps {
		if r, ok := written[i]; ok {
			out = append(out, r)
		}
	}
	return out
}

func describeWritten(steps []step, written map[int]api.Result) string {
	var parts []string
	for i, s := range steps {
		if r, ok := written[i]; ok {
			parts = append(parts, fmt.Sprintf("%s (%s)", stepLabel(s), r.Action))
		}
	}
	return strings.Join(parts, ", ")
}

func describeUnwritten(steps []step, from int, written map[int]api.Result) string {
	var parts []string
	for i := from; i < len(steps); i++ {
		if _, ok := written[i]; !ok && steps[i].ev != nil {
			parts = append(parts, stepLabel(steps[i]))
		}
	}
	return strings.Join(parts, ", ")
}

// newUID returns a random (version 4) UUID, the shape Kubernetes gives object UIDs.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func errorResponse(e *api.Error) *api.Response { return &api.Response{Error: e} }

func invalid(format string, args ...any) *api.Response {
	return errorResponse(&api.Error{Code: events.Code(events.ErrInvalidArgument), Message: fmt.Sprintf(format, args...)})
}
