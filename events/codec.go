package events

import (
	stdjson "encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	// goccy/go-json decodes the log about four times faster than encoding/json, which is most of
	// what replaying the log costs (see docs/benchmarks.md); it is a drop-in replacement.
	json "github.com/goccy/go-json"
	"github.com/nats-io/nuid"
)

// unmarshal decodes the log; a variable so the replay benchmark can compare it with
// encoding/json in the same run.
var unmarshal = json.Unmarshal

// RawJSON is an undecoded JSON value.
type RawJSON = stdjson.RawMessage

// Meta is who and why of a new event: the actor and the chain it belongs to.
type Meta struct {
	Actor         string
	CausationID   string
	CorrelationID string
	// Traceparent, if set, travels in the message header (W3C trace context).
	Traceparent string
}

// Caused returns meta for an event written in reaction to ev: same correlation, caused by ev.
func (m Meta) Caused(ev *Event) Meta {
	m.CausationID = ev.ID
	m.CorrelationID = ev.CorrelationID
	if m.Traceparent == "" {
		m.Traceparent = ev.Traceparent
	}
	return m
}

// NewID returns a new unique event id.
func NewID() string { return nuid.Next() }

// New builds an event about obj at time now; p is a pointer to one of the event types. The subject is derived from the object and the
// payload's kind; bind and status events need node, other kinds ignore it.
func New(now time.Time, meta Meta, obj ObjectRef, node string, p Payload) (*Event, error) {
	if r, ok := registry[p.EventType()]; !ok || reflect.TypeOf(r.new()) != reflect.TypeOf(p) {
		return nil, fmt.Errorf("event %T: pass a pointer to a registered event type: %w", p, ErrInvalidArgument)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	kind := KindOf(p.EventType())
	var subject string
	switch kind {
	case KindBind:
		subject = BindSubject(node, obj.Namespace, obj.Name)
	case KindStatus:
		subject = StatusSubject(node, obj.Namespace, obj.Name)
	default:
		subject = ObjectSubject(kind, obj.Namespace, obj.Name)
	}
	if _, self := p.(*NodeRegistered); self {
		subject = NodeRegistrationSubject(obj.Name)
	}
	id := NewID()
	corr := meta.CorrelationID
	if corr == "" {
		corr = id
	}
	return &Event{
		Envelope: Envelope{
			ID:            id,
			Type:          p.EventType(),
			Version:       CurrentVersion,
			Time:          now.UTC(),
			Actor:         meta.Actor,
			CausationID:   meta.CausationID,
			CorrelationID: corr,
			Object:        obj,
			Payload:       body,
		},
		Data:        p,
		Subject:     subject,
		Traceparent: meta.Traceparent,
	}, nil
}

// Marshal encodes the envelope for the wire.
func (e *Event) Marshal() ([]byte, error) {
	b, err := json.Marshal(&e.Envelope)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	if len(b) > MaxEventBytes {
		return nil, fmt.Errorf("%s of %s is %d bytes, more than an event may have (%d): %w", e.Type, e.Object, len(b), MaxEventBytes, ErrInvalidArgument)
	}
	return b, nil
}

// Decode parses one message of the log. An unknown type or version, or a payload that does not
// parse, returns an error wrapping ErrInvalidArgument; the caller reports and skips it.
func Decode(subject string, seq uint64, data []byte) (*Event, error) {
	ev, err := DecodeEnvelope(subject, seq, data)
	if err != nil {
		return nil, err
	}
	if err := ev.DecodePayload(); err != nil {
		return nil, err
	}
	return ev, nil
}

// DecodeEnvelope parses the envelope only; Data stays nil. The actor of what a node writes is
// the node its subject names (see nodeActor), whatever the envelope claims.
func DecodeEnvelope(subject string, seq uint64, data []byte) (*Event, error) {
	if len(data) > MaxEventBytes {
		return nil, fmt.Errorf("event seq %d on %s: %d bytes, more than an event may have (%d): %w", seq, subject, len(data), MaxEventBytes, ErrInvalidArgument)
	}
	ev := &Event{Subject: subject, Seq: seq}
	if err := unmarshal(data, &ev.Envelope); err != nil {
		return nil, fmt.Errorf("event seq %d on %s: malformed envelope: %v: %w", seq, subject, err, ErrInvalidArgument)
	}
	if kind := KindOf(ev.Type); kind != "" && !onKind(subject, kind) {
		return nil, fmt.Errorf("event seq %d: a %s event does not belong on %s: %w", seq, ev.Type, subject, ErrInvalidArgument)
	}
	if a := nodeActor(subject); a != "" {
		ev.Actor = a
	}
	return ev, nil
}

// MaxEventBytes bounds one event on the wire: above any real one (the largest are the
// EndpointsUpdated of a Service with tens of thousands of ready pods, about 100 bytes each),
// below NATS's payload limit (8 MiB here), so an oversized append is refused and an oversized
// message on the log is poison.
const MaxEventBytes = 4 << 20

// onKind says whether subject is one of kind's subjects (skiff.ev.<kind>.…).
func onKind(subject, kind string) bool {
	rest, ok := strings.CutPrefix(subject, SubjectRoot+".")
	return ok && strings.HasPrefix(rest, kind+".")
}

const (
	statusPrefix = SubjectRoot + "." + KindStatus + "."
	nodePrefix   = SubjectRoot + "." + KindNode + "."
)

// nodeActor is the actor of an event a node agent writes, taken from its subject: a status
// subject names its node, and so does a node's registration subject (NodeRegistrationSubject).
// The servers let only that node (and admin) publish there, so the subject is the
// authenticated identity; an envelope's claim is not. "" for every other event, whose
// envelope's actor stands.
func nodeActor(subject string) string {
	if rest, ok := strings.CutPrefix(subject, statusPrefix); ok {
		if i := strings.IndexByte(rest, '.'); i > 0 {
			return "node/" + rest[:i]
		}
	}
	if name, ok := strings.CutPrefix(subject, nodePrefix); ok && !strings.Contains(name, ".") {
		return "node/" + name
	}
	return ""
}

// DecodePayload fills Data from Payload.
func (e *Event) DecodePayload() error {
	r, ok := registry[e.Type]
	if !ok {
		return fmt.Errorf("event seq %d on %s: unknown type %q: %w", e.Seq, e.Subject, e.Type, ErrInvalidArgument)
	}
	if e.Version < 1 || e.Version > CurrentVersion {
		return fmt.Errorf("event seq %d on %s: %s version %d is not supported (this build reads up to %d): %w",
			e.Seq, e.Subject, e.Type, e.Version, CurrentVersion, ErrInvalidArgument)
	}
	p := r.new()
	if err := unmarshal(e.Payload, p); err != nil {
		return fmt.Errorf("event seq %d on %s: malformed %s payload: %v: %w", e.Seq, e.Subject, e.Type, err, ErrInvalidArgument)
	}
	e.Data = p
	return nil
}

// Cause is what an event written in reaction to another keeps of it: its id (the new event's
// causationId), its correlation (the user's command) and its trace context.
type Cause struct {
	ID, CorrelationID, Traceparent string
	// Seq is the cause's sequence in the log, to tell the latest of several causes.
	Seq uint64
}

// Cause returns what an event written in reaction to e keeps of it.
func (e *Event) Cause() Cause {
	return Cause{ID: e.ID, CorrelationID: e.CorrelationID, Traceparent: e.Traceparent, Seq: e.Seq}
}

// From returns meta for an event written in reaction to c; a zero c leaves m as it is.
func (m Meta) From(c Cause) Meta {
	if c.ID == "" {
		return m
	}
	m.CausationID = c.ID
	m.CorrelationID = c.CorrelationID
	if m.Traceparent == "" {
		m.Traceparent = c.Traceparent
	}
	return m
}
