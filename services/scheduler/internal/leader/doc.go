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
// Leadership is a hint that keeps replicas from doing the same work twice, not a lock anything
// depends on: every write to the log is conditional, so two leaders for a moment cost duplicate
// attempts, never wrong state. Still, a leader gives up (cancels the context it handed to onLead)
// before another candidate can get the key: when an Update is rejected (someone else holds the
// key, or it expired), or when it has not managed to renew for TTL − TTL/10 since the last renewal
// it sent, since after TTL the server may have expired the key.
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
