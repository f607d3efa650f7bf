// Package snapshot keeps snapshots of the fold (events/state) in JetStream object stores, so a
// service starts from the newest one and folds only the log's tail instead of all of it.
//
// # Format
//
// A snapshot is a fixed header (Magic, Version, compression, a CRC-32C of everything else, the
// sequence it was folded up to and that event's time, the lengths), the identity of the log it
// was folded from (the stream's name and creation time: a snapshot of another cluster's SKIFF,
// or of a stream made again, is refused), the kinds it holds, and the body that
// state.MarshalSnapshot writes, compressed with zstd (or s2, or not at all; the header says
// which). Decode says what is wrong with one it cannot use: ErrCorrupt, ErrTruncated,
// ErrVersion or ErrOtherStream. A reader never reinterprets another version: it skips it.
//
// # Buckets and who reads them
//
// The scheduler's leader writes each snapshot twice: the whole fold to api.SnapshotBucket
// (read by scheduler replicas and users, who may read the whole log anyway) and the part a node
// may read (NodeKinds: nodes, services, endpoints) to api.NodeSnapshotBucket, which node
// credentials may read. A node may not read pods other than its own, so the whole fold is not
// for it. Each bucket keeps the newest Keep snapshots. Objects are named for their sequence
// (ObjectName), so a listing orders them without reading one.
//
// # Starting from a snapshot
//
// Start (for services) and Load try the newest snapshot first and older ones after it: a
// snapshot that does not decode, is of another version or log, lies past the log's head or
// lacks kinds the reader folds is skipped with one log line, and with none left the reader
// replays the log from its start. A snapshot of more kinds than the reader folds is restricted
// (state.Restrict), so that its state is what the reader's own replay would have made.
//
// # Concurrency
//
// A Writer copies what the fold changes in place under the projection's read lock
// (state.Freeze: the fold waits for that long, readers do not) and does everything else after
// it: walking the copy, compression, the buckets. Decode turns the collector off while it
// builds the state (see pauseGC). Writing and loading may run at once with any number of
// readers of a bucket.
package snapshot
