package scheduling

import (
	"fmt"

	"sort"
	"strings"
	"time"

	"skiff.dev/events"
)

// Defaults of how many feasible nodes to find before picking the best, as kube-scheduler's
// percentageOfNodesToScore: look at every node in small clusters; in large ones, stop after a
// share that shrinks as the cluster grows (50% minus 1% per 125 nodes, at least 5%), and never
// after fewer than minFeasibleNodes.
const (
	minFeasibleNodes    = 100
	basePercentToScore  = 50
	minPercentToScore   = 5
	nodesPerPercentStep = 125
)

// nodesToFind is how many feasible nodes placement looks for before it stops.
func nodesToFind(all, percent int) int {
	if all <= minFeasibleNodes {
		return all
	}
	if percent <= 0 {
		percent = max(basePercentToScore-all/nodesPerPercentStep, minPercentToScore)
	}
	if percent >= 100 {
		return all
	}
	return max(all*percent/100, minFeasibleNodes)
}

// placement is where one pod goes, or why it goes nowhere.
type placement struct {
	node      int // index into the node set; -1: nowhere
	score     int64
	feasible  int // feasible nodes found
	evaluated int // nodes looked at
	// why counts the reasons nodes were rejected; set only when node is -1, when every node was
	// looked at.
	why map[reason]int
	// filterTime and scoreTime add up the time spent in the feasibility checks and in scoring
	// of one node in timingSample, measured only when the placer is timed (tracing is on): they
	// tell how the pod's time divides between the two, not how long it took.
	filterTime, scoreTime time.Duration
}

// placer picks nodes for pods over one node set. Each pod's search starts at a node chosen by
// a hash of its UID, so pods look at different nodes first (without it, a limited search would
// always favour the first nodes in name order; Nomad's and kube-scheduler's rotation serve the
// same purpose), and the choice depends only on the pod and the node set: the same state gives
// the same decision, which is what `skiff explain --replay` and `skiff events verify` rely on.
type placer struct {
	chain   []checker
	percent int
	why     []reason // scratch
	// timed measures filterTime and scoreTime; off, place reads no clock.
	timed bool
	// seen, if set, hears of every node looked at: why it was rejected, or its two score parts
	// (a re-run that explains; nil in the loop, which skips the spread of nodes that cannot win).
	seen func(idx int, why []reason, leastAllocated, spread int64)
}

// timingSample is how many nodes place looks at per node it times, and maxTimedNodes how many
// it times at most for one pod: reading the clock around every check cost 15 % of a traced
// run's CPU (two reads per node, hundreds of nodes per pod), and one node in 16 still cost
// 1-2 % (some 30 timed nodes a pod at 1,000 nodes). Eight nodes tell the share of filter and
// score well enough to lay their spans out; the pod's own time is measured whole.
const (
	timingSample  = 16
	maxTimedNodes = 8
)

// place looks at nodes from the pod's start (podInfo.start) until it has found enough feasible
// ones (or looked at all), and returns the best by score; ties go to the node looked at first.
// Nothing but p, nodes and sameOwner decides: no clock, no map order, no earlier pod.
// sameOwner[i] is how many pods of p's owner node i already has (nil: none anywhere).
func (pl *placer) place(p *podInfo, nodes []nodeInfo, sameOwner map[int]int) placement {
	all := len(nodes)
	if all == 0 {
		return placement{node: -1, why: map[reason]int{}}
	}
	want := nodesToFind(all, pl.percent)
	best := placement{node: -1}
	var counts [numReasonCodes]int
	var taints map[reason]int
	start := int(p.start % uint32(all))
	i := 0
	// The timed nodes read only the monotonic clock (time.Since of base, one read; time.Now
	// reads the wall clock too).
	var base time.Time
	var t0 time.Duration
	timed := 0
	for ; i < all && best.feasible < want; i++ {
		idx := (start + i) % all
		n := &nodes[idx]
		timeIt := pl.timed && i%timingSample == 0 && timed < maxTimedNodes
		if timeIt {
			if timed == 0 {
				base = time.Now()
			}
			timed++
			t0 = time.Since(base)
		}
		pl.why = feasible(pl.chain, p, n, pl.why)
		if timeIt {
			t1 := time.Since(base)
			best.filterTime += t1 - t0
			t0 = t1
		}
		if pl.seen != nil {
			if len(pl.why) > 0 {
				pl.seen(idx, pl.why, 0, 0)
			} else {
				pl.seen(idx, nil, leastAllocated(p, n), spread(p, sameOwner[idx]))
			}
		}
		if len(pl.why) > 0 {
			for _, r := range pl.why {
				if r.hasDetail() {
					if taints == nil {
						taints = map[reason]int{}
					}
					taints[r]++
				} else {
					counts[r.code]++
				}
			}
			continue
		}
		best.feasible++
		// The spread part is at most maxScore: a node that cannot win even with it needs no
		// look-up of its replica count (most nodes, once a good one is found).
		la := leastAllocated(p, n)
		if best.node < 0 || la+maxScore > best.score {
			if s := la + spread(p, sameOwner[idx]); best.node < 0 || s > best.score {
				best.node, best.score = idx, s
			}
		}
		if timeIt {
			best.scoreTime += time.Since(base) - t0
		}
	}
	best.evaluated = i
	if best.node >= 0 {
		return best
	}
	best.why = taints
	if best.why == nil {
		best.why = map[reason]int{}
	}
	for code, c := range counts {
		if c > 0 {
			best.why[reason{code: reasonCode(code)}] = c
		}
	}
	return best
}

// nodeReasons checks p against every node and names the nodes behind each reason, as
// PodUnschedulable.NodeReasons: reason text → ranges of positions in nodes (sorted by name).
// A full pass, run only for a PodUnschedulable that is written (its message changed).
func nodeReasons(chain []checker, p *podInfo, nodes []nodeInfo) map[string]string {
	positions := map[string][]int{}
	var why []reason
	for i := range nodes {
		why = feasible(chain, p, &nodes[i], why)
		for _, r := range why {
			text := r.String()
			if ps := positions[text]; len(ps) == 0 || ps[len(ps)-1] != i {
				positions[text] = append(ps, i)
			}
		}
	}
	out := make(map[string]string, len(positions))
	for text, ps := range positions {
		out[text] = events.NodePositions(ps, len(nodes))
	}
	return out
}

// unschedulableMessage says why a pod fits nowhere, in kube-scheduler's words and order: the
// reason counts formatted as "count reason" and sorted as strings, e.g.
// "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 Insufficient memory."
// It also returns the counts keyed by reason text, for PodUnschedulable.Reasons.
func unschedulableMessage(nodes int, why map[reason]int) (string, map[string]int) {
	if nodes == 0 {
		return "no nodes available to schedule pods", nil
	}
	reasons := make(map[string]int, len(why))
	for r, c := range why {
		reasons[r.String()] += c
	}
	parts := make([]string, 0, len(reasons))
	for text, c := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", c, text))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available", nodes)
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ") + "."
	}
	return msg, reasons
}
