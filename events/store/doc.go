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
// # Fencing
//
// Per-subject conditions keep two writers from overwriting each other, not a stale leader from
// acting on a stale view: its PodCreated goes to a fresh subject, and any write whose object did
// not move lands. So the leader's control loops write through Fenced. A term begins with a
// LeaderElected on events.TermSubject (appended conditionally, so two replicas cannot start
// terms from the same predecessor); its sequence is the term's fence. Each AppendAll of a
// Fenced writer goes out as JetStream atomic batches (the stream allows them: bootstrap turns
// AllowAtomicPublish on) of at most MaxBatch messages: first a LeaderWrote on the loop's subject
// (skiff.ev.leader.pass.<loop>) whose condition is on the term subject
// (Nats-Expected-Last-Subject-Sequence-Subject), then the writes, each with its own condition.
// The server stores all of a batch or none of it, so once a newer term is recorded nothing a
// stale leader sends lands, and it learns so from the refusal (events.ErrFenced).
//
// A batch is refused whole, with the sequence of the first subject found not where its writer
// expected it; the message at that sequence tells which write conflicts (or that the fence did).
// Fenced drops that write and sends the rest again, so a pass keeps the per-write outcome of
// plain appends at one more batch for a conflict; from a batch's second conflict on, it asks
// where every subject of the batch is (one direct get) and drops all that moved at once. Batches of a Store go one at a time: a
// clustered stream refuses a batch whose fence is checked while another's is (both check the
// term subject), and on one server the batch's staging store is synced on commit, so batches
// in parallel were no faster (measured: docs/architecture.md).
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
