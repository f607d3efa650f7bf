package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"skiff.dev/events"
)

// Term is a term of the control loops' leader as the log records it: a LeaderElected event on
// events.TermSubject.
type Term struct {
	Replica string
	// Number counts terms (LeaderElected.Term); 0 if the event did not decode.
	Number uint64
	// Seq is the LeaderElected's sequence: the fence of the term's writes. 0: no term yet.
	Seq uint64
}

func (t Term) String() string {
	if t.Seq == 0 {
		return "no term"
	}
	return fmt.Sprintf("term %d (%s, seq %d)", t.Number, t.Replica, t.Seq)
}

// LastTerm returns the newest term the log records, or the zero Term if there is none.
//
// Errors: events.ErrUnavailable when the server does not answer before ctx ends (a stream
// without a leader yet, as on a cluster still forming, is asked again until then).
func (s *Store) LastTerm(ctx context.Context) (Term, error) {
	m, err := s.lastMsg(ctx, events.TermSubject)
	switch {
	case err != nil:
		return Term{}, fmt.Errorf("last leader term: %w", err)
	case m == nil:
		return Term{}, nil
	}
	return termOf(m), nil
}

// termOf reads a term from its LeaderElected message; one that does not decode is still a term
// (its sequence fences), of unknown number.
func termOf(m *jetstream.RawStreamMsg) Term {
	t := Term{Seq: m.Sequence}
	if ev, err := events.Decode(m.Subject, m.Sequence, m.Data); err == nil {
		if p, ok := ev.Data.(*events.LeaderElected); ok {
			t.Replica, t.Number = p.Replica, p.Term
		}
	}
	return t
}

// CheckFencing says whether the stream allows the atomic batches Fenced writes, as it was when
// the Store attached.
//
// Errors: events.ErrFailedPrecondition when it does not (a stream bootstrapped before leader
// writes were fenced): the message says to run the bootstrap step again.
func (s *Store) CheckFencing() error {
	if info := s.stream.CachedInfo(); info != nil && !info.Config.AllowAtomicPublish {
		return events.Errorf(events.ErrFailedPrecondition,
			"stream %s does not allow atomic batches, which the leader's writes need: run the bootstrap step again (%s)", s.name, BootstrapHint)
	}
	return nil
}

// FencedError is what a write refused because a newer term began fails with; it wraps
// events.ErrFenced.
type FencedError struct {
	// Term is the writer's term; Newer the one that ended it (Seq 0 if it could not be read).
	Term, Newer Term
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("%v: %s is over, %s began", events.ErrFenced, e.Term, e.Newer)
}

func (e *FencedError) Unwrap() error { return events.ErrFenced }

// FenceConfig configures a Fenced writer. Actor is required.
type FenceConfig struct {
	// Actor is written into the fence events ("scheduler/<replica>").
	Actor string
	// Clock stamps the fence events; default time.Now.
	Clock func() time.Time
	// OnFenced, if set, is called with the number of writes the log refused because a newer
	// term began, each time it refuses some, before AppendAll returns.
	OnFenced func(rejected int, newer Term)
}

// Fenced is a writer of one control loop of the leader of one term. Every AppendAll goes to the
// log as JetStream atomic batches; each opens with a fence event (LeaderWrote on the loop's
// events.PassRef subject) that the server takes only while the term's LeaderElected is still
// the last event on events.TermSubject, and with it the batch's writes, each under its own
// per-subject condition. Once a newer term has begun, nothing this writer sends lands. See the
// package doc, "Fencing".
type Fenced struct {
	s    *Store
	term Term
	loop string
	cfg  FenceConfig
}

// Fenced returns the writer of loop (a subject token: "scheduling", "deployments") for term.
func (s *Store) Fenced(term Term, loop string, cfg FenceConfig) *Fenced {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Fenced{s: s, term: term, loop: loop, cfg: cfg}
}

// MaxBatch is the most messages JetStream takes in one atomic batch (the server's default
// max_batch_size); a batch is a fence and up to MaxBatch-1 writes.
const MaxBatch = 1000

// Busy retries: the server refuses a batch whose subjects another proposal is checking right
// now (a clustered stream checks one expected sequence per subject at a time, and every fence
// checks the term subject), or when too many batches are open. Such a refusal says nothing about
// the writes, so the batch goes again after a short pause.
const (
	busyRetries  = 20
	busyFirst    = time.Millisecond
	busyMaxPause = 100 * time.Millisecond
)

// AppendAll appends ws as fenced atomic batches of at most MaxBatch-1 writes and returns one
// error per write, as Store.AppendAll does: nil where the write landed (with Event.Seq set), or
// an error wrapping
//   - events.ErrFenced (a *FencedError) for every write of a batch the log refused because a
//     newer term began; later batches of the call are not sent;
//   - events.ErrConflict for a write whose subject had moved on; the others of its batch are
//     sent again without it (see the package doc), so a conflict costs the batch a retry, not
//     its other writes;
//   - events.ErrFailedPrecondition when the stream does not allow atomic batches (run the
//     bootstrap step again);
//   - events.ErrUnavailable or events.ErrPermissionDenied as for Store.Append.
//
// Writes to one subject must not appear twice in a call; a repeat is refused with a conflict,
// as its condition could not hold after the first. Batches of all Fenced writers of a Store go
// one at a time.
func (f *Fenced) AppendAll(ctx context.Context, ws []Write) []error {
	errs := make([]error, len(ws))
	data := make([][]byte, len(ws))
	seen := make(map[string]bool, len(ws))
	var idx []int
	b := &batch{ws: ws, data: data, errs: errs}
	for i, w := range ws {
		if seen[w.Event.Subject] {
			b.fail([]int{i}, fmt.Errorf("%w: the subject is written twice in one batch", events.ErrConflict))
			continue
		}
		var err error
		if data[i], err = w.Event.Marshal(); err != nil {
			errs[i] = err
			continue
		}
		seen[w.Event.Subject] = true
		idx = append(idx, i)
	}
	for lo := 0; lo < len(idx); lo += MaxBatch - 1 {
		chunk := idx[lo:min(lo+MaxBatch-1, len(idx))]
		if fe := f.commit(ctx, b, chunk); fe != nil {
			b.fail(idx[lo+len(chunk):], fe)
			break
		}
	}
	return errs
}

// batch is the writes of one AppendAll: the writes, their encodings and their outcomes.
type batch struct {
	ws   []Write
	data [][]byte
	errs []error
}

// fail sets the error of the writes at idx.
func (b *batch) fail(idx []int, err error) {
	for _, i := range idx {
		w := b.ws[i].Event
		b.errs[i] = fmt.Errorf("append %s to %s: %w", w.Type, w.Subject, err)
	}
}

// commit writes b's writes at idx as one batch, again without each write found to conflict,
// until the rest lands or the batch fails as a whole. It returns the FencedError if the term is
// over.
func (f *Fenced) commit(ctx context.Context, b *batch, idx []int) *FencedError {
	pending := slices.Clone(idx)
	pause := busyFirst
	for busy, conflicts := 0, 0; len(pending) > 0; {
		out := f.send(ctx, b, pending)
		switch out.kind {
		case landed:
			return nil
		case fenced:
			fe := &FencedError{Term: f.term, Newer: out.newer}
			b.fail(pending, fe)
			if f.cfg.OnFenced != nil {
				f.cfg.OnFenced(len(pending), out.newer)
			}
			return fe
		case conflict:
			i := pending[out.at]
			b.fail([]int{i}, fmt.Errorf("%w: the subject is at %d, not %d", events.ErrConflict, out.seq, b.ws[i].Expect))
			pending = slices.Delete(pending, out.at, out.at+1)
			// One conflict is the common case, and costs one more batch. A second says the
			// view was stale in more places: ask where every subject is, in one request,
			// rather than a refused batch per conflict.
			if conflicts++; conflicts >= 2 {
				pending = f.dropMoved(ctx, b, pending)
			}
		case conflictSomewhere:
			// Some write conflicts and the server did not say which: halve until it shows.
			if len(pending) == 1 {
				b.fail(pending, events.ErrConflict)
				return nil
			}
			half := len(pending) / 2
			if fe := f.commit(ctx, b, pending[:half]); fe != nil {
				b.fail(pending[half:], fe)
				return fe
			}
			return f.commit(ctx, b, pending[half:])
		case busyLog:
			if busy++; busy > busyRetries || ctx.Err() != nil {
				b.fail(pending, fmt.Errorf("%w: the log refused the batch as busy %d times: %v", events.ErrUnavailable, busy, out.err))
				return nil
			}
			select {
			case <-time.After(pause):
			case <-ctx.Done():
			}
			pause = min(2*pause, busyMaxPause)
		case failed:
			b.fail(pending, out.err)
			return nil
		}
	}
	return nil
}

type outcomeKind uint8

const (
	landed outcomeKind = iota
	fenced
	conflict          // pending[at] conflicts: its subject is at seq
	conflictSomewhere // some write conflicts, which one is unknown
	busyLog
	failed
)

type outcome struct {
	kind  outcomeKind
	at    int
	seq   uint64
	newer Term
	err   error
}

// JetStream's answers to an atomic batch that matter here (nats.go names none of them).
const (
	errCodeWrongLastSeq      jetstream.ErrorCode = 10071 // "wrong last sequence: {seq}"
	errCodeWrongLastSeqConst jetstream.ErrorCode = 10164 // a subject is being checked by another proposal
	errCodeAtomicDisabled    jetstream.ErrorCode = 10174
	errCodeBatchIncomplete   jetstream.ErrorCode = 10176
	errCodeTooManyInflight   jetstream.ErrorCode = 10210
)

// batchAck is JetStream's answer to a batch's commit.
type batchAck struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	Seq   uint64              `json:"seq"`
	Count int                 `json:"count"`
}

// Atomic batch headers (nats.go names none of them).
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

// send writes the fence and b's writes at pending as one atomic batch, and tells what became
// of it.
func (f *Fenced) send(ctx context.Context, b *batch, pending []int) outcome {
	select {
	case f.s.batches <- struct{}{}:
		defer func() { <-f.s.batches }()
	case <-ctx.Done():
		return outcome{kind: failed, err: errors.Join(ctx.Err(), events.ErrUnavailable)}
	}
	fence, err := events.New(f.cfg.Clock(), events.Meta{Actor: f.cfg.Actor}, events.PassRef(f.loop), "",
		&events.LeaderWrote{Term: f.term.Number, Events: len(pending)})
	if err != nil {
		return outcome{kind: failed, err: err}
	}
	fm, err := message(fence, f.term.Seq)
	if err != nil {
		return outcome{kind: failed, err: err}
	}
	// The fence's condition is on the term subject, not its own: it holds while the term's
	// LeaderElected is the last event there.
	fm.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, events.TermSubject)
	msgs := make([]*nats.Msg, 0, len(pending)+1)
	msgs = append(msgs, fm)
	for _, i := range pending {
		msgs = append(msgs, encoded(b.ws[i].Event, b.data[i], b.ws[i].Expect))
	}
	id := nuid.Next()
	for n, m := range msgs {
		m.Header.Set(headerBatchID, id)
		m.Header.Set(headerBatchSeq, strconv.Itoa(n+1))
	}
	last := msgs[len(msgs)-1]
	last.Header.Set(headerBatchCommit, "1")
	nc := f.s.js.Conn()
	// Only the commit asks for an answer: the server answers it for the whole batch, and
	// refuses it as incomplete if any message before it went missing.
	for _, m := range msgs[:len(msgs)-1] {
		if err := nc.PublishMsg(m); err != nil {
			return outcome{kind: failed, err: translate(err)}
		}
	}
	// Bounded: an answer lost with a stream leader that died is never coming, and a loop that
	// waited for it stopped for good (the chaos suite's NATS server loss found it).
	rctx, cancel := context.WithTimeout(ctx, AsyncAckTimeout)
	reply, err := nc.RequestMsgWithContext(rctx, last)
	cancel()
	if err != nil {
		return f.unanswered(ctx, b, pending, fence, translate(err))
	}
	var ack batchAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return f.unanswered(ctx, b, pending, fence, fmt.Errorf("%w: malformed answer to a batch: %q", events.ErrUnavailable, reply.Data))
	}
	if ack.Error != nil {
		return f.refusal(ctx, b, pending, ack.Error)
	}
	if ack.Count != len(msgs) || ack.Seq < uint64(len(msgs)) {
		return outcome{kind: failed, err: fmt.Errorf("the log took a batch of %d messages as %d ending at %d", len(msgs), ack.Count, ack.Seq)}
	}
	f.landed(b, pending, ack.Seq-uint64(len(msgs))+1, fence)
	return outcome{kind: landed}
}

// landed records the sequences of a batch whose fence is at fenceSeq: the server stores a batch
// in one piece, so the writes follow the fence in order.
func (f *Fenced) landed(b *batch, pending []int, fenceSeq uint64, fence *events.Event) {
	fence.Seq = fenceSeq
	for k, i := range pending {
		b.ws[i].Event.Seq = fenceSeq + 1 + uint64(k)
	}
}

// refusal tells what a refused batch means for its writes.
func (f *Fenced) refusal(ctx context.Context, b *batch, pending []int, apiErr *jetstream.APIError) outcome {
	switch apiErr.ErrorCode {
	case errCodeWrongLastSeq:
		// The description names the sequence the subject is at; the message there names the
		// subject: the term subject when the fence failed, else one of the writes'.
		seq, perr := strconv.ParseUint(strings.TrimPrefix(apiErr.Description, "wrong last sequence: "), 10, 64)
		if perr == nil && seq > 0 {
			if m, err := f.s.stream.GetMsg(ctx, seq); err == nil {
				if m.Subject == events.TermSubject {
					return outcome{kind: fenced, newer: termOf(m)}
				}
				for k, i := range pending {
					if b.ws[i].Event.Subject == m.Subject {
						return outcome{kind: conflict, at: k, seq: seq}
					}
				}
			}
		}
		if o, over := f.termOver(ctx); over {
			return o
		}
		return outcome{kind: conflictSomewhere}
	case errCodeWrongLastSeqConst, errCodeTooManyInflight:
		return outcome{kind: busyLog, err: apiErr}
	case errCodeAtomicDisabled:
		return outcome{kind: failed, err: events.Errorf(events.ErrFailedPrecondition,
			"stream %s does not allow atomic batches, which the leader's writes need: run the bootstrap step again (%s): %v", f.s.name, BootstrapHint, apiErr)}
	case errCodeBatchIncomplete:
		// A message of the batch never reached the stream: the server refused this identity
		// a subject, or the connection lost one.
		if o, over := f.termOver(ctx); over {
			return o
		}
		err := fmt.Errorf("%w: %v", events.ErrUnavailable, apiErr)
		subjects := []string{events.ObjectSubject(events.KindLeader, events.PassNamespace, f.loop)}
		for _, i := range pending {
			subjects = append(subjects, b.ws[i].Event.Subject)
		}
		for _, subject := range subjects {
			if r := f.s.refused(subject, err); r != err {
				return outcome{kind: failed, err: r}
			}
		}
		return outcome{kind: failed, err: err}
	}
	return outcome{kind: failed, err: translate(apiErr)}
}

// unanswered handles a batch whose commit got no answer: it may have landed. If it did, the
// fence's id is the last on the loop's subject (a loop's batches go one at a time), and the
// writes follow it.
func (f *Fenced) unanswered(ctx context.Context, b *batch, pending []int, fence *events.Event, err error) outcome {
	if errors.Is(err, events.ErrUnavailable) {
		err = f.s.refused(fence.Subject, err)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if m, gerr := f.s.stream.GetLastMsgForSubject(lctx, fence.Subject); gerr == nil && m.Header.Get(jetstream.MsgIDHeader) == fence.ID {
		f.landed(b, pending, m.Sequence, fence)
		return outcome{kind: landed}
	}
	return outcome{kind: failed, err: err}
}

// dropMoved fails, as conflicts, the writes at pending whose subject has moved past what they
// expect, and returns the others. It asks the stream for the last sequence of every subject at
// once (a direct get of the last message of each); a subject at a lower sequence than expected
// (a replica behind) proves nothing and stays. If the stream does not answer, nothing is dropped.
func (f *Fenced) dropMoved(ctx context.Context, b *batch, pending []int) []int {
	subjects := make([]string, len(pending))
	for k, i := range pending {
		subjects[k] = b.ws[i].Event.Subject
	}
	last, err := f.s.lastSeqs(ctx, subjects)
	if err != nil {
		f.s.log.Debug("cannot ask where a batch's subjects are; finding its conflicts one by one", "err", err)
		return pending
	}
	keep := pending[:0]
	for _, i := range pending {
		w := b.ws[i]
		if at := last[w.Event.Subject]; at > w.Expect {
			b.fail([]int{i}, fmt.Errorf("%w: the subject is at %d, not %d", events.ErrConflict, at, w.Expect))
			continue
		}
		keep = append(keep, i)
	}
	return keep
}

// lastSeqs returns the sequence of the last message on each of subjects (absent: none), with one
// direct get request (JetStream's multi_last, answered by up to 1,024 messages and an end of
// batch status).
func (s *Store) lastSeqs(ctx context.Context, subjects []string) (map[string]uint64, error) {
	if len(subjects) > multiLastMax {
		return nil, fmt.Errorf("%d subjects: at most %d in one request", len(subjects), multiLastMax)
	}
	nc := s.js.Conn()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		NoHeaders bool     `json:"no_hdr"`
	}{subjects, true})
	if err != nil {
		return nil, err
	}
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+s.name, inbox, req); err != nil {
		return nil, translate(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out := make(map[string]uint64, len(subjects))
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, translate(err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of batch
			return out, nil
		case "404": // none of the subjects has a message
			return out, nil
		default:
			return nil, fmt.Errorf("direct get of %d subjects: status %s %s", len(subjects), status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("direct get of %d subjects: message without a sequence: %w", len(subjects), err)
		}
		out[m.Header.Get(jetstream.SubjectHeader)] = seq
	}
}

// multiLastMax is the most subjects one multi_last direct get answers.
const multiLastMax = 1024

// termOver checks whether a newer term has begun.
func (f *Fenced) termOver(ctx context.Context) (outcome, bool) {
	t, err := f.s.LastTerm(ctx)
	if err != nil || t.Seq == f.term.Seq {
		return outcome{}, false
	}
	return outcome{kind: fenced, newer: t}, true
}
