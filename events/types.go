package events

// Event types, version 1. Each lives on one subject kind; the table in docs/architecture.md lists
// who writes which.

// Namespace events (skiff.ev.namespace._.<name>).
type (
	// NamespaceApplied creates or changes a namespace.
	NamespaceApplied struct {
		Namespace Namespace `json:"namespace"`
	}
	// NamespaceDeleted removes a namespace.
	NamespaceDeleted struct{}
)

// Node events (skiff.ev.node._.<name>).
type (
	// NodeRegistered is written by a node agent when it starts with a capacity, labels or address
	// the log does not have yet.
	NodeRegistered struct {
		Labels   map[string]string `json:"labels,omitempty"`
		Taints   []Taint           `json:"taints,omitempty"`
		Address  string            `json:"address,omitempty"`
		MilliCPU int64             `json:"milliCPU"`
		Memory   int64             `json:"memory"`
		MaxPods  int32             `json:"maxPods"`
		// EphemeralStorage is the node's local storage for pods, in bytes (0: not reported,
		// as by agents from before it was); Extended are the extended resources it advertises
		// ("nvidia.com/gpu": 2).
		EphemeralStorage int64            `json:"ephemeralStorage,omitempty"`
		Extended         map[string]int64 `json:"extended,omitempty"`
	}
	// NodePodCIDRAssigned is the control plane's allocation of a pod CIDR to a node.
	NodePodCIDRAssigned struct {
		PodCIDR string `json:"podCIDR"`
	}
	// NodeReady marks a node Ready: its lease is being renewed.
	NodeReady struct {
		Reason string `json:"reason,omitempty"`
	}
	// NodeNotReady marks a node NotReady: its lease expired.
	NodeNotReady struct {
		Reason  string `json:"reason,omitempty"`
		Message string `json:"message,omitempty"`
	}
	// NodeCordoned keeps new pods off a node.
	NodeCordoned struct{}
	// NodeUncordoned lets pods onto a node again.
	NodeUncordoned struct{}
	// NodeDeleted removes a node from the cluster.
	NodeDeleted struct{}
)

// Pod events (skiff.ev.pod.<ns>.<name>).
type (
	// PodCreated is a new pod, from a user or a controller. Pod carries metadata (with UID and
	// owner) and spec.
	PodCreated struct {
		Pod Pod `json:"pod"`
	}
	// PodScheduled is the scheduler's decision; it is followed by PodBound on the node's subject.
	// Score is the winner's; Feasible how many feasible nodes the search found among the Nodes
	// it looked at.
	PodScheduled struct {
		UID      string `json:"uid"`
		Node     string `json:"node"`
		Score    int64  `json:"score"`
		Feasible int    `json:"feasible"`
		Nodes    int    `json:"nodes"`
		// StateSeq is the sequence the scheduler's state was folded to when it decided. Its
		// own decisions that state did not show yet are the PodScheduled events between
		// StateSeq and this one: the two say exactly what the decision saw, so it can be run
		// again from the log (skiff explain --replay, skiff events verify). 0 in logs from
		// before it was recorded.
		StateSeq uint64 `json:"stateSeq,omitempty"`
	}
	// PodUnschedulable says why no node fits, e.g. "0/3 nodes are available: 2 insufficient
	// memory, 1 node(s) had untolerated taint {dedicated=db}".
	PodUnschedulable struct {
		UID     string         `json:"uid"`
		Message string         `json:"message"`
		Reasons map[string]int `json:"reasons,omitempty"`
		// NodeReasons names the nodes behind each reason: reason → positions in the list of
		// the cluster's nodes sorted by name at StateSeq (a node may have several reasons),
		// as ranges ("0-2,5") or a bitmap ("b:" and base64), whichever is shorter
		// (NodePositions). Bounded by the node count whatever the names: at 5,000 nodes a
		// reason costs at most 836 bytes, and one shared by all is "0-4999".
		NodeReasons map[string]string `json:"nodeReasons,omitempty"`
		// NodeSet is a digest of that sorted list (NodeSetDigest), so a reader can tell that
		// its own fold at StateSeq lists the same nodes.
		NodeSet string `json:"nodeSet,omitempty"`
		// StateSeq: as PodScheduled's.
		StateSeq uint64 `json:"stateSeq,omitempty"`
	}
	// PodDeletionRequested starts a graceful deletion.
	PodDeletionRequested struct {
		UID                string `json:"uid"`
		GracePeriodSeconds int64  `json:"gracePeriodSeconds"`
	}
	// PodDeleted is the end of a pod: nothing of it runs anywhere.
	PodDeleted struct {
		UID string `json:"uid"`
	}
)

// Bind events (skiff.ev.bind.<node>.<ns>.<pod>): a node's work.
type (
	// PodBound hands a pod to a node, with the full spec the node needs.
	PodBound struct {
		Pod Pod `json:"pod"`
	}
	// PodStopRequested asks the node to stop the pod within the grace period.
	PodStopRequested struct {
		UID                string `json:"uid"`
		GracePeriodSeconds int64  `json:"gracePeriodSeconds"`
	}
)

// Status events (skiff.ev.status.<node>.<ns>.<pod>): what a node reports.
type (
	// PodStatusReported is the pod's status as its node sees it.
	PodStatusReported struct {
		UID    string    `json:"uid"`
		Status PodStatus `json:"status"`
	}
	// PodTerminated says the node stopped the pod and released everything it held.
	PodTerminated struct {
		UID string `json:"uid"`
	}
)

// Deployment events (skiff.ev.deployment.<ns>.<name>).
type (
	// DeploymentApplied creates or changes a Deployment; Metadata.Generation counts spec changes.
	DeploymentApplied struct {
		Deployment Deployment `json:"deployment"`
	}
	// DeploymentScaled changes spec.replicas only.
	DeploymentScaled struct {
		Replicas   int32 `json:"replicas"`
		Generation int64 `json:"generation"`
	}
	// DeploymentRolloutProgressed records the controller's view of the rollout.
	DeploymentRolloutProgressed struct {
		Status DeploymentStatus `json:"status"`
	}
	// DeploymentDeleted removes a Deployment; its pods are deleted by the controller.
	DeploymentDeleted struct{}
)

// Service events (skiff.ev.service.<ns>.<name>).
type (
	// ServiceApplied creates or changes a Service; admission has allocated spec.clusterIP.
	ServiceApplied struct {
		Service Service `json:"service"`
	}
	// ServiceDeleted removes a Service.
	ServiceDeleted struct{}
)

// Endpoints events (skiff.ev.endpoints.<ns>.<name>).
type (
	// EndpointsUpdated is the full set of ready addresses behind a Service.
	EndpointsUpdated struct {
		Addresses []EndpointAddress `json:"addresses"`
	}
)

// Leader events (skiff.ev.leader.…): the terms of the control loops' leader, and the fence that
// opens each of its atomic batches. See docs/architecture.md, "Leader terms".
type (
	// LeaderElected starts a term. The replica that won the leader key appends it to TermSubject,
	// conditional on the last sequence it read there, so two replicas never start a term from
	// the same predecessor. Its stream sequence is the term's fence: a leader's writes land only
	// while it is still the last event on TermSubject.
	LeaderElected struct {
		Replica string `json:"replica"`
		// Term counts terms: the previous LeaderElected's Term plus one.
		Term uint64 `json:"term"`
	}
	// LeaderWrote is the first event of every atomic batch a leader's control loop writes (on
	// the loop's PassRef subject): the server took the batch because Term was still the newest
	// term. The batch's Events events follow it directly in the log.
	LeaderWrote struct {
		Term   uint64 `json:"term"`
		Events int    `json:"events"`
	}
)

func (LeaderElected) EventType() string               { return "LeaderElected" }
func (LeaderWrote) EventType() string                 { return "LeaderWrote" }
func (NamespaceApplied) EventType() string            { return "NamespaceApplied" }
func (NamespaceDeleted) EventType() string            { return "NamespaceDeleted" }
func (NodeRegistered) EventType() string              { return "NodeRegistered" }
func (NodePodCIDRAssigned) EventType() string         { return "NodePodCIDRAssigned" }
func (NodeReady) EventType() string                   { return "NodeReady" }
func (NodeNotReady) EventType() string                { return "NodeNotReady" }
func (NodeCordoned) EventType() string                { return "NodeCordoned" }
func (NodeUncordoned) EventType() string              { return "NodeUncordoned" }
func (NodeDeleted) EventType() string                 { return "NodeDeleted" }
func (PodCreated) EventType() string                  { return "PodCreated" }
func (PodScheduled) EventType() string                { return "PodScheduled" }
func (PodUnschedulable) EventType() string            { return "PodUnschedulable" }
func (PodDeletionRequested) EventType() string        { return "PodDeletionRequested" }
func (PodDeleted) EventType() string                  { return "PodDeleted" }
func (PodBound) EventType() string                    { return "PodBound" }
func (PodStopRequested) EventType() string            { return "PodStopRequested" }
func (PodStatusReported) EventType() string           { return "PodStatusReported" }
func (PodTerminated) EventType() string               { return "PodTerminated" }
func (DeploymentApplied) EventType() string           { return "DeploymentApplied" }
func (DeploymentScaled) EventType() string            { return "DeploymentScaled" }
func (DeploymentRolloutProgressed) EventType() string { return "DeploymentRolloutProgressed" }
func (DeploymentDeleted) EventType() string           { return "DeploymentDeleted" }
func (ServiceApplied) EventType() string              { return "ServiceApplied" }
func (ServiceDeleted) EventType() string              { return "ServiceDeleted" }
func (EndpointsUpdated) EventType() string            { return "EndpointsUpdated" }

// CurrentVersion is the schema version this code writes and the newest it reads.
const CurrentVersion = 1

// registry maps a type name to the subject kind it belongs on and a constructor.
var registry = map[string]struct {
	kind string
	new  func() Payload
}{}

func register[T any, P interface {
	*T
	Payload
}](kind string) {
	var zero T
	registry[P(&zero).EventType()] = struct {
		kind string
		new  func() Payload
	}{kind, func() Payload { return P(new(T)) }}
}

func init() {
	register[NamespaceApplied](KindNamespace)
	register[NamespaceDeleted](KindNamespace)
	register[NodeRegistered](KindNode) // on the node's own subject: NodeRegistrationSubject
	register[NodePodCIDRAssigned](KindNode)
	register[NodeReady](KindNode)
	register[NodeNotReady](KindNode)
	register[NodeCordoned](KindNode)
	register[NodeUncordoned](KindNode)
	register[NodeDeleted](KindNode)
	register[PodCreated](KindPod)
	register[PodScheduled](KindPod)
	register[PodUnschedulable](KindPod)
	register[PodDeletionRequested](KindPod)
	register[PodDeleted](KindPod)
	register[PodBound](KindBind)
	register[PodStopRequested](KindBind)
	register[PodStatusReported](KindStatus)
	register[PodTerminated](KindStatus)
	register[DeploymentApplied](KindDeployment)
	register[DeploymentScaled](KindDeployment)
	register[DeploymentRolloutProgressed](KindDeployment)
	register[DeploymentDeleted](KindDeployment)
	register[ServiceApplied](KindService)
	register[ServiceDeleted](KindService)
	register[EndpointsUpdated](KindEndpoints)
	register[LeaderElected](KindLeader)
	register[LeaderWrote](KindLeader)
}

// KindOf returns the subject kind an event type belongs on, or "" for an unknown type.
func KindOf(eventType string) string { return registry[eventType].kind }

// Types lists every known event type.
func Types() []string {
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	return out
}

// PodUID is the pod UID a pod, bind or status event is about; "" for other events.
func PodUID(p Payload) string {
	switch p := p.(type) {
	case *PodCreated:
		return p.Pod.Metadata.UID
	case *PodScheduled:
		return p.UID
	case *PodUnschedulable:
		return p.UID
	case *PodDeletionRequested:
		return p.UID
	case *PodDeleted:
		return p.UID
	case *PodBound:
		return p.Pod.Metadata.UID
	case *PodStopRequested:
		return p.UID
	case *PodStatusReported:
		return p.UID
	case *PodTerminated:
		return p.UID
	}
	return ""
}
