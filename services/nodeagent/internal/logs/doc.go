// Package logs serves `skiff logs`: it answers log requests for the containers of its node
// (api.LogsSubject(node)) from the log files the containerd shims write, and streams them to the
// client in chunks, following them as they grow when asked to. It reads files only: it needs
// neither containerd nor the event log, so logs stay readable while either is down.
//
// # Files
//
// A container run's output is LogDir/<namespace>_<pod>_<uid>/<container>/<restart>.log (see
// package runtime), rotated by copy-truncate into <restart>.log.1, .2, ... The current run is
// the highest <restart>.log present; the previous one is the run just before it. A run's whole
// log is its rotated copies, oldest first, followed by the live file, so a reader sees what is
// still on disk of the run, not only what followed the last rotation (the kubelet shows the
// latter).
//
// # Following
//
// A follower holds the live file open and polls its size every Config.Poll. It tells a
// rotation by a new <restart>.log.1 (a new inode) with the live file now shorter than that copy:
// what it had not read yet is at the end of the copy, so it sends that and goes on from the start
// of the live file. Bytes written between the copy and the truncate are lost to everyone; that
// is copy-truncate's price (see package runtime). A file that merely shrinks is taken as
// truncated and read again from its start. A new <restart+1>.log means the container restarted:
// the follower sends the rest of the old run and switches. The pod's log directory going away
// means the pod is gone: the follower sends what is left and ends the stream.
//
// # Flow control and liveness
//
// Every chunk is a request that the client answers once it has written the chunk, and the next
// chunk is read only after that answer: a stream holds one chunk of memory, whatever the
// client's speed. Every Config.Heartbeat the stream probes the client's alive subject; a probe
// without responder (the client's subscriptions are gone) or without answer ends the stream,
// as does a chunk left unanswered for Config.AckTimeout.
//
// # Concurrency
//
// Each stream runs in its own goroutine and touches only its own files; at most
// Config.MaxStreams run at once, a request beyond that is refused as Unavailable. Serve returns
// after ctx ends and every stream it started has stopped; each stream cut short that way ends
// with an Unavailable error chunk ("the node agent of N is stopping"), so a following client
// learns at once why, rather than from the silence.
package logs
