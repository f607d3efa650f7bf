// Package store is Skiff's event log on NATS JetStream: conditional appends, reads of one
// object's history, replay from any sequence, and live follow.
//
// # Concurrency control
//
// Every append names the last sequence its writer saw on the event's subject
// (Nats-Expected-Last-Subject-Sequence; 0 means "the subject must be empty"). If another writer
// got there first the append fails with an error wrapping events.ErrConflict; the writer re-reads
// and decides again. The event id doubles as Nats-Msg-Id, so retrying an append that may have
// landed is harmless within the stream's duplicate window.
//
// # Ordering
//
// Read and Follow deliver events in stream order, each exactly once per call, through JetStream
// ordered consumers that recover from gaps and server restarts by themselves. Follow calls
// CaughtUp once, after the last event that existed when it started has been handled, so a
// consumer can refuse to act on partial state.
//
// # Poison events
//
// An event that does not decode (unknown type or version, malformed JSON) is passed to OnPoison
// (by default logged) and skipped; it never stops a reader.
package store
