package scheduling

// maxScore bounds each part of a node's score, as kube-scheduler's MaxNodeScore does.
const maxScore = 100

// leastAllocated scores how much room the node keeps once the pod is on it: the mean of the
// free CPU and free memory fractions, 0..maxScore. Preferring the emptiest node spreads load, so
// one node's failure takes down as little as possible and a later large pod still finds room.
// A resource with no capacity counts as full.
func leastAllocated(p *podInfo, n *nodeInfo) int64 {
	return (freeFraction(n.milliCPU, n.requestedCPU+p.milliCPU) + freeFraction(n.memory, n.requestedMemory+p.memory)) / 2
}

func freeFraction(capacity, requested int64) int64 {
	if capacity <= 0 || requested >= capacity {
		return 0
	}
	if requested < 0 {
		requested = 0
	}
	return (capacity - requested) * maxScore / capacity
}

// spread scores how few replicas of the pod's owner the node already runs: maxScore for none,
// then maxScore/(1+count). Replicas of one Deployment on different nodes survive the loss of a
// node; the curve is steep at first (the second replica on a node costs half the score) and flat
// later, so with enough nodes replicas never pile up, and with few nodes resources still matter.
// A pod without an owner has nothing to spread from: every node gets maxScore.
func spread(p *podInfo, sameOwner int) int64 {
	if p.owner == "" {
		return maxScore
	}
	return maxScore / int64(1+sameOwner)
}

// score is the node's rank for the pod: least allocated plus spread, 0..2*maxScore. Equal
// weights: spreading one owner's replicas matters as much as balancing load.
func score(p *podInfo, n *nodeInfo, sameOwner int) int64 {
	return leastAllocated(p, n) + spread(p, sameOwner)
}
