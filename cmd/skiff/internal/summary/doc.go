// Package summary says in one line what an event did, for `skiff events log` and the Events
// section of `skiff describe`: the facts a person scanning the log looks for (which node, why
// not, how many replicas), never the whole payload, which `skiff events log -o json` prints.
//
// Summaries are pure functions of one event: no state, no clock, so the same event always reads
// the same wherever it is printed.
package summary
