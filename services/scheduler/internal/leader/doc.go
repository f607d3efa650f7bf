// Package leader elects the one scheduler replica that runs the control loops (scheduling,
// controllers, node lifecycle), with a key in the KV bucket api.LeaderBucket.
//
// # How
//
// The bucket has a TTL (history 1): a key that is not updated within the TTL expires. A candidate
// takes the key with Create, which fails while someone else holds it, and keeps it by Update with
// the revision it last wrote, every TTL/3. A standby watches the key and tries again as soon as it
// is deleted or expires (the bucket keeps expiry markers, so expiry is seen at once), and at least
// every RetryInterval in case markers are not available.
//
// # Guarantees
//
// The key decides who runs the loops; the log decides whose writes count. A replica that wins
// the key begins a term (Begin): it appends a LeaderElected to events.TermSubject, conditional on
// the last term it read there, and runs its loops only after its projection holds everything up
// to that event. Every write of the loops goes through a store.Fenced writer of the term: an
// atomic batch whose first message, a LeaderWrote fence, the server takes only while the term's
// LeaderElected is still the last event on the term subject. So once a newer term is recorded,
// nothing an older leader sends lands, however late it arrives (a leader stopped by SIGSTOP past
// its TTL, a GC pause, a partition that heals): the server refuses its whole batch with
// events.ErrFenced. The first such refusal ends the term at once (Term cancels the context the
// loops run under) and, when the loops have stopped, Term.End logs one warning:
//
//	lost leadership: N writes rejected by a newer term (term T, now U)
//
// N counts the writes the log refused (a term that ends otherwise logs no such line). If another
// term is recorded between Begin's read and its append, Begin fails with a conflict: the replica
// runs no loops, gives the key up and campaigns again.
//
// Fencing is what makes a stale leader harmless, not the timing below; the timing keeps it rare.
// A leader gives up (cancels the context it handed to onLead) before another candidate can get
// the key: when an Update is rejected (someone else holds the key, or it expired), or when it has
// not managed to renew for TTL − TTL/10 since the last renewal it sent, since after TTL the server
// may have expired the key. A process that is stopped cannot give up; that is the case fencing
// covers.
//
// When a leader dies without cleaning up, a standby takes over once the key expires: at most TTL
// after the last renewal, plus the RetryInterval if expiry markers are missing. With the default
// TTL of 10 s that is well within 15 s. On a clean stop the leader deletes the key (conditional on
// its revision) and a standby takes over at once.
//
// # Concurrency
//
// Run calls onLead on its own goroutine, once per term, and waits for it to return before it
// campaigns again, so one process never runs two terms at once.
package leader
