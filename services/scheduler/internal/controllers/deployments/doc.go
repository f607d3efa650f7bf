// Package deployments is the Deployment controller: it keeps spec.replicas pods of every
// Deployment running, rolls a changed pod template out under the RollingUpdate bounds (or
// Recreate), records the rollout's progress, and deletes the pods of deleted Deployments.
//
// # Ownership and names
//
// A Deployment owns its pods through an OwnerReference {Kind: Deployment, UID, Controller: true};
// the projection indexes pods by it (state.PodsOwnedBy). There are no ReplicaSets: a pod carries
// the label pod-template-hash, a 10-character hash of the template it was made from, and pods
// whose hash differs from the current template's are "old". Pod names are
// <deployment>-<hash>-<5 random characters>. Pods are not adopted by selector.
//
// # Counting
//
// Pods being deleted are not counted (as in Kubernetes): a deleted pod is replaced at once, and
// maxSurge bounds the pods that are not terminating. Pods that will not run again (Failed,
// Succeeded, or stopped by their node) are replaced too: the controller requests their deletion
// and creates a new pod in the same pass. "Available" means ready; minReadySeconds is not
// supported.
//
// # Writes and ordering
//
// One pass reads one view of the state and writes at most one event per subject: PodCreated for
// new pods (fresh names, so the subject must be empty), PodDeletionRequested for pods to go
// (conditional on the pod's subject), and DeploymentRolloutProgressed when the status changed
// (conditional on the Deployment's subject, so a status computed for an older spec never lands
// after a newer apply). The loop (package reconcile) waits until the projection has applied a
// pass's writes before the next pass, so pods are never created twice from a stale count.
//
// # Leadership
//
// The controller runs in the leader only and writes through the leader term's store.Fenced log
// (package leader): once a newer term has begun, the log refuses its passes whole. So a leader
// that went stale (stopped past its key's TTL, then resumed) cannot create surplus pods from its
// old count, although new pod names never conflict: its PodCreated events are refused with the
// rest of the pass, counted as Result.Fenced, and the loop stops. The new leader decides from a
// projection that holds every write of the old term (it waits for its own LeaderElected).
package deployments
