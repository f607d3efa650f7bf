// Package scheduling binds pending pods to nodes: the control plane's scheduler, run by the
// leader only.
//
// # Deciding
//
// For each pending pod (oldest first) a chain of one-method feasibility checkers (feasible.go)
// accepts or rejects nodes; a rejected node is recorded with a constant reason, never an error.
// Feasible nodes are ranked (rank.go) by how much room they keep (least allocated CPU and memory)
// plus how few replicas of the pod's owner they already run (spread), and the best wins. Like
// kube-scheduler's percentageOfNodesToScore and Nomad's limit iterator, the search stops once it
// has found enough feasible nodes (place.go), starting each pod at a node picked by a hash of
// its UID, so a pod costs O(nodes to find), not O(all nodes). Nothing else (no clock, no map
// order, no earlier pass) enters a decision: the same fold gives the same node, so a recorded
// decision can be re-run from the log (Rerun). A pod that fits nowhere costs one full pass,
// which yields kube-scheduler's message ("0/3 nodes are available: 1 node(s) had untolerated taint
// {dedicated: db}, 2 Insufficient memory.") written as PodUnschedulable, only when it changed.
//
// # Writing
//
// A decision is two events: PodScheduled on the pod's subject, conditional on the pod subject's
// sequence when the pod was read, then PodBound (the full pod, spec.nodeName set) on the node's
// bind subject, conditional on that subject's sequence. The first is the decision and the
// concurrency control: if anything happened to the pod in between (another scheduler bound it,
// a user deleted it) the append fails with a conflict, and the pod is decided again once the
// projection shows what happened. A scheduler that stops between the two leaves a pod with
// spec.nodeName set and no PodBound; every scheduler finishes such gaps at start and then every
// GapInterval (write-ahead by replay). Two schedulers at once therefore never bind a pod twice:
// the pod subject lets one PodScheduled in (and the fold rejects a second), the bind subject one
// PodBound.
//
// # Leadership
//
// The scheduler runs in the leader only, and writes through the leader term's store.Fenced log:
// each AppendAll is an atomic batch the log refuses whole once a newer term began. Such writes
// fail with events.ErrFenced, which the loop drops quietly (no back-off, no retry): the term's
// context ends with them, and the next leader decides those pods from the log.
//
// # Ordering and concurrency
//
// One loop goroutine owns all bookkeeping; one writer goroutine turns batches into events and
// appends them (pipelined: the PodBounds of a batch go in the same AppendAll as the PodScheduleds
// of the next). The loop copies what it needs out of the projection under short read locks (the
// pending pods, all nodes, the replicas of the owners in the batch) and decides without a lock.
// Pods decided but not yet shown by the projection are assumed onto their nodes (kube-scheduler's
// assume cache), so later pods see the room they took.
//
// # Retrying
//
// A pod that fits nowhere waits out a back-off (1 s doubling to 10 s) and is tried again only
// when some node appeared or improved (became Ready or schedulable, gained capacity, freed
// requests because pods terminated), or after RetryUnschedulableAfter without any such change.
// Without pending work the loop sleeps until the projection changes, with at least MinInterval
// between passes, so a storm of unrelated events costs a bounded number of passes.
//
// # What PodScheduled says
//
// Score is the winner's score (0..200); Feasible is how many feasible nodes the search found and
// Nodes how many nodes it looked at to find them (all of them when the cluster is small).
// StateSeq is the projection's sequence when the batch was decided: with the decisions between
// it and this one (assumed), it is everything the decision saw, so Verify and ExplainDecision
// (verify.go) can make it again. PodUnschedulable also names the nodes behind each reason
// (nodeReasons: ranges of positions in the nodes sorted by name; a full pass over the nodes,
// done only when the message changes and the event is written).
package scheduling
