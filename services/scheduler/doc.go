// Package scheduler is Skiff's control plane service: admission (commands → events), queries
// (`skiff get`), and, in the leader replica only, the control loops — scheduling, Deployments,
// pod deletion, endpoints and node lifecycle.
//
// # Data flow
//
//	skiff.cmd.*  ──► internal/admission ──► log (conditional appends)
//	skiff.q.get  ──► internal/query     ◄── projection (events/live, whole log)
//	log ──► projection ──► leader-only loops: internal/scheduling, internal/controllers
//	                                             └──► log (conditional appends)
//
// # Replicas
//
// Any number of replicas may run. Each follows the whole log into its own projection and answers
// commands and queries (NATS queue group); admission's writes are conditional on the sequence
// their writer saw. The control loops run only in the replica holding the leader key, in a term
// recorded in the log (LeaderElected), and their writes are fenced on it: the log takes them only
// while no newer term exists (package leader), so a replica that lost the key without noticing
// writes nothing, and steps down at its first refused write.
package scheduler
