package events

import (
	"time"
)

// Envelope is what every event on the log looks like. Payload is the type-specific body; it is
// kept raw until someone needs it, so tools that only list events never decode it.
type Envelope struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Version int       `json:"v"`
	Time    time.Time `json:"time"`
	// Actor is who wrote the event: "scheduler/<id>", "node/<name>", "user/<name>".
	Actor string `json:"actor"`
	// CausationID is the id of the event this one reacts to.
	CausationID string `json:"causationId,omitempty"`
	// CorrelationID is the id of the user request the whole chain belongs to.
	CorrelationID string    `json:"correlationId,omitempty"`
	Object        ObjectRef `json:"object"`
	Payload       RawJSON   `json:"payload"`
}

// ObjectRef names the object an event is about.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// String formats the reference as kind/namespace/name.
func (r ObjectRef) String() string {
	if r.Namespace == "" || r.Namespace == ClusterScope {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Event is a decoded event read from the log: its envelope, its payload, and where it sits.
type Event struct {
	Envelope
	Data    Payload
	Subject string
	Seq     uint64
	// Traceparent is the W3C trace context the writer attached, if any.
	Traceparent string
}

// Payload is the body of one event type.
type Payload interface {
	// EventType is the type name written in the envelope.
	EventType() string
}
