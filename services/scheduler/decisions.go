package scheduler

import "skiff.dev/services/scheduler/internal/scheduling"

// Recorded scheduling decisions made again from the log, for `skiff explain` and `skiff events
// verify`: the scheduler's decisions depend on the log's state alone (see package scheduling,
// "Deciding"), so the same code run on the fold a decision saw must pick the same node.
type (
	// Recorded is a PodScheduled as the log holds it.
	Recorded = scheduling.Recorded
	// Rerun is a decision made again: the node, its score in parts, the top candidates and
	// the nodes rejected by reason.
	Rerun = scheduling.Rerun
	// Candidate is a feasible node and its score, in parts.
	Candidate = scheduling.Candidate
	// RerunOptions tune a re-run as the scheduler was configured.
	RerunOptions = scheduling.RerunOptions
	// Verdict is one recorded decision made again.
	Verdict = scheduling.Verdict
)

var (
	// Verify re-runs every decision in the log, in order.
	Verify = scheduling.Verify
	// Decisions lists the decisions in the log.
	Decisions = scheduling.Decisions
	// ExplainDecision re-runs one decision.
	ExplainDecision = scheduling.ExplainDecision
	// RerunDecision decides a pod on a given fold with given decisions assumed.
	RerunDecision = scheduling.RerunDecision
	// ErrNotRecorded marks a decision recorded without its state's sequence.
	ErrNotRecorded = scheduling.ErrNotRecorded
)
