package scheduling

import (
	"fmt"

	"skiff.dev/events"
)

// reasonCode names one kind of rejection. The words are kube-scheduler's, so "why is my pod
// pending" reads the same as on Kubernetes.
type reasonCode uint8

const (
	reasonNotReady reasonCode = iota
	reasonUnschedulable
	reasonUntoleratedTaint
	reasonNodeSelector
	reasonTooManyPods
	reasonInsufficientCPU
	reasonInsufficientMemory
	reasonInsufficientResource // ephemeral storage or an extended resource, named by key
	numReasonCodes
)

var reasonText = [numReasonCodes]string{
	reasonNotReady:           "node(s) were not ready",
	reasonUnschedulable:      "node(s) were unschedulable",
	reasonUntoleratedTaint:   "node(s) had untolerated taint", // formatted with the taint by String
	reasonNodeSelector:       "node(s) didn't match Pod's node affinity/selector",
	reasonTooManyPods:        "Too many pods",
	reasonInsufficientCPU:    "Insufficient cpu",
	reasonInsufficientMemory: "Insufficient memory",
}

// hasDetail reports whether a reason's words depend on its key (and value), so reasons with the
// same code are counted apart.
func (r reason) hasDetail() bool {
	return r.code == reasonUntoleratedTaint || r.code == reasonInsufficientResource
}

// reason is why one node cannot take one pod. It is a comparable value, not an error and not a
// formatted string: the hot path records it without allocating, and only a pod that fits nowhere
// pays for formatting the message.
type reason struct {
	code reasonCode
	// key and value of the untolerated taint, for reasonUntoleratedTaint; key is the
	// resource for reasonInsufficientResource.
	key, value string
}

// String is the reason in kube-scheduler's words.
func (r reason) String() string {
	switch r.code {
	case reasonUntoleratedTaint:
		return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", r.key, r.value)
	case reasonInsufficientResource:
		return "Insufficient " + r.key
	}
	return reasonText[r.code]
}

// A checker decides one thing about whether a node can take a pod. It appends why not to why
// and returns it; a checker that appends nothing accepts the node. Checkers are pure: they read
// the pod and the node (with what this pass has already assumed onto it) and nothing else.
type checker interface {
	check(p *podInfo, n *nodeInfo, why []reason) []reason
}

// defaultCheckers is the feasibility chain. A node is rejected by the first checker that objects,
// so the order decides which reason a user reads, and it follows kube-scheduler's filter plugins
// (NodeUnschedulable, TaintToleration, NodeAffinity, NodeResourcesFit) so the counts in
// "0/N nodes are available: ..." match what Kubernetes would say for the same cluster:
//
//  1. ready: a node whose lease lapsed runs nothing new, whatever else is true of it; this is the
//     most basic fact about a node and costs one comparison.
//  2. cordon: an operator said "no new pods here" (spec.unschedulable); like Ready, it is about the
//     node alone and overrides everything about the pod.
//  3. taints: the node's owner repels pods that do not tolerate it; like the two above it is a
//     statement about who may use the node, not about room on it, so it comes before room.
//  4. nodeSelector: the pod's own demand on the node's labels.
//  5. resources: pod slots, CPU and memory. Last because it is the only reason that changes as
//     pods come and go, and it reports every resource that is short (as NodeResourcesFit does),
//     so a node can count towards both "Insufficient cpu" and "Insufficient memory".
//
// Every checker is a few comparisons; the order is about the message, not about speed.
func defaultCheckers() []checker {
	return []checker{
		readyChecker{},
		cordonChecker{},
		taintChecker{},
		selectorChecker{},
		resourceChecker{},
	}
}

// feasible runs the chain on one node and returns the reasons it was rejected (none: feasible).
func feasible(chain []checker, p *podInfo, n *nodeInfo, why []reason) []reason {
	why = why[:0]
	for _, c := range chain {
		if why = c.check(p, n, why); len(why) > 0 {
			return why
		}
	}
	return why
}

// readyChecker rejects nodes that are not Ready.
type readyChecker struct{}

func (readyChecker) check(_ *podInfo, n *nodeInfo, why []reason) []reason {
	if !n.ready {
		why = append(why, reason{code: reasonNotReady})
	}
	return why
}

// cordonChecker rejects cordoned nodes (spec.unschedulable).
type cordonChecker struct{}

func (cordonChecker) check(_ *podInfo, n *nodeInfo, why []reason) []reason {
	if n.unschedulable {
		why = append(why, reason{code: reasonUnschedulable})
	}
	return why
}

// taintChecker rejects nodes with a NoSchedule or NoExecute taint the pod does not tolerate, and
// names the first such taint, as kube-scheduler does. PreferNoSchedule is a preference, not a
// rule: it never makes a node infeasible.
type taintChecker struct{}

func (taintChecker) check(p *podInfo, n *nodeInfo, why []reason) []reason {
	for _, t := range n.taints {
		if t.Effect != "NoSchedule" && t.Effect != "NoExecute" {
			continue
		}
		if !tolerated(p.tolerations, t) {
			return append(why, reason{code: reasonUntoleratedTaint, key: t.Key, value: t.Value})
		}
	}
	return why
}

func tolerated(tols []events.Toleration, t events.Taint) bool {
	for _, tol := range tols {
		if tol.Tolerates(t) {
			return true
		}
	}
	return false
}

// selectorChecker rejects nodes whose labels lack any key=value of the pod's nodeSelector. An
// empty selector accepts every node (unlike a Service's empty selector, which selects nothing).
type selectorChecker struct{}

func (selectorChecker) check(p *podInfo, n *nodeInfo, why []reason) []reason {
	if len(p.selector) == 0 {
		return why // most pods: skip setting up a map iteration for every node
	}
	for k, v := range p.selector {
		if lv, ok := n.labels[k]; !ok || lv != v {
			return append(why, reason{code: reasonNodeSelector})
		}
	}
	return why
}

// resourceChecker rejects nodes without a free pod slot, or without the CPU, memory, ephemeral
// storage or extended resources the pod requests. A pod that requests none of a resource is not
// held back by it, even on an overcommitted node (as in kube-scheduler); a node that does not
// advertise an extended resource has none of it.
type resourceChecker struct{}

func (resourceChecker) check(p *podInfo, n *nodeInfo, why []reason) []reason {
	if n.podCount >= int(n.maxPods) {
		why = append(why, reason{code: reasonTooManyPods})
	}
	if p.milliCPU > 0 && n.requestedCPU+p.milliCPU > n.milliCPU {
		why = append(why, reason{code: reasonInsufficientCPU})
	}
	if p.memory > 0 && n.requestedMemory+p.memory > n.memory {
		why = append(why, reason{code: reasonInsufficientMemory})
	}
	if x := p.extra; x != nil {
		if x.EphemeralStorage > 0 && n.requestedEphemeral+x.EphemeralStorage > n.ephemeral {
			why = append(why, reason{code: reasonInsufficientResource, key: events.ResourceEphemeralStorage})
		}
		for name, want := range x.Extended {
			if want > 0 && n.requestedExtended[name]+want > n.extended[name] {
				why = append(why, reason{code: reasonInsufficientResource, key: name})
			}
		}
	}
	return why
}
