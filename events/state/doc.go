// Package state is Skiff's projection: a pure, deterministic fold of the event log into the
// cluster's state. Every service, `skiff events replay` and the tests use this same fold.
//
// # Purity
//
// Apply reads no clock, does no I/O and uses no randomness: the state after a sequence of events
// depends on those events only, so replaying from sequence 1, or from a snapshot plus the tail,
// gives identical state.
//
// # Bad events
//
// An event that contradicts the state (a status from a node the pod is not bound to, an event for
// an object that does not exist, a UID that does not match) changes nothing but the subject's
// last sequence, and Apply returns an error wrapping events.ErrFailedPrecondition for the caller
// to report. The fold never panics on input.
//
// # Concurrency
//
// A State is not safe for concurrent use; its owner serializes Apply with its readers.
package state
