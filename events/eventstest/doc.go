// Package eventstest is the test kit every Skiff module shares: real, embedded JetStream servers
// and logs (NewServer, NewStore), projections that follow them (Follow, WaitState, Append),
// polling with a deadline (Eventually, Poll) and golden files (Golden, with the -update flag).
//
// # Real parts
//
// A unit test runs against a real in-process NATS server with JetStream in t.TempDir(): the
// expected-sequence check, the consumers and the buckets are the ones production uses, so a test
// cannot pass against a fake that forgot one. Everything the kit starts stops at t's cleanup,
// in the reverse order of starting (a projection before its server).
//
// # Waiting
//
// Nothing waits by sleeping for a guessed time. WaitState wakes at every change a projection
// applies; Eventually and Poll check a condition often (a millisecond apart at first, then up to
// 20 ms) until it holds or the deadline passes, and the failure says what was awaited
// and the condition's last reason.
//
// # Golden files
//
// Golden compares output with a file in testdata/. The package registers one -update flag for
// every test binary that imports it (so no test package may register its own), and a mismatch
// prints the diff and the command that rewrites the file:
//
//	go test ./cmd/skiff/internal/printer -run '^TestTable$' -update
//
// A golden file is rewritten only by -update, byte for byte what the test produced.
//
// # Concurrency
//
// The helpers that take t may fail it with Fatal, so call them from the test's own goroutine, as
// testing requires; Poll and Append return errors instead and may run anywhere. A condition
// given to Eventually or Poll runs on the caller's goroutine, never concurrently with itself.
package eventstest
