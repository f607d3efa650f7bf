package scheduling

import (
	"cmp"
	"fmt"
	"slices"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// Recorded is a PodScheduled as the log holds it: what Rerun needs of the decisions the
// scheduler had made but its state did not show yet.
type Recorded struct {
	Seq      uint64
	Pod      state.Key
	UID      string
	Node     string
	StateSeq uint64
}

// Candidate is a feasible node and its score, in parts.
type Candidate struct {
	Node           string `json:"node"`
	Score          int64  `json:"score"`
	LeastAllocated int64  `json:"leastAllocated"`
	Spread         int64  `json:"spread"`
}

// Rerun is a decision made again from the log.
type Rerun struct {
	// Node is where the pod goes; "" when no node fits (Message says why).
	Node    string `json:"node,omitempty"`
	Score   int64  `json:"score"`
	Message string `json:"message,omitempty"`
	// Nodes is the cluster's size, Evaluated how many nodes the search looked at and Feasible
	// how many of those fit.
	Nodes     int `json:"nodes"`
	Evaluated int `json:"evaluated"`
	Feasible  int `json:"feasible"`
	// Candidates are the feasible nodes looked at, best first (the winner first: ties go to
	// the node looked at first), at most the top asked for.
	Candidates []Candidate `json:"candidates,omitempty"`
	// Rejected names the nodes looked at that did not fit, by reason.
	Rejected map[string][]string `json:"rejected,omitempty"`
	// Assumed is how many earlier decisions were counted on their nodes.
	Assumed int `json:"assumed"`
}

// RerunOptions tune a re-run as the scheduler was configured.
type RerunOptions struct {
	// PercentageOfNodesToScore: the scheduler's setting (Config); 0 is its default.
	PercentageOfNodesToScore int
	// Top is how many candidates to keep; default 5.
	Top int
}

// RerunDecision decides the pod key again as the scheduler's loop did: st is the fold at the
// decision's StateSeq, and assumed are the scheduler's own decisions after StateSeq and before
// the one re-run (PodScheduled events in log order), which its loop had counted on their nodes
// (the assume cache); those whose pods st already shows bound, or lacks, are dropped as the loop
// drops them. The same code places the pod, with a hook that hears of every node looked at.
func RerunDecision(st *state.State, key state.Key, assumed []Recorded, opts RerunOptions) (Rerun, error) {
	r := newRerunner(st, opts)
	for _, a := range assumed {
		r.assume(a)
	}
	return r.rerun(key)
}

// rerunner re-runs decisions on one fold, with assumptions added as the log goes on: the nodes
// are copied once, and each assumption adds to them, as the loop's assume cache does.
type rerunner struct {
	st      *state.State
	opts    RerunOptions
	ns      nodeSet
	assumed map[state.Key]assumption
	// owners are the replica counts per node index of the owners looked at so far, with the
	// assumptions counted.
	owners map[string]map[int]int
}

func newRerunner(st *state.State, opts RerunOptions) *rerunner {
	if opts.Top <= 0 {
		opts.Top = 5
	}
	r := &rerunner{st: st, opts: opts, assumed: map[state.Key]assumption{}, owners: map[string]map[int]int{}}
	r.ns.snapshot(st, r.assumed)
	return r
}

// assume counts a decision the fold does not show on its node, as nodeSet.snapshot would.
func (r *rerunner) assume(rec Recorded) {
	p := r.st.Pods[rec.Pod]
	if p == nil || p.Metadata.UID != rec.UID || p.Spec.NodeName != "" {
		return
	}
	if _, dup := r.assumed[rec.Pod]; dup {
		return
	}
	a := assumption{node: rec.Node, milliCPU: p.MilliCPU, memory: p.Memory, extra: p.Extra, owner: p.OwnerUID}
	r.assumed[rec.Pod] = a
	idx, ok := r.ns.index[a.node]
	if !ok {
		return
	}
	r.ns.nodes[idx].take(a.milliCPU, a.memory, a.extra)
	if counts, ok := r.owners[a.owner]; ok && a.owner != "" {
		counts[idx]++
	}
}

// ownerCounts is how many replicas of owner each node has, bound or assumed.
func (r *rerunner) ownerCounts(owner string) map[int]int {
	if owner == "" {
		return nil
	}
	if counts, ok := r.owners[owner]; ok {
		return counts
	}
	counts := map[int]int{}
	for _, op := range r.st.PodsOwnedBy(owner) {
		if op.Spec.NodeName == "" || op.Terminated {
			continue
		}
		if idx, ok := r.ns.index[op.Spec.NodeName]; ok {
			counts[idx]++
		}
	}
	for _, a := range r.assumed {
		if a.owner == owner {
			if idx, ok := r.ns.index[a.node]; ok {
				counts[idx]++
			}
		}
	}
	r.owners[owner] = counts
	return counts
}

func (r *rerunner) rerun(key state.Key) (Rerun, error) {
	p := r.st.Pods[key]
	if p == nil {
		return Rerun{}, fmt.Errorf("pod %s is not in the state at sequence %d: %w", key, r.st.Seq, events.ErrNotFound)
	}
	if p.Spec.NodeName != "" {
		return Rerun{}, fmt.Errorf("pod %s is already on node %s at sequence %d: nothing to decide: %w", key, p.Spec.NodeName, r.st.Seq, events.ErrFailedPrecondition)
	}
	pi := newPodInfo(r.st, p)
	ns := &r.ns
	out := Rerun{Nodes: len(ns.nodes), Assumed: len(r.assumed), Rejected: map[string][]string{}}
	pl := placer{chain: defaultCheckers(), percent: r.opts.PercentageOfNodesToScore}
	order := map[string]int{} // when each candidate was looked at, for the ties
	pl.seen = func(idx int, why []reason, la, sp int64) {
		name := ns.nodes[idx].name
		if len(why) > 0 {
			for _, rs := range why {
				out.Rejected[rs.String()] = append(out.Rejected[rs.String()], name)
			}
			return
		}
		order[name] = len(order)
		out.Candidates = append(out.Candidates, Candidate{Node: name, Score: la + sp, LeastAllocated: la, Spread: sp})
	}
	res := pl.place(&pi, ns.nodes, r.ownerCounts(pi.owner))
	out.Evaluated, out.Feasible, out.Score = res.evaluated, res.feasible, res.score
	if res.node >= 0 {
		out.Node = ns.nodes[res.node].name
	} else {
		out.Message, _ = unschedulableMessage(len(ns.nodes), res.why)
	}
	slices.SortStableFunc(out.Candidates, func(a, b Candidate) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(order[a.Node], order[b.Node])
	})
	out.Candidates = out.Candidates[:min(len(out.Candidates), r.opts.Top)]
	return out, nil
}
