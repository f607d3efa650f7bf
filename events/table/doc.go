// Package table prints Skiff's objects as rows of text, the way kubectl prints Kubernetes
// objects: the scheduler's query handler uses it to answer `skiff get` with rows instead of
// whole objects (server-side printing keeps a 30,000-pod answer small), and the CLI uses it to
// print state it folded itself (`skiff events replay`).
//
// # Kinds
//
// Lookup turns any name a user may type (kubectl's aliases, singular or plural, or the manifest
// Kind) into a Resource. Rows, Row and Columns take the Resource's plural name ("pods").
//
// # Ordering
//
// Rows are sorted by namespace, then name, so an answer is stable and two replicas answering the
// same query at the same sequence return byte-identical rows.
//
// # Concurrency and purity
//
// Every function here is pure: the time used for AGE is passed in, nothing reads a clock, and the
// state is only read. The caller holds whatever lock guards the state (live.Projection.View) for
// the duration of a call; rows hold no pointers into it afterwards.
package table
