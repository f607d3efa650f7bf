package events

import (
	"fmt"
	"strings"
)

// Subject prefixes. The stream holds everything under SubjectRoot.
const (
	SubjectRoot = "skiff.ev"
	// ClusterScope is the namespace token of cluster-scoped kinds (nodes, namespaces).
	ClusterScope = "_"
)

// Kinds as they appear in subjects and object references.
const (
	KindPod        = "pod"
	KindBind       = "bind"
	KindStatus     = "status"
	KindDeployment = "deployment"
	KindService    = "service"
	KindEndpoints  = "endpoints"
	KindNamespace  = "namespace"
	KindNode       = "node"
	// KindLeader is the control loops' leadership: its terms (TermSubject) and the fences of
	// their writes (PassSubject).
	KindLeader = "leader"
)

// ObjectSubject is the subject of an object's own history.
func ObjectSubject(kind, namespace, name string) string {
	if namespace == "" {
		namespace = ClusterScope
	}
	return SubjectRoot + "." + kind + "." + namespace + "." + name
}

// BindSubject carries a pod's binding to node: the node's work.
func BindSubject(node, namespace, pod string) string {
	return SubjectRoot + "." + KindBind + "." + node + "." + namespace + "." + pod
}

// StatusSubject carries what node reports about a pod.
func StatusSubject(node, namespace, pod string) string {
	return SubjectRoot + "." + KindStatus + "." + node + "." + namespace + "." + pod
}

// NodeWorkFilter is the one subject filter of what a node agent follows: its bindings and its
// own status reports (so it can resume counting restarts), never the rest of the cluster. Bind
// and status subjects are the only ones with five tokens under SubjectRoot's two, so
// "skiff.ev.*.<node>.*.*" matches exactly those two kinds for that node. Being one filter, it
// travels in the consumer-create API subject, where the server's permissions can check it: a
// node may create consumers on its own filter only.
func NodeWorkFilter(node string) string {
	return SubjectRoot + ".*." + node + ".*.*"
}

// NodeRegistrationSubject is where node registers itself (NodeRegistered): skiff.ev.node.<node>,
// beside skiff.ev.node._.<node> where controllers and admission write about it (pod CIDR,
// readiness, cordon). A node may publish on the first only, so it can register itself but never
// write what others say of it; one filter, skiff.ev.node.>, still reads both in log order. ("_"
// is no DNS label, so no node is called that.)
func NodeRegistrationSubject(node string) string {
	return SubjectRoot + "." + KindNode + "." + node
}

// TermSubject holds one LeaderElected per term of the control loops' leader
// (skiff.ev.leader._.term): the subject whose last sequence every leader write is fenced on.
const TermSubject = SubjectRoot + "." + KindLeader + "." + ClusterScope + ".term"

// TermRef is the object LeaderElected is about: the leadership itself.
var TermRef = ObjectRef{Kind: KindLeader, Name: "term"}

// PassNamespace is the namespace token of the loops' fence subjects.
const PassNamespace = "pass"

// PassRef is the object LeaderWrote is about: one control loop of the leader, whose fence
// events land on skiff.ev.leader.pass.<loop>. A subject per loop keeps one loop's batches apart
// from another's, so a loop can tell whether its own last batch landed.
func PassRef(loop string) ObjectRef {
	return ObjectRef{Kind: KindLeader, Namespace: PassNamespace, Name: loop}
}

// KindFilter is the wildcard subject of all objects of a kind.
func KindFilter(kind string) string { return SubjectRoot + "." + kind + ".>" }

// AllFilter is the wildcard subject of the whole log.
const AllFilter = SubjectRoot + ".>"

// Subject is a parsed event subject.
type Subject struct {
	Kind      string
	Node      string // bind and status subjects, and a node's registration subject
	Namespace string
	Name      string
}

// ParseSubject splits an event subject into its parts.
func ParseSubject(s string) (Subject, error) {
	rest, ok := strings.CutPrefix(s, SubjectRoot+".")
	if !ok {
		return Subject{}, fmt.Errorf("subject %q is not under %s: %w", s, SubjectRoot, ErrInvalidArgument)
	}
	parts := strings.Split(rest, ".")
	switch {
	case len(parts) == 2 && parts[0] == KindNode:
		// A node's registration (NodeRegistrationSubject).
		return Subject{Kind: KindNode, Node: parts[1], Namespace: ClusterScope, Name: parts[1]}, nil
	case len(parts) == 3 && parts[0] != KindBind && parts[0] != KindStatus:
		return Subject{Kind: parts[0], Namespace: parts[1], Name: parts[2]}, nil
	case len(parts) == 4 && (parts[0] == KindBind || parts[0] == KindStatus):
		return Subject{Kind: parts[0], Node: parts[1], Namespace: parts[2], Name: parts[3]}, nil
	}
	return Subject{}, fmt.Errorf("subject %q has the wrong shape: %w", s, ErrInvalidArgument)
}

// String formats the subject.
func (s Subject) String() string {
	if s.Kind == KindNode && s.Node != "" {
		return NodeRegistrationSubject(s.Node)
	}
	if s.Kind == KindBind || s.Kind == KindStatus {
		return SubjectRoot + "." + s.Kind + "." + s.Node + "." + s.Namespace + "." + s.Name
	}
	return ObjectSubject(s.Kind, s.Namespace, s.Name)
}
