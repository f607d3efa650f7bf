// Package admission is where user commands become events. It validates apply, delete, scale and
// cordon requests strictly against the cluster's state and appends the events they imply, or
// answers with an error that names every problem, field by field. Nothing invalid reaches the
// log. docs/manifests.md describes what manifests may contain.
//
// # Decoding
//
// Manifests arrive as JSON (the CLI converts YAML). Decode parses a document into an ordered
// tree and walks it against the events object types by their json tags, so every unknown field,
// type mismatch and rule violation of every document is reported at once, with its path
// (spec.template.spec.containers[0].resources.limits.memory), rather than the first one
// encoding/json would stop at. System-owned fields that `get -o yaml` prints (status,
// creationTimestamp, resourceVersion, ...) are accepted and dropped; metadata.uid,
// metadata.ownerReferences and spec.nodeName are accepted only when they match the existing
// object. Decode is pure and needs no state, so a client can run it before sending.
//
// # Deciding and writing
//
// A command is decided on one view of the projection (live.Projection.View) and written with
// conditional appends: each event expects its subject's last sequence as that view saw it
// (state.SubjectSeq). Before deciding, admission waits for the projection to have applied the
// log's head as of the command's arrival (when the Appender can tell it, as *store.Store can), so
// a command sees every write acknowledged before it was sent, through whichever replica.
//
// Apply is all or nothing up to the first write: every document is checked before anything is
// written. Then the events are appended one by one in document order, Namespaces first. When an
// append fails with events.ErrConflict, another writer changed that object after the decision:
// admission waits until its projection shows that write and decides the whole command again on
// the new state, keeping the results of what it already wrote (an object it created in the first
// attempt is unchanged in the second, and is still reported as created). It gives up after
// maxAttempts with a Conflict error that says to retry. Any other failed append stops the command;
// the answer names what was written and what was not, except for a write the log did not
// acknowledge (Unavailable), whose outcome is unknown; applying again is safe either way. A log at
// its size limit refuses the write (store.ErrFull, FailedPrecondition): nothing of it was written.
//
// Delete is per object, as kubectl's is: a missing object is reported and the others are still
// deleted. Namespaces are deleted last, and only when empty.
//
// # Concurrency
//
// An Admission is safe for concurrent use and keeps no state besides the projection, so any
// number of scheduler replicas can run it side by side. Two applies of one new object race on the
// object's subject: exactly one creates it; the other's append conflicts, and deciding again it
// finds the object unchanged (or configures it, if its manifest differs).
//
// ClusterIP allocation spans subjects, which the per-subject check does not protect. Within one
// replica a mutex serializes applies that contain Services. Across replicas, the writer of a new
// Service checks, once its projection holds its write, whether another Service took the same
// address earlier in the log, and if so moves its own Service to the next free address. One case
// escapes this check: the earlier Service being changed again between the two writes. The proper
// fix is a claim per address on a subject of its own, which needs a new event type in events.
//
// # Errors
//
// Answers carry *api.Error with the events error class as Code: InvalidArgument for bad input
// (with one Cause per problem), NotFound, Conflict, FailedPrecondition, and Unavailable while the
// replica has not caught up with the log. When one request has problems of several classes, the
// code is InvalidArgument.
package admission
