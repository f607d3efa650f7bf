// Package work is a node agent's view of its own work: the pods bound to its node, what was
// asked of them, and what the node last reported about them. It is a pure fold, like
// events/state, over the only pod subjects an agent reads, its own bind and status subjects, so
// an agent reads O(its own pods), never the whole cluster. (Nodes, for registration and routes,
// come from an events/state projection of the node subjects.)
//
// A View is not safe for concurrent use; its owner serializes Apply and readers.
package work

import (
	"fmt"

	"skiff.dev/events"
)

// Key names a pod.
type Key struct{ Namespace, Name string }

func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Pod is one pod bound to this node.
type Pod struct {
	// Pod is the full pod as bound (spec.nodeName set).
	Pod events.Pod
	// StopRequested and GracePeriodSeconds: the control plane asked the node to stop the pod.
	StopRequested      bool
	GracePeriodSeconds int64
	// Reported is the last status this node reported, nil if none yet.
	Reported *events.PodStatus
	// Terminated: this node reported the pod stopped and released.
	Terminated bool
	// Cause is the last event the control plane wrote about the pod here (PodBound,
	// PodStopRequested): what the node's work and reports react to.
	Cause events.Cause
}

// UID is the pod's UID.
func (p *Pod) UID() string { return p.Pod.Metadata.UID }

// View is the fold.
type View struct {
	Node string
	Seq  uint64
	Pods map[Key]*Pod
	seqs map[string]uint64
}

// New returns the view of an empty log for node.
func New(node string) *View {
	return &View{Node: node, Pods: map[Key]*Pod{}, seqs: map[string]uint64{}}
}

// SubjectSeq is the last sequence on subject: the expected sequence of the next append to it.
func (v *View) SubjectSeq(subject string) uint64 { return v.seqs[subject] }

// Skip records an event that could not be decoded.
func (v *View) Skip(subject string, seq uint64) {
	v.seqs[subject] = seq
	v.Seq = max(v.Seq, seq)
}

// Apply folds one event. Events about other nodes' pods, or contradicting the view, change
// nothing but the subject's sequence and return an error wrapping events.ErrFailedPrecondition.
func (v *View) Apply(ev *events.Event) error {
	v.Skip(ev.Subject, ev.Seq)
	sub, err := events.ParseSubject(ev.Subject)
	if err != nil {
		return fmt.Errorf("event seq %d: %v: %w", ev.Seq, err, events.ErrFailedPrecondition)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("event seq %d %s on %s: %s: %w", ev.Seq, ev.Type, ev.Subject, fmt.Sprintf(format, args...), events.ErrFailedPrecondition)
	}
	if sub.Node != v.Node || (sub.Kind != events.KindBind && sub.Kind != events.KindStatus) {
		return bad("not this node's work")
	}
	key := Key{sub.Namespace, sub.Name}
	if b, ok := ev.Data.(*events.PodBound); ok {
		if old, exists := v.Pods[key]; exists && !old.Terminated {
			return bad("pod %s is already bound here with uid %s", key, old.UID())
		}
		// A pod name can be reused after the old pod terminated: the new binding replaces it.
		v.Pods[key] = &Pod{Pod: b.Pod, Cause: ev.Cause()}
		return nil
	}
	p := v.Pods[key]
	if p == nil {
		return bad("pod %s is not bound here", key)
	}
	switch d := ev.Data.(type) {
	case *events.PodStopRequested:
		if d.UID != p.UID() {
			return bad("uid %s is not the bound pod's %s", d.UID, p.UID())
		}
		if !p.StopRequested || d.GracePeriodSeconds < p.GracePeriodSeconds {
			p.GracePeriodSeconds = d.GracePeriodSeconds
		}
		p.StopRequested = true
		p.Cause = ev.Cause()
	case *events.PodStatusReported:
		if d.UID != p.UID() {
			return bad("uid %s is not the bound pod's %s", d.UID, p.UID())
		}
		s := d.Status
		p.Reported = &s
	case *events.PodTerminated:
		if d.UID != p.UID() {
			return bad("uid %s is not the bound pod's %s", d.UID, p.UID())
		}
		p.Terminated = true
	default:
		return bad("unexpected event on a node subject")
	}
	return nil
}
