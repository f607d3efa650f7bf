// Package controllers runs the scheduler's control loops together, in the leader replica:
//
//   - deployments: Deployment → pods, rollouts, rollout status, garbage collection of pods of
//     deleted Deployments.
//   - podlifecycle: a pod's way out (drain from Endpoints, stop on the node, PodDeleted), and
//     eviction from deleted or long-NotReady nodes.
//   - endpoints: Service → ready pod addresses.
//   - nodelifecycle: pod CIDRs for new nodes; lease renewals → NodeNotReady / NodeReady.
//
// Each lives in its own package with its own doc; package reconcile is the loop they share.
//
// # Ordering and concurrency
//
// The controllers run concurrently and never talk to each other: each reads the same projection
// and writes conditional appends, so they coordinate through the log only. Where order matters it
// is expressed as a condition on the state (the pod lifecycle controller stops a pod only once no
// Endpoints lists it; Recreate creates new pods only once the old ones are gone).
//
// Each controller writes through a log of its own, the leader term's store.Fenced writer for it
// (Config.LogFor): a controller still running in a replica that is no longer the leader cannot
// write, since the log refuses the batches of any term but the newest.
package controllers
