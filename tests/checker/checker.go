package checker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// Invariant names one of the package doc's invariants; every violation starts with it.
type Invariant string

// The invariants (see the package doc).
const (
	BoundOnce   Invariant = "bound once"
	OneRunning  Invariant = "one running copy"
	Conditional Invariant = "conditional sequence"
	Lifecycle   Invariant = "pod lifecycle"
	Terms       Invariant = "leader terms"
)

// PoisonType is the key of Report.Counts under which messages that do not decode are counted.
const PoisonType = "(poison)"

// Report is what Check found in the log.
type Report struct {
	// Head is the last sequence read; Events how many messages were read (poison included).
	Head   uint64
	Events int
	// Violations are the broken invariants, one sentence each, starting with the invariant's
	// name and giving the sequences involved.
	Violations []string
	// Counts is the number of events of each type; poison counts under PoisonType.
	Counts map[string]int
	// Poison lists the messages that do not decode, in log order.
	Poison []Poison

	// Pods are every pod the log speaks of, by UID.
	Pods map[string]*Pod
	// Bound is the node each pod UID was bound to (its first PodBound).
	Bound map[string]string
	// Running maps a pod "ns/name" to the nodes whose last report about it says Running, for
	// pods not deleted. More than one node is a violation.
	Running map[string][]string
	// Live maps a pod "ns/name" to the UID created and not deleted under that name.
	Live map[string]string
	// Unbound lists pods scheduled, not bound and not deleted ("ns/name uid@node"): a
	// scheduler's unfinished write, which every scheduler completes; after convergence none.
	Unbound []string
	// Unterminated lists deleted pods that were bound, whose node never reported them
	// terminated afterwards and was not deleted ("ns/name uid@node"): an evicted pod on a node
	// that has not come back. After a healed scenario none.
	Unterminated []string

	invariants []Invariant       // of each violation
	ids        map[string]uint64 // event id → sequence
}

// Poison is a message that does not decode.
type Poison struct {
	Seq     uint64
	Subject string
	Reason  string
}

// Pod is one pod UID's life as the log tells it: the sequence of each step, 0 if it did not
// happen.
type Pod struct {
	UID, Namespace, Name string
	Created              uint64
	// Scheduled is the first PodScheduled, to Node.
	Scheduled uint64
	Node      string
	// Bound is the first PodBound, on BoundNode.
	Bound     uint64
	BoundNode string
	// StopRequested is the first PodStopRequested.
	StopRequested     uint64
	DeletionRequested uint64
	Deleted           uint64
	// Reports holds each reporting node's last report.
	Reports map[string]*NodeReport
}

// Key is the pod's "ns/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// NodeReport is a node's last word about a pod.
type NodeReport struct {
	// Seq is the last PodStatusReported or PodTerminated; Phase that report's phase, or
	// "Terminated" after PodTerminated.
	Seq   uint64
	Phase string
	// Terminated is the sequence of the node's last PodTerminated, 0 if none.
	Terminated uint64
}

// Terminated is NodeReport.Phase after PodTerminated.
const Terminated = "Terminated"

// Err is nil when the log broke no invariant, else one error listing every violation.
func (r *Report) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	return fmt.Errorf("the log (%d events, head %d) breaks %d invariant(s):\n  %s",
		r.Events, r.Head, len(r.Violations), strings.Join(r.Violations, "\n  "))
}

// Of returns the violations of one invariant.
func (r *Report) Of(inv Invariant) []string {
	var out []string
	for i, v := range r.Violations {
		if r.invariants[i] == inv {
			out = append(out, v)
		}
	}
	return out
}

// Seq returns the sequence of the event whose id is id.
func (r *Report) Seq(id string) (uint64, bool) {
	seq, ok := r.ids[id]
	return seq, ok
}

func (r *Report) violate(inv Invariant, format string, args ...any) {
	r.invariants = append(r.invariants, inv)
	r.Violations = append(r.Violations, string(inv)+": "+fmt.Sprintf(format, args...))
}

// Check reads the whole log, up to the head it has when Check starts, and returns what it
// found. The error is only for a log that cannot be read; what is wrong with the log is in the
// report.
func Check(ctx context.Context, st *store.Store) (*Report, error) {
	stream, err := st.JetStream().Stream(ctx, st.Name())
	if err != nil {
		return nil, fmt.Errorf("check the log: stream %s: %w", st.Name(), err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("check the log: stream %s: %w", st.Name(), err)
	}
	head := info.State.LastSeq
	c := newChecker(head)
	// A stream whose every message is gone has a last sequence but nothing to deliver.
	if info.State.Msgs > 0 {
		if err := read(ctx, st, head, c.message); err != nil {
			return nil, fmt.Errorf("check the log: %w", err)
		}
	}
	c.finish()
	return c.r, nil
}

// message is one stored message with what the checker needs of its headers.
type message struct {
	subject string
	seq     uint64
	msgID   string
	// expect is Nats-Expected-Last-Subject-Sequence, hasExpect whether it was there at all.
	expect    uint64
	hasExpect bool
	badExpect string // a header that is not a number
	// expectSubject is Nats-Expected-Last-Subject-Sequence-Subject: the condition was on
	// another subject's sequence, which only a leader's fence (LeaderWrote, on the term
	// subject) may be.
	expectSubject string
	ev            *events.Event
	err           error
}

// read delivers every message from 1 to head, in order, decoded. It reads the stream itself
// rather than through store.Read, which hands out neither Nats-Msg-Id nor the expected
// sequence; decoding runs on every core (events.Decoder), the checks on this goroutine.
func read(ctx context.Context, st *store.Store, head uint64, fn func(*message)) error {
	cons, err := st.JetStream().OrderedConsumer(ctx, st.Name(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", st.Name(), err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("read %s: %w", st.Name(), err)
	}
	defer it.Stop()
	dec := events.NewDecoder(false)
	var readErr error // written before dec.Close, read after Next reports the end
	go func() {
		defer dec.Close()
		for {
			msg, err := it.Next()
			if err != nil {
				readErr = err
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				readErr = fmt.Errorf("message metadata: %w", err)
				return
			}
			dec.Submit(msg.Subject(), md.Sequence.Stream, msg.Data(), packHeaders(msg.Headers()))
			// Nothing pending before the head means the messages up to it are gone: stop, and
			// let finish report the gap, rather than wait for messages that will not come.
			if md.NumPending == 0 || md.Sequence.Stream >= head {
				dec.Flush()
				return
			}
		}
	}()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
		}
	}()
	defer func() {
		// Drain whatever the reader still submits so it can finish.
		go func() {
			for {
				if _, ok := dec.Next(); !ok {
					return
				}
			}
		}()
	}()
	for {
		d, ok := dec.Next()
		if !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if readErr != nil {
				return readErr
			}
			return nil
		}
		m := &message{subject: d.Subject, seq: d.Seq, ev: d.Event, err: d.Err}
		m.unpackHeaders(d.Header)
		fn(m)
		if m.seq >= head {
			return nil
		}
	}
}

// The decoder carries one string along with each message: the headers the checks need travel
// in it, separated by NUL (which no header value holds).
func packHeaders(h nats.Header) string {
	has := "0"
	if len(h.Values(jetstream.ExpectedLastSubjSeqHeader)) > 0 {
		has = "1"
	}
	return strings.Join([]string{h.Get(jetstream.MsgIDHeader), has, h.Get(jetstream.ExpectedLastSubjSeqHeader), h.Get(jetstream.ExpectedLastSubjSeqSubjHeader)}, "\x00")
}

func (m *message) unpackHeaders(s string) {
	parts := strings.SplitN(s, "\x00", 4)
	m.msgID, m.hasExpect, m.expectSubject = parts[0], parts[1] == "1", parts[3]
	if m.hasExpect {
		var err error
		if m.expect, err = strconv.ParseUint(parts[2], 10, 64); err != nil {
			m.badExpect = parts[2]
		}
	}
}

// checker holds the state of one pass over the log.
type checker struct {
	r *Report
	// last is each subject's last sequence, for the conditional appends.
	last   map[string]uint64
	msgIDs map[string]uint64
	// terms maps each LeaderElected's sequence to its term number; term is the last number.
	terms map[uint64]uint64
	term  uint64
	prev  uint64 // last sequence read
	pods  *pods
}

func newChecker(head uint64) *checker {
	r := &Report{
		Head: head, Counts: map[string]int{}, Pods: map[string]*Pod{}, Bound: map[string]string{},
		Running: map[string][]string{}, Live: map[string]string{}, ids: map[string]uint64{},
	}
	c := &checker{r: r, last: map[string]uint64{}, msgIDs: map[string]uint64{}, terms: map[uint64]uint64{}}
	c.pods = newPods(r)
	return c
}

func (c *checker) message(m *message) {
	r := c.r
	r.Events++
	switch {
	case m.seq <= c.prev:
		r.violate(Conditional, "sequence %d comes after %d: the stream's sequences must increase", m.seq, c.prev)
	case c.prev == 0 && m.seq != 1:
		r.violate(Conditional, "the log begins at sequence %d: events 1 to %d are gone", m.seq, m.seq-1)
	case c.prev != 0 && m.seq != c.prev+1:
		r.violate(Conditional, "the log jumps from sequence %d to %d: the events between are gone", c.prev, m.seq)
	}
	c.prev = max(c.prev, m.seq)

	// The condition the writer put on the append, replayed. A leader's fence is conditional on
	// the term subject: its term was the newest when the batch it opens was stored.
	prev := c.last[m.subject]
	c.last[m.subject] = m.seq
	fence := m.expectSubject == events.TermSubject && m.ev != nil && m.ev.Type == "LeaderWrote"
	switch {
	case m.badExpect != "":
		r.violate(Conditional, "seq %d on %s carries expected last subject sequence %q, which is not a number", m.seq, m.subject, m.badExpect)
	case m.expectSubject != "" && !fence:
		r.violate(Conditional, "seq %d on %s was appended on condition of the last sequence of %s, not its own subject's", m.seq, m.subject, m.expectSubject)
	case fence && m.expect != c.last[events.TermSubject]:
		r.violate(Conditional, "seq %d LeaderWrote on %s fenced on the term at %d, but the newest term was at %d: a stale leader's batch was stored",
			m.seq, m.subject, m.expect, c.last[events.TermSubject])
	case !fence && m.hasExpect && m.expect != prev:
		r.violate(Conditional, "seq %d on %s was appended on condition that the subject's last sequence was %d, but it was %d", m.seq, m.subject, m.expect, prev)
	}
	if m.msgID != "" {
		if first, dup := c.msgIDs[m.msgID]; dup {
			r.violate(Conditional, "seq %d and seq %d carry the same Nats-Msg-Id %q", first, m.seq, m.msgID)
		} else {
			c.msgIDs[m.msgID] = m.seq
		}
	}

	ev, why := m.ev, ""
	var sub events.Subject
	if m.err != nil {
		why = m.err.Error()
	} else if s, err := events.ParseSubject(m.subject); err != nil {
		why = err.Error()
	} else {
		sub = s
	}
	if why != "" {
		r.Counts[PoisonType]++
		r.Poison = append(r.Poison, Poison{Seq: m.seq, Subject: m.subject, Reason: why})
		return
	}
	r.Counts[ev.Type]++
	if !m.hasExpect {
		r.violate(Conditional, "seq %d %s on %s was appended unconditionally (no expected last subject sequence)", m.seq, ev.Type, m.subject)
	}
	switch {
	case ev.ID == "":
		r.violate(Conditional, "seq %d %s on %s has no event id", m.seq, ev.Type, m.subject)
	case m.msgID != ev.ID:
		r.violate(Conditional, "seq %d %s on %s has event id %q but Nats-Msg-Id %q: a retry would not be deduplicated", m.seq, ev.Type, m.subject, ev.ID, m.msgID)
	}
	if ev.ID != "" {
		if first, dup := r.ids[ev.ID]; dup {
			if m.msgID != ev.ID { // else reported as a duplicate Nats-Msg-Id already
				r.violate(Conditional, "seq %d and seq %d carry the same event id %q", first, m.seq, ev.ID)
			}
		} else {
			r.ids[ev.ID] = m.seq
		}
	}
	c.leader(m, ev)
	c.pods.event(ev, sub)
}

// leader checks the terms: each LeaderElected counts one up from the one before, and a fence
// names the term whose LeaderElected it was conditional on.
func (c *checker) leader(m *message, ev *events.Event) {
	switch p := ev.Data.(type) {
	case *events.LeaderElected:
		if p.Term != c.term+1 {
			c.r.violate(Terms, "seq %d LeaderElected begins term %d after term %d", m.seq, p.Term, c.term)
		}
		c.terms[m.seq], c.term = p.Term, p.Term
	case *events.LeaderWrote:
		if t, ok := c.terms[m.expect]; !ok || t != p.Term {
			c.r.violate(Terms, "seq %d LeaderWrote says term %d, but its condition names seq %d, which is no LeaderElected of that term", m.seq, p.Term, m.expect)
		}
	}
}

func (c *checker) finish() {
	if c.prev < c.r.Head {
		c.r.violate(Conditional, "the log ends at sequence %d, before its last sequence %d: events %d to %d are gone", c.prev, c.r.Head, c.prev+1, c.r.Head)
	}
	c.pods.finish()
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
