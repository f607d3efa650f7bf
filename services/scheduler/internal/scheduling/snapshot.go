package scheduling

import (
	"maps"
	"slices"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// podInfo is what deciding needs to know about a pending pod, copied out of the projection so
// that deciding holds no lock.
type podInfo struct {
	key     state.Key
	uid     string
	created uint64
	// start is where the pod's search begins among the nodes (modulo their number): a hash of
	// its UID, so the decision depends on the state alone.
	start uint32
	// seq is the last sequence on the pod's subject when the pod was copied: PodScheduled is
	// appended only if nothing happened to the pod since.
	seq              uint64
	milliCPU, memory int64
	// extra is what the pod requests beyond CPU and memory; nil for most pods.
	extra       *events.ExtraResources
	selector    map[string]string
	tolerations []events.Toleration
	owner       string
	// unschedulable is the message of the PodScheduled=False condition the log holds, if any.
	unschedulable string
	// pod is the Kubernetes-shaped pod PodBound carries.
	pod events.Pod
	// cause is the pod's last event: what PodScheduled, PodUnschedulable or a gap's PodBound
	// react to.
	cause events.Cause
}

// newPodInfo copies p. Maps and slices are shared, not copied: the fold replaces a pod's
// metadata and spec fields but never writes into the maps and slices PodCreated brought, so they
// stay valid without the lock. Status is left out of the copy because the fold does write into
// its conditions, and the node does not need it.
func newPodInfo(st *state.State, p *state.Pod) podInfo {
	pi := podInfo{
		key:         p.Key(),
		uid:         p.Metadata.UID,
		start:       searchStart(p.Metadata.UID),
		created:     p.Created,
		seq:         st.SubjectSeq(events.ObjectSubject(events.KindPod, p.Metadata.Namespace, p.Metadata.Name)),
		milliCPU:    p.MilliCPU,
		memory:      p.Memory,
		extra:       p.Extra,
		selector:    p.Spec.NodeSelector,
		tolerations: p.Spec.Tolerations,
		owner:       p.OwnerUID,
		cause:       p.Cause,
		pod: events.Pod{
			TypeMeta: p.TypeMeta,
			Metadata: p.Metadata,
			Spec:     p.Spec,
			Status:   events.PodStatus{Phase: events.PodPending},
		},
	}
	for _, c := range p.Status.Conditions {
		if c.Type == "PodScheduled" && c.Status == "False" {
			pi.unschedulable = c.Message
		}
	}
	return pi
}

// searchStart hashes a pod's UID (FNV-1a) to the start of its search among the nodes.
func searchStart(uid string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(uid); i++ {
		h ^= uint32(uid[i])
		h *= 16777619
	}
	return h
}

// nodeInfo is one node as a pass sees it: the projection's view plus the pods this scheduler
// has decided onto it that the projection does not show yet.
type nodeInfo struct {
	name          string
	ready         bool
	unschedulable bool
	// labels and taints are shared with the state: the fold replaces them on re-registration,
	// never writes into them.
	labels                        map[string]string
	taints                        []events.Taint
	milliCPU, memory              int64
	maxPods                       int32
	requestedCPU, requestedMemory int64
	podCount                      int
	// ephemeral and extended are what the node offers beyond CPU and memory, requested* what
	// is asked of them. The maps are shared with the state (which replaces them, never writes
	// into them) until an assumption adds to requestedExtended: it copies first (ownExtended).
	ephemeral, requestedEphemeral int64
	extended, requestedExtended   map[string]int64
	ownExtended                   bool
}

func newNodeInfo(n *state.Node) nodeInfo {
	return nodeInfo{
		name:            n.Metadata.Name,
		ready:           n.Ready,
		unschedulable:   n.Spec.Unschedulable,
		labels:          n.Metadata.Labels,
		taints:          n.Spec.Taints,
		milliCPU:        n.MilliCPU,
		memory:          n.Memory,
		maxPods:         n.MaxPods,
		requestedCPU:    n.RequestedCPU,
		requestedMemory: n.RequestedMemory,
		podCount:        n.PodCount,

		ephemeral:          n.EphemeralStorage,
		requestedEphemeral: n.RequestedEphemeralStorage,
		extended:           n.Extended,
		requestedExtended:  n.RequestedExtended,
	}
}

// take counts a pod's requests on the node: a decision of this pass, or an assumption.
func (n *nodeInfo) take(milliCPU, memory int64, extra *events.ExtraResources) {
	n.requestedCPU += milliCPU
	n.requestedMemory += memory
	n.podCount++
	if extra == nil {
		return
	}
	n.requestedEphemeral += extra.EphemeralStorage
	if len(extra.Extended) > 0 {
		if !n.ownExtended {
			n.requestedExtended, n.ownExtended = maps.Clone(n.requestedExtended), true
			if n.requestedExtended == nil {
				n.requestedExtended = map[string]int64{}
			}
		}
		for k, v := range extra.Extended {
			n.requestedExtended[k] += v
		}
	}
}

// improvedOver reports whether a pod that did not fit on old might fit on n: the node became
// Ready or schedulable, gained capacity, freed requests, or changed labels or taints.
func (n *nodeInfo) improvedOver(old *nodeInfo) bool {
	return (n.ready && !old.ready) ||
		(!n.unschedulable && old.unschedulable) ||
		n.milliCPU > old.milliCPU || n.memory > old.memory || n.maxPods > old.maxPods ||
		n.requestedCPU < old.requestedCPU || n.requestedMemory < old.requestedMemory || n.podCount < old.podCount ||
		n.ephemeral > old.ephemeral || n.requestedEphemeral < old.requestedEphemeral ||
		!maps.Equal(n.extended, old.extended) || !maps.Equal(n.requestedExtended, old.requestedExtended) ||
		!maps.Equal(n.labels, old.labels) || !slices.Equal(n.taints, old.taints)
}

// assumption is a pod this scheduler placed whose PodScheduled the projection has not applied
// yet (kube-scheduler's assume cache): its requests count on the node, so the next pod of the
// same batch, or of the next, does not take the same room.
type assumption struct {
	node             string
	milliCPU, memory int64
	extra            *events.ExtraResources
	owner            string
}

// nodeSet is the pass's copy of all nodes, in name order so that searching them is
// deterministic.
type nodeSet struct {
	nodes []nodeInfo
	index map[string]int
	// base is the projection's view at the previous snapshot, before assumptions, to notice
	// nodes that got better.
	base map[string]nodeInfo
}

// digest is PodUnschedulable.NodeSet of the nodes.
func (ns *nodeSet) digest() string {
	names := make([]string, len(ns.nodes))
	for i := range ns.nodes {
		names[i] = ns.nodes[i].name
	}
	return events.NodeSetDigest(names)
}

// snapshot copies the nodes out of st and adds the assumptions the projection does not show
// yet; assumptions it does show (or whose pod is gone) are dropped. It reports whether any node
// appeared or improved since the previous snapshot. Called under the projection's read lock:
// O(nodes + assumptions) map lookups and copies, no allocation in the steady state.
func (ns *nodeSet) snapshot(st *state.State, assumed map[state.Key]assumption) (improved bool) {
	if ns.index == nil {
		ns.index = map[string]int{}
		ns.base = map[string]nodeInfo{}
	}
	same := len(st.Nodes) == len(ns.nodes)
	if same {
		for i := range ns.nodes {
			n, ok := st.Nodes[ns.nodes[i].name]
			if !ok {
				same = false
				break
			}
			ns.nodes[i] = newNodeInfo(n)
		}
	}
	if !same {
		ns.nodes = ns.nodes[:0]
		for _, n := range st.Nodes {
			ns.nodes = append(ns.nodes, newNodeInfo(n))
		}
		slices.SortFunc(ns.nodes, func(a, b nodeInfo) int {
			if a.name < b.name {
				return -1
			}
			if a.name > b.name {
				return 1
			}
			return 0
		})
		clear(ns.index)
		for i := range ns.nodes {
			ns.index[ns.nodes[i].name] = i
		}
	}
	for i := range ns.nodes {
		n := &ns.nodes[i]
		old, ok := ns.base[n.name]
		if !ok || n.improvedOver(&old) {
			improved = true
		}
		ns.base[n.name] = *n
	}
	if len(ns.base) > len(ns.nodes) {
		for name := range ns.base {
			if _, ok := ns.index[name]; !ok {
				delete(ns.base, name)
			}
		}
	}
	for k, a := range assumed {
		p := st.Pods[k]
		if p == nil || p.Spec.NodeName != "" {
			delete(assumed, k)
			continue
		}
		if i, ok := ns.index[a.node]; ok {
			ns.nodes[i].take(a.milliCPU, a.memory, a.extra)
		}
	}
	return improved
}
