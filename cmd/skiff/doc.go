// Command skiff is Skiff's command-line client, shaped like kubectl: apply, get, describe,
// delete, scale, rollout status, cordon, and the log-native commands `events log` and
// `events replay`.
//
// # How it talks to the cluster
//
// Only over NATS. Commands (apply, delete, scale, cordon) are requests on skiff.cmd.* that any
// scheduler replica answers; queries (get, describe) go to skiff.q.get and come back in chunks,
// as printed rows when a table is wanted, so a 30,000-pod listing stays small. Everything that
// is about history (events log, events replay, describe's Events, get -w, rollout status) reads
// the log itself: it needs no scheduler and sees exactly what was decided.
//
// # Adding a command
//
// Every top-level command lives in its own file and registers its constructor in that file's
// init with register(newXCmd); the root command adds whatever was registered. Adding a file adds
// a command; nothing else needs editing. A constructor takes the *app (streams, clock, global
// flags, lazily opened connections) and returns a *cobra.Command whose RunE returns errors
// rather than printing them: run prints every error the same way (one line, kubectl wording,
// exit status 1; usage errors add a hint and exit 2).
//
// # Concurrency
//
// One command runs per process. Commands that follow the log (get -w, events log -f, rollout
// status) consume it in order and print from one goroutine at a time. Interrupting a watch
// (Ctrl-C) ends it with status 0: watching was all it was asked to do. Interrupting rollout
// status exits 130, because the rollout's outcome was never reported.
package main
