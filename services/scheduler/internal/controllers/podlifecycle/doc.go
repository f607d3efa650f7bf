// Package podlifecycle takes pods through deletion, and evicts the pods of nodes that are gone or
// have been NotReady for too long.
//
// # Graceful deletion
//
// A deletion starts with PodDeletionRequested (from a user, or from the Deployment controller).
// Then, one step per pass, each conditional on its subject:
//
//   - never scheduled: PodDeleted at once.
//   - scheduled but not bound yet: PodStopRequested on the (empty) bind subject, conditional on it
//     being empty, then PodDeleted. The stop request claims the subject, so a scheduler that
//     binds late gets a conflict instead of handing the node a deleted pod; a node agent that
//     sees a stop request without a binding has nothing to do.
//   - bound: first wait until no Endpoints lists the pod's IP (the endpoints controller drops
//     terminating pods), so traffic drains before the containers get SIGTERM; then
//     PodStopRequested{Grace} on the bind subject; the node stops the pod and reports
//     PodTerminated; then PodDeleted. If the endpoints still list the pod DrainTimeout after the
//     deletion was requested (the endpoints controller is stuck), the stop goes out anyway.
//   - already terminated by its node: PodDeleted.
//
// # Eviction
//
// A pod assigned to a node that was deleted, or that has been NotReady for longer than
// EvictionTimeout (default 5 min, Kubernetes' default tolerationSeconds for the not-ready and
// unreachable taints), is force-deleted so its Deployment replaces it: PodStopRequested with
// grace 0 on its bind subject (if bound), so the agent stops it should the node come back, then
// PodDeleted without waiting for the node. A pod may shorten or lengthen its own timeout as in
// Kubernetes, with a toleration of the NoExecute taint node.kubernetes.io/unreachable (NotReady
// because the lease ran out) or node.kubernetes.io/not-ready (any other reason): with
// tolerationSeconds it waits that long, without it forever. The NotReady time is the node's
// Ready condition's last transition, as written by the node lifecycle controller.
//
// A pod on a NotReady node that is still running is gone from Endpoints already (the endpoints
// controller leaves out pods of NotReady nodes), so eviction does not wait for draining.
//
// # Deleted namespaces
//
// Admission refuses to delete a namespace that still holds objects, so a pod outside any
// namespace is the loser of a race (created while its namespace was deleted). It is deleted
// gracefully (PodDeletionRequested with its own grace period), like everything else.
//
// # Concurrency
//
// Every step is conditional on the subject it writes and re-decided from the projection after a
// conflict; two controllers running at once take the same steps and one of them gets conflicts.
package podlifecycle
