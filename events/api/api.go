// Package api is the request/reply protocol between the skiff CLI (or any client) and the
// scheduler service: commands that admission validates and turns into events, and queries
// answered from a replica's projection.
//
// Commands and queries travel as core NATS requests; any scheduler replica answers (queue group
// QueueGroup). Query answers can be large, so they come back as a sequence of chunks on the
// request's reply inbox, the last one marked.
//
// # Acknowledgements and resends
//
// NATS keeps a replica's queue subscription until it notices the replica's connection (or the
// route to its server) is dead, which takes a few pings. Until then it hands that replica its
// share of the requests, and they are lost. So a Client asks for an acknowledgement (request
// header HeaderAck): the replica that takes a request sends a header-only "accepted" message on
// the reply subject at once, before any work, then its answer. A request neither acknowledged
// nor answered within Client.AckTimeout is sent again, on a fresh reply inbox, until one is or
// the context ends; once acknowledged, the client waits for the answer as long as its context
// allows. Every copy carries the same HeaderRequestID.
//
// A resend is always safe for a query, which only reads. A command resent because its copy
// reached a dead replica was never carried out. One resent because the acknowledgement was late
// or lost (the replica stalled, or its connection broke just after it took the command) may run
// twice. Skiff's commands are declarative (apply, scale and cordon set a state, delete names an
// object) and every write is conditional on its subject's sequence, so a second run writes
// nothing: it finds the first run's events and would answer "unchanged" or "not found". Two
// safeguards make it answer as the first did. A replica answers a copy whose request ID, subject
// and content it has seen before with the first copy's answer. Admission derives event IDs from
// the request ID, the subject and the expected sequence, so copies running at once on two
// replicas, from the same state, write one event and both count it as theirs (store.Append on a
// conflict checks whether the subject's last event has its ID). What remains: a copy that
// reaches another replica only after the first copy's events are in that replica's projection
// answers "unchanged" (a delete: not found); the client reads whichever answer comes first,
// normally the first copy's.
//
// Mixed versions: a client that does not send HeaderAck gets no acknowledgement (it would
// take it for the answer) and waits as it always did. A replica that does not acknowledge is
// heard by a new client as long as it answers within AckTimeout; a slower one gets another copy
// every AckTimeout, and its answer is still taken, since every earlier inbox stays open.
package api

import (
	"encoding/json"
	"fmt"
	"strings"

	"skiff.dev/events"
)

// Subjects of commands and queries. A command goes to CommandSubject(SubjectApply, identity)
// and so on: the last token is who sends it, which the server checks (a user may publish only
// on its own), so the scheduler records it as the actor and no client can claim another's name.
const (
	SubjectApply  = "skiff.cmd.apply"
	SubjectDelete = "skiff.cmd.delete"
	SubjectScale  = "skiff.cmd.scale"
	SubjectCordon = "skiff.cmd.cordon"
	SubjectGet    = "skiff.q.get"
	// QueueGroup spreads commands and queries over scheduler replicas.
	QueueGroup = "skiff-scheduler"
)

// Anonymous is the identity of a client without credentials, on a server that allows them (a
// test server; skiff up and cluster init always require credentials).
const Anonymous = "anonymous"

// CommandSubject is the subject identity sends a command of kind prefix (SubjectApply, ...) on.
func CommandSubject(prefix, identity string) string {
	if identity == "" {
		identity = Anonymous
	}
	return prefix + "." + identity
}

// CommandActor is the actor of a command received on subject: "user/<identity>".
func CommandActor(subject string) string {
	return "user/" + subject[strings.LastIndexByte(subject, '.')+1:]
}

// IsInbox says whether a reply subject is an inbox. Responders answer only inboxes: a request
// whose reply subject were, say, skiff.ev.pod.x.y would otherwise make the responder write its
// answer into the log.
func IsInbox(reply string) bool { return strings.HasPrefix(reply, "_INBOX.") }

// Document is one manifest document, converted to JSON, with where it came from.
type Document struct {
	// Source names the file (or "-") and Index the document's position in it, for errors.
	Source string          `json:"source,omitempty"`
	Index  int             `json:"index"`
	Object json.RawMessage `json:"object"`
}

// Where formats the document's origin for messages: "web.yaml#2".
func (d Document) Where() string {
	switch d.Source {
	case "":
		return fmt.Sprintf("document %d", d.Index+1)
	case "-":
		return fmt.Sprintf("stdin#%d", d.Index+1)
	}
	return fmt.Sprintf("%s#%d", d.Source, d.Index+1)
}

// ApplyRequest creates or changes objects.
type ApplyRequest struct {
	Documents []Document `json:"documents"`
	// Actor is set by the scheduler from the subject (CommandActor); a client\'s value is replaced.
	Actor  string `json:"actor,omitempty"`
	DryRun bool   `json:"dryRun,omitempty"`
	// Traceparent links the resulting events to the caller's trace.
	Traceparent string `json:"traceparent,omitempty"`
	// IdempotencyKey is set by the scheduler from the request's HeaderRequestID, subject and
	// content (never sent: a client's value is ignored); admission derives event ids from it.
	IdempotencyKey string `json:"-"`
}

// DeleteRequest deletes the objects of Documents, or the one object Kind/Namespace/Name.
type DeleteRequest struct {
	Documents          []Document `json:"documents,omitempty"`
	Kind               string     `json:"kind,omitempty"`
	Namespace          string     `json:"namespace,omitempty"`
	Name               string     `json:"name,omitempty"`
	GracePeriodSeconds *int64     `json:"gracePeriodSeconds,omitempty"`
	// Actor is set by the scheduler from the subject (CommandActor); a client\'s value is replaced.
	Actor       string `json:"actor,omitempty"`
	Traceparent string `json:"traceparent,omitempty"`
	// IdempotencyKey: as ApplyRequest's.
	IdempotencyKey string `json:"-"`
}

// ScaleRequest sets a Deployment's replicas.
type ScaleRequest struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Replicas  int32  `json:"replicas"`
	// Actor is set by the scheduler from the subject (CommandActor); a client\'s value is replaced.
	Actor       string `json:"actor,omitempty"`
	Traceparent string `json:"traceparent,omitempty"`
	// IdempotencyKey: as ApplyRequest's.
	IdempotencyKey string `json:"-"`
}

// CordonRequest marks a node (un)schedulable.
type CordonRequest struct {
	Node   string `json:"node"`
	Cordon bool   `json:"cordon"`
	// Actor is set by the scheduler from the subject (CommandActor); a client\'s value is replaced.
	Actor       string `json:"actor,omitempty"`
	Traceparent string `json:"traceparent,omitempty"`
	// IdempotencyKey: as ApplyRequest's.
	IdempotencyKey string `json:"-"`
}

// SetActor records who sent the request (the scheduler calls it with CommandActor).
func (r *ApplyRequest) SetActor(a string) { r.Actor = a }

// SetActor records who sent the request.
func (r *DeleteRequest) SetActor(a string) { r.Actor = a }

// SetActor records who sent the request.
func (r *ScaleRequest) SetActor(a string) { r.Actor = a }

// SetActor records who sent the request.
func (r *CordonRequest) SetActor(a string) { r.Actor = a }

// SetIdempotencyKey records the command's idempotency key (the scheduler calls it).
func (r *ApplyRequest) SetIdempotencyKey(k string) { r.IdempotencyKey = k }

// SetIdempotencyKey records the command's idempotency key.
func (r *DeleteRequest) SetIdempotencyKey(k string) { r.IdempotencyKey = k }

// SetIdempotencyKey records the command's idempotency key.
func (r *ScaleRequest) SetIdempotencyKey(k string) { r.IdempotencyKey = k }

// SetIdempotencyKey records the command's idempotency key.
func (r *CordonRequest) SetIdempotencyKey(k string) { r.IdempotencyKey = k }

// Result is what happened to one object.
type Result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Action is created, configured, unchanged, deleted, scaled, cordoned or uncordoned.
	Action string `json:"action"`
	// Seq is the sequence of the last event written for the object (0 if none was).
	Seq uint64 `json:"seq,omitempty"`
}

// String formats the result as kubectl does: "deployment.apps/web created".
func (r Result) String() string { return ResourceName(r.Kind) + "/" + r.Name + " " + r.Action }

// ResourceName is kubectl's name for a kind in messages: "deployment.apps", "pod".
func ResourceName(kind string) string {
	switch kind {
	case "Deployment":
		return "deployment.apps"
	default:
		return strings.ToLower(kind)
	}
}

// Response answers a command.
type Response struct {
	Results []Result `json:"results,omitempty"`
	Error   *Error   `json:"error,omitempty"`
	// Seq is the stream sequence after the command's events; a query with MinSeq = Seq sees them.
	Seq uint64 `json:"seq,omitempty"`
}

// Error is a failed command or query: a class, a message, and for invalid input every cause.
type Error struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Causes  []Cause `json:"causes,omitempty"`
}

// Cause is one problem with one field of one document.
type Cause struct {
	Document string `json:"document,omitempty"`
	Field    string `json:"field,omitempty"`
	Reason   string `json:"reason"`
}

func (c Cause) String() string {
	var b strings.Builder
	if c.Document != "" {
		b.WriteString(c.Document + ": ")
	}
	if c.Field != "" {
		b.WriteString(c.Field + ": ")
	}
	b.WriteString(c.Reason)
	return b.String()
}

// Error formats the message and every cause, one per line.
func (e *Error) Error() string {
	if len(e.Causes) == 0 {
		return e.Message
	}
	lines := []string{e.Message}
	for _, c := range e.Causes {
		// A cause that only repeats the message (one object, one problem) adds nothing.
		if s := c.String(); s != e.Message {
			lines = append(lines, "  "+s)
		}
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the events error class of the code, so errors.Is works across the wire.
func (e *Error) Unwrap() error { return events.ClassOf(e.Code) }

// ErrorFrom converts an error to its wire form.
func ErrorFrom(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Code: events.Code(err), Message: err.Error()}
}

// GetRequest reads objects from a replica's projection.
type GetRequest struct {
	// Kind is pods, deployments, services, endpoints, nodes or namespaces.
	Kind          string            `json:"kind"`
	Namespace     string            `json:"namespace,omitempty"`
	AllNamespaces bool              `json:"allNamespaces,omitempty"`
	Name          string            `json:"name,omitempty"`
	Selector      map[string]string `json:"selector,omitempty"`
	// MinSeq makes the replica wait until its projection has applied this sequence.
	MinSeq uint64 `json:"minSeq,omitempty"`
	// Table asks for printed rows (as kubectl's server-side printing) instead of objects.
	Table bool `json:"table,omitempty"`
	Wide  bool `json:"wide,omitempty"`
}

// GetChunk is one message of a query's answer. Items are objects in the Kubernetes JSON shape;
// Rows are table rows when the request asked for a table (Columns come in the first chunk).
type GetChunk struct {
	Seq     uint64            `json:"seq"`
	Columns []string          `json:"columns,omitempty"`
	Rows    [][]string        `json:"rows,omitempty"`
	Items   []json.RawMessage `json:"items,omitempty"`
	Error   *Error            `json:"error,omitempty"`
	Last    bool              `json:"last,omitempty"`
}

// KV buckets and object stores besides the log.
const (
	// LeaseBucket holds one key per node, renewed by its agent (history 1): heartbeats are not
	// events. The key's last update time (server time) is the node's last renewal.
	LeaseBucket = "skiff-leases"
	// LeaderBucket holds the control loops' leader key, with a TTL.
	LeaderBucket = "skiff-leader"
	// ImageBucket is the object store of imported images.
	ImageBucket = "skiff-images"
	// SnapshotBucket is the object store of snapshots of the whole fold (package snapshot),
	// written by the scheduler's leader, read by scheduler replicas and users.
	SnapshotBucket = "skiff-snapshots"
	// NodeSnapshotBucket holds the same snapshots restricted to what a node may read (nodes,
	// services, endpoints), for node agents and net proxies.
	NodeSnapshotBucket = "skiff-snapshots-nodes"
)
