package state

import (
	"fmt"
	"time"

	"skiff.dev/events"
)

// Key names a namespaced object.
type Key struct{ Namespace, Name string }

func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Pod is a pod as the log tells it: the Kubernetes-shaped object plus what controllers need.
type Pod struct {
	events.Pod
	// MilliCPU and Memory are the pod's requests, summed once at creation; Extra what it
	// requests beyond them (nil for most pods).
	MilliCPU, Memory int64
	Extra            *events.ExtraResources
	// Bound: PodBound was written to the node's subject.
	Bound bool
	// StopRequested: PodStopRequested was written to the node's subject.
	StopRequested bool
	// Terminated: the node reported it stopped the pod and released what it held.
	Terminated bool
	// GracePeriodSeconds of the pending deletion.
	GracePeriodSeconds int64
	// OwnerUID is the UID of the controlling owner, if any.
	OwnerUID string
	// Created is the sequence of PodCreated.
	Created uint64
	// Cause is the last event about the pod: what a controller's write about it reacts to.
	Cause events.Cause
}

// Key returns the pod's key.
func (p *Pod) Key() Key { return Key{p.Metadata.Namespace, p.Metadata.Name} }

// Deleting reports whether deletion was requested.
func (p *Pod) Deleting() bool { return p.Metadata.DeletionTimestamp != nil }

// Ready reports whether every container is ready and the pod is running.
func (p *Pod) Ready() bool {
	if p.Status.Phase != events.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			return false
		}
	}
	return true
}

// Node is a node as the log tells it.
type Node struct {
	events.Node
	MilliCPU, Memory int64
	MaxPods          int32
	Ready            bool
	// Cause is the last event about the node.
	Cause events.Cause
	// Requested sums the requests of pods assigned to the node and not yet terminated.
	RequestedCPU, RequestedMemory int64
	PodCount                      int
	// EphemeralStorage and Extended are what the node offers beyond CPU and memory;
	// RequestedEphemeralStorage and RequestedExtended what its pods request of them. The maps
	// are replaced, never written into.
	EphemeralStorage          int64
	Extended                  map[string]int64
	RequestedEphemeralStorage int64
	RequestedExtended         map[string]int64
}

// Deployment is a Deployment as the log tells it.
type Deployment struct {
	events.Deployment
	// Cause is the last command about the Deployment (applied, scaled): what the pods the
	// controller creates for it react to. The controller's own progress reports leave it.
	Cause events.Cause
}

// Service is a Service as the log tells it.
type Service struct {
	events.Service
	// Cause is the ServiceApplied of this version.
	Cause events.Cause
}

// State is the fold of the log up to Seq.
type State struct {
	// Seq is the sequence of the last event applied.
	Seq uint64

	Namespaces  map[string]*events.Namespace
	Nodes       map[string]*Node
	Pods        map[Key]*Pod
	Deployments map[Key]*Deployment
	Services    map[Key]*Service
	Endpoints   map[Key]*events.Endpoints
	// Leader is the control loops' current term (zero before the first LeaderElected).
	Leader Leader

	// Indexes, kept by Apply.
	subjectSeq  map[string]uint64
	podsByNode  map[string]map[Key]*Pod
	podsByOwner map[string]map[Key]*Pod
	templates   map[string]*template // by owner UID, see share
	pending     map[Key]*Pod
	clusterIPs  map[string]Key
	podCIDRs    map[string]string
	// endpointsDeleted is the sequence of each Service's last deletion: an EndpointsUpdated
	// from before it, folded after it (a reader with one consumer per kind sees the two kinds
	// out of log order), must not bring the old endpoints back.
	endpointsDeleted map[Key]uint64
}

// Leader is a term of the control loops' leader as the log tells it.
type Leader struct {
	Replica string
	// Term counts terms; Seq is its LeaderElected's sequence, the fence of its writes.
	Term uint64
	Seq  uint64
	// Since is when the term began (the event's time).
	Since time.Time
}

// DefaultNamespace always exists, as in Kubernetes.
const DefaultNamespace = "default"

// New returns the state of an empty log.
func New() *State {
	return &State{
		Namespaces: map[string]*events.Namespace{DefaultNamespace: {
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			Metadata: events.ObjectMeta{Name: DefaultNamespace},
			Status:   events.NamespaceStatus{Phase: "Active"},
		}},
		Nodes:       map[string]*Node{},
		Pods:        map[Key]*Pod{},
		Deployments: map[Key]*Deployment{},
		Services:    map[Key]*Service{},
		Endpoints:   map[Key]*events.Endpoints{},
		subjectSeq:  map[string]uint64{},
		podsByNode:  map[string]map[Key]*Pod{},
		podsByOwner: map[string]map[Key]*Pod{},
		templates:   map[string]*template{},
		pending:     map[Key]*Pod{},
		clusterIPs:  map[string]Key{},
		podCIDRs:    map[string]string{},

		endpointsDeleted: map[Key]uint64{},
	}
}

// SubjectSeq is the sequence of the last event on subject, 0 if none: the expected sequence for
// the next conditional append to it.
func (s *State) SubjectSeq(subject string) uint64 { return s.subjectSeq[subject] }

// PodsOnNode returns the pods assigned to node (scheduled, not yet deleted).
func (s *State) PodsOnNode(node string) map[Key]*Pod { return s.podsByNode[node] }

// PodsOwnedBy returns the live pods whose controller has uid.
func (s *State) PodsOwnedBy(uid string) map[Key]*Pod { return s.podsByOwner[uid] }

// Pending returns the pods waiting for a node.
func (s *State) Pending() map[Key]*Pod { return s.pending }

// ClusterIPOwner returns the Service holding ip.
func (s *State) ClusterIPOwner(ip string) (Key, bool) {
	k, ok := s.clusterIPs[ip]
	return k, ok
}

// PodCIDROwner returns the node holding cidr.
func (s *State) PodCIDROwner(cidr string) (string, bool) {
	n, ok := s.podCIDRs[cidr]
	return n, ok
}

func precondition(ev *events.Event, format string, args ...any) error {
	return fmt.Errorf("event seq %d %s on %s: %s: %w", ev.Seq, ev.Type, ev.Subject, fmt.Sprintf(format, args...), events.ErrFailedPrecondition)
}

// Apply folds one event into the state. See the package doc for what an error means.
func (s *State) Apply(ev *events.Event) error {
	if ev.Seq > s.Seq {
		s.Seq = ev.Seq
	}
	s.subjectSeq[ev.Subject] = ev.Seq
	sub, err := events.ParseSubject(ev.Subject)
	if err != nil {
		return precondition(ev, "%v", err)
	}
	if events.KindOf(ev.Type) != sub.Kind {
		return precondition(ev, "a %s event does not belong on a %s subject", ev.Type, sub.Kind)
	}
	key := Key{sub.Namespace, sub.Name}
	t := ev.Time
	switch p := ev.Data.(type) {
	case *events.NamespaceApplied:
		ns := p.Namespace
		if old, ok := s.Namespaces[sub.Name]; ok {
			ns.Metadata.CreationTimestamp = old.Metadata.CreationTimestamp
			ns.Metadata.UID = old.Metadata.UID
		} else if ns.Metadata.CreationTimestamp == nil {
			ns.Metadata.CreationTimestamp = &t
		}
		ns.Status.Phase = "Active"
		s.Namespaces[sub.Name] = &ns
	case *events.NamespaceDeleted:
		delete(s.Namespaces, sub.Name)

	case *events.NodeRegistered:
		if sub.Node != sub.Name {
			return precondition(ev, "a node registers itself only, on %s", events.NodeRegistrationSubject(sub.Name))
		}
		s.applyNodeRegistered(sub.Name, t, p)
		s.Nodes[sub.Name].Cause = ev.Cause()
	case *events.NodePodCIDRAssigned:
		n, ok := s.Nodes[sub.Name]
		if !ok {
			return precondition(ev, "node %s is not registered", sub.Name)
		}
		if owner, taken := s.podCIDRs[p.PodCIDR]; taken && owner != sub.Name {
			// Two leaders (during a takeover) can pick the same free CIDR: the first one on the
			// log wins, the other allocation does not count and its controller allocates again.
			return precondition(ev, "pod CIDR %s is already assigned to node %s", p.PodCIDR, owner)
		}
		if n.Spec.PodCIDR != "" {
			delete(s.podCIDRs, n.Spec.PodCIDR)
		}
		n.Spec.PodCIDR = p.PodCIDR
		s.podCIDRs[p.PodCIDR] = sub.Name
		n.Cause = ev.Cause()
	case *events.NodeReady:
		n, ok := s.Nodes[sub.Name]
		if !ok {
			return precondition(ev, "node %s is not registered", sub.Name)
		}
		n.setReady(true, p.Reason, "", t)
		n.Cause = ev.Cause()
	case *events.NodeNotReady:
		n, ok := s.Nodes[sub.Name]
		if !ok {
			return precondition(ev, "node %s is not registered", sub.Name)
		}
		n.setReady(false, p.Reason, p.Message, t)
		n.Cause = ev.Cause()
	case *events.NodeCordoned, *events.NodeUncordoned:
		n, ok := s.Nodes[sub.Name]
		if !ok {
			return precondition(ev, "node %s is not registered", sub.Name)
		}
		_, n.Spec.Unschedulable = p.(*events.NodeCordoned)
		n.Cause = ev.Cause()
	case *events.NodeDeleted:
		if n, ok := s.Nodes[sub.Name]; ok {
			delete(s.podCIDRs, n.Spec.PodCIDR)
		}
		delete(s.Nodes, sub.Name)

	case *events.PodCreated, *events.PodScheduled, *events.PodUnschedulable, *events.PodDeletionRequested,
		*events.PodDeleted, *events.PodBound, *events.PodStopRequested, *events.PodStatusReported, *events.PodTerminated:
		return s.applyPod(ev, sub, key)

	case *events.DeploymentApplied:
		d := &Deployment{Deployment: p.Deployment, Cause: ev.Cause()}
		if old, ok := s.Deployments[key]; ok {
			d.Status = old.Status
			d.Metadata.CreationTimestamp = old.Metadata.CreationTimestamp
		} else if d.Metadata.CreationTimestamp == nil {
			d.Metadata.CreationTimestamp = &t
		}
		s.Deployments[key] = d
	case *events.DeploymentScaled:
		d, ok := s.Deployments[key]
		if !ok {
			return precondition(ev, "deployment %s does not exist", key)
		}
		r := p.Replicas
		d.Spec.Replicas = &r
		d.Metadata.Generation = p.Generation
		d.Cause = ev.Cause()
	case *events.DeploymentRolloutProgressed:
		d, ok := s.Deployments[key]
		if !ok {
			return precondition(ev, "deployment %s does not exist", key)
		}
		d.Status = p.Status
	case *events.DeploymentDeleted:
		delete(s.Deployments, key)

	case *events.ServiceApplied:
		sv := &Service{Service: p.Service, Cause: ev.Cause()}
		if old, ok := s.Services[key]; ok {
			sv.Metadata.CreationTimestamp = old.Metadata.CreationTimestamp
			delete(s.clusterIPs, old.Spec.ClusterIP)
		} else if sv.Metadata.CreationTimestamp == nil {
			sv.Metadata.CreationTimestamp = &t
		}
		if ip := sv.Spec.ClusterIP; ip != "" && ip != "None" {
			s.clusterIPs[ip] = key
		}
		s.Services[key] = sv
	case *events.ServiceDeleted:
		if old, ok := s.Services[key]; ok {
			delete(s.clusterIPs, old.Spec.ClusterIP)
		}
		delete(s.Services, key)
		delete(s.Endpoints, key)
		s.endpointsDeleted[key] = ev.Seq
	case *events.EndpointsUpdated:
		// Endpoints may arrive before their Service (a reader with a consumer per kind); the
		// proxy programs them only once the Service is there. Those of a deleted Service stay
		// deleted.
		if ev.Seq < s.endpointsDeleted[key] {
			return nil
		}
		s.Endpoints[key] = &events.Endpoints{
			TypeMeta:  events.TypeMeta{APIVersion: "v1", Kind: "Endpoints"},
			Metadata:  events.ObjectMeta{Name: sub.Name, Namespace: sub.Namespace, CreationTimestamp: &t},
			Addresses: p.Addresses,
		}
	case *events.LeaderElected:
		s.Leader = Leader{Replica: p.Replica, Term: p.Term, Seq: ev.Seq, Since: t}
	case *events.LeaderWrote:
		// A fence: the events after it are what the leader wrote; it changes nothing itself.
	default:
		return precondition(ev, "no fold for payload %T", ev.Data)
	}
	return nil
}

func (s *State) applyNodeRegistered(name string, t time.Time, p *events.NodeRegistered) {
	n, ok := s.Nodes[name]
	if !ok {
		n = &Node{Node: events.Node{
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Node"},
			Metadata: events.ObjectMeta{Name: name, UID: name, CreationTimestamp: &t},
		}}
		s.Nodes[name] = n
	}
	n.Metadata.Labels = p.Labels
	n.Spec.Taints = p.Taints
	n.MilliCPU, n.Memory, n.MaxPods = p.MilliCPU, p.Memory, p.MaxPods
	n.EphemeralStorage, n.Extended = p.EphemeralStorage, p.Extended
	capacity := events.ResourceList{
		"cpu":    fmt.Sprintf("%dm", p.MilliCPU),
		"memory": fmt.Sprintf("%d", p.Memory),
		"pods":   fmt.Sprintf("%d", p.MaxPods),
	}
	if p.EphemeralStorage > 0 {
		capacity[events.ResourceEphemeralStorage] = fmt.Sprintf("%d", p.EphemeralStorage)
	}
	for name, v := range p.Extended {
		capacity[name] = fmt.Sprintf("%d", v)
	}
	n.Status.Capacity, n.Status.Allocatable = capacity, capacity
	n.Status.Addresses = nil
	if p.Address != "" {
		n.Status.Addresses = []events.NodeAddress{{Type: "InternalIP", Address: p.Address}}
	}
	// A node that registers is alive: its agent just started.
	n.setReady(true, "NodeRegistered", "", t)
}

func (n *Node) setReady(ready bool, reason, message string, t time.Time) {
	status := "False"
	if ready {
		status = "True"
	}
	if n.Ready == ready && len(n.Status.Conditions) > 0 {
		return
	}
	n.Ready = ready
	n.Status.Conditions = []events.Condition{{Type: "Ready", Status: status, Reason: reason, Message: message, LastTransitionTime: &t}}
}

// Address is the node's InternalIP, or "".
func (n *Node) Address() string {
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			return a.Address
		}
	}
	return ""
}

// Skip records an event that could not be decoded: the sequence advances, nothing else changes.
func (s *State) Skip(subject string, seq uint64) {
	if seq > s.Seq {
		s.Seq = seq
	}
	s.subjectSeq[subject] = seq
}
