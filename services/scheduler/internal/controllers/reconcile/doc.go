// Package reconcile is the loop every controller of the scheduler runs: wait until the
// projection has caught up with the log, then run a pass that decides from one view of the state
// and appends its decisions conditionally, and run it again whenever the state changes.
//
// # Ordering
//
// A pass sees the state after a whole number of events. Before the next pass, the loop waits
// until the projection has applied every event the pass wrote, so no pass decides from a state
// that lacks its own previous decisions (which would, say, create a Deployment's pods twice).
// When a write is rejected as a conflict, the loop waits for the projection to move and decides
// again; it never retries the stale decision.
//
// # Leadership
//
// A leader's loops write through a store.Fenced log: each Flush goes out as atomic batches that
// the log refuses whole once a newer leader term has begun. Such writes are counted as
// Result.Fenced, neither conflicts nor errors, and the loop stops: the replica no longer leads.
//
// # Coalescing
//
// Changes are not queued: the loop notes that the projection moved (Projection.Changed) and the
// next pass reads the state as it is then. A thousand events that arrive during one pass cause one
// more pass, not a thousand.
//
// # Time
//
// Passes read the time from the injected clock and may ask to run again at a time on that clock
// (Result.RequeueAt). The loop sleeps in real time for at most Config.Resync between such passes,
// so a test that moves a fake clock sees the effect within Resync, and a real clock's jumps are
// noticed too.
//
// # Concurrency
//
// One loop runs one pass at a time. Trigger may be called from any goroutine.
package reconcile
