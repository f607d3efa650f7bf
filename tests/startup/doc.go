// Package startup measures pod start-up latency from the event log: the time from a pod's
// PodCreated event to the first PodStatusReported with phase Running, both stamped by their
// writers (admission or the Deployment controller, and the node agent). On one machine those
// clocks are the same clock, so the difference is the latency a user sees, without polling.
//
// It also splits the latency at the events in between, to show where the time goes: scheduling
// (PodCreated → PodScheduled), binding (→ PodBound), and the node (PodBound → Running).
//
// Everything here is pure: it reads events and computes; it does no I/O.
//
// # Ordering and concurrency
//
// FromEvents wants the events in stream order (as store.Read delivers them): "first" means
// first in the log. Nothing here keeps state between calls; all functions are safe for
// concurrent use.
package startup
