package checker

import (
	"fmt"
	"sort"

	"skiff.dev/events"
)

// pods follows every pod UID through its lifecycle (invariants 1, 2 and the lifecycle part of
// 3). It trusts nothing but the order of the log: each event is judged against the events
// before it.
type pods struct {
	r *Report
	// live maps "ns/name" to the UID created and not deleted under that name.
	live map[string]string
	// nodeDeleted and nodeRegistered are each node's last NodeDeleted and NodeRegistered.
	nodeDeleted, nodeRegistered map[string]uint64
}

func newPods(r *Report) *pods {
	return &pods{r: r, live: r.Live, nodeDeleted: map[string]uint64{}, nodeRegistered: map[string]uint64{}}
}

// eventAt formats as "seq N Type on subject" only when a violation is written: formatting it
// for every event would cost a tenth of a check.
type eventAt struct{ ev *events.Event }

func (a eventAt) String() string {
	return fmt.Sprintf("seq %d %s on %s", a.ev.Seq, a.ev.Type, a.ev.Subject)
}

func (ps *pods) event(ev *events.Event, sub events.Subject) {
	switch ev.Data.(type) {
	case *events.NodeDeleted:
		ps.nodeDeleted[sub.Name] = ev.Seq
		return
	case *events.NodeRegistered:
		ps.nodeRegistered[sub.Name] = ev.Seq
		return
	}
	if sub.Kind != events.KindPod && sub.Kind != events.KindBind && sub.Kind != events.KindStatus {
		return
	}
	r := ps.r
	uid := events.PodUID(ev.Data)
	key := sub.Namespace + "/" + sub.Name
	at := eventAt{ev}

	if _, ok := ev.Data.(*events.PodCreated); ok {
		if p := r.Pods[uid]; p != nil {
			r.violate(Lifecycle, "%s creates uid %s again (created at seq %d)", at, uid, p.Created)
			return
		}
		if old, taken := ps.live[key]; taken {
			r.violate(Lifecycle, "%s creates pod %s as uid %s while uid %s (created at seq %d) is not deleted", at, key, uid, old, r.Pods[old].Created)
		} else {
			ps.live[key] = uid
		}
		r.Pods[uid] = &Pod{UID: uid, Namespace: sub.Namespace, Name: sub.Name, Created: ev.Seq, Reports: map[string]*NodeReport{}}
		return
	}

	p := r.Pods[uid]
	if p == nil {
		r.violate(Lifecycle, "%s is about uid %s, which no earlier PodCreated created", at, uid)
		return
	}
	if p.Key() != key {
		r.violate(Lifecycle, "%s is about uid %s, which is pod %s, not %s", at, uid, p.Key(), key)
		return
	}
	switch ev.Data.(type) {
	case *events.PodStatusReported, *events.PodTerminated:
		// A node may report a pod after its deletion: see status.
	default:
		if p.Deleted != 0 {
			r.violate(Lifecycle, "%s comes after pod %s (uid %s) was deleted at seq %d", at, key, uid, p.Deleted)
			return
		}
	}

	switch d := ev.Data.(type) {
	case *events.PodScheduled:
		if p.Scheduled != 0 {
			r.violate(BoundOnce, "pod %s (uid %s) is scheduled twice: to %s at seq %d and to %s at seq %d", key, uid, p.Node, p.Scheduled, d.Node, ev.Seq)
			return
		}
		p.Scheduled, p.Node = ev.Seq, d.Node
	case *events.PodUnschedulable:
		if p.Scheduled != 0 {
			r.violate(Lifecycle, "%s comes after pod %s (uid %s) was scheduled to %s at seq %d", at, key, uid, p.Node, p.Scheduled)
		}
	case *events.PodDeletionRequested:
		if p.DeletionRequested == 0 {
			p.DeletionRequested = ev.Seq
		}
	case *events.PodDeleted:
		if p.Scheduled != 0 && p.StopRequested == 0 {
			r.violate(Lifecycle, "%s deletes pod %s (uid %s), scheduled to %s at seq %d, without a stop request on its bind subject", at, key, uid, p.Node, p.Scheduled)
		}
		p.Deleted = ev.Seq
		if ps.live[key] == uid {
			delete(ps.live, key)
		}
	case *events.PodBound:
		ps.bound(p, sub.Node, d, ev, at)
	case *events.PodStopRequested:
		switch {
		case p.Scheduled == 0:
			r.violate(Lifecycle, "%s asks %s to stop pod %s (uid %s), which was never scheduled", at, sub.Node, key, uid)
		case sub.Node != p.Node:
			r.violate(Lifecycle, "%s asks %s to stop pod %s (uid %s), which was scheduled to %s at seq %d", at, sub.Node, key, uid, p.Node, p.Scheduled)
		}
		if p.StopRequested == 0 {
			p.StopRequested = ev.Seq
		}
	case *events.PodStatusReported:
		ps.status(p, sub.Node, d.Status.Phase, ev, at)
	case *events.PodTerminated:
		ps.status(p, sub.Node, Terminated, ev, at)
	}
}

func (ps *pods) bound(p *Pod, node string, d *events.PodBound, ev *events.Event, at eventAt) {
	r, key, uid := ps.r, p.Key(), p.UID
	switch {
	case p.Bound != 0:
		r.violate(BoundOnce, "pod %s (uid %s) is bound twice: to %s at seq %d and to %s at seq %d", key, uid, p.BoundNode, p.Bound, node, ev.Seq)
		return
	case p.Scheduled == 0:
		r.violate(Lifecycle, "%s binds pod %s (uid %s), which was never scheduled", at, key, uid)
	case node != p.Node:
		r.violate(BoundOnce, "pod %s (uid %s) is bound to %s at seq %d but was scheduled to %s at seq %d", key, uid, node, ev.Seq, p.Node, p.Scheduled)
	}
	if d.Pod.Spec.NodeName != node {
		r.violate(BoundOnce, "%s hands %s a pod whose spec.nodeName is %q", at, node, d.Pod.Spec.NodeName)
	}
	if p.StopRequested != 0 {
		r.violate(Lifecycle, "%s binds pod %s (uid %s) after its stop request at seq %d", at, key, uid, p.StopRequested)
	}
	p.Bound, p.BoundNode = ev.Seq, node
	r.Bound[uid] = node
}

// status records a node's report (phase, or Terminated for PodTerminated).
func (ps *pods) status(p *Pod, node, phase string, ev *events.Event, at eventAt) {
	r, key, uid := ps.r, p.Key(), p.UID
	switch {
	case p.Bound != 0 && p.BoundNode != node:
		r.violate(OneRunning, "%s: %s reports pod %s (uid %s), which is bound to %s (seq %d): a second copy", at, node, key, uid, p.BoundNode, p.Bound)
	case p.Bound == 0:
		r.violate(Lifecycle, "%s: %s reports pod %s (uid %s) before any binding of it", at, node, key, uid)
	}
	last := p.Reports[node]
	if last == nil {
		last = &NodeReport{}
		p.Reports[node] = last
	}
	if last.Terminated != 0 && phase == events.PodRunning {
		r.violate(OneRunning, "%s: %s reports pod %s (uid %s) Running after it reported it terminated at seq %d", at, node, key, uid, last.Terminated)
	}
	last.Seq, last.Phase = ev.Seq, phase
	if phase == Terminated {
		last.Terminated = ev.Seq
	}
}

// finish judges the end of the log: invariant 2's (b) and (c), and the facts.
func (ps *pods) finish() {
	r := ps.r
	uids := sortedKeys(r.Pods)
	for _, uid := range uids {
		p := r.Pods[uid]
		for _, node := range sortedKeys(p.Reports) {
			rep := p.Reports[node]
			gone := ps.nodeGoneAfter(node, rep.Seq)
			if p.Deleted == 0 {
				if rep.Phase == events.PodRunning {
					r.Running[p.Key()] = append(r.Running[p.Key()], node)
				}
				continue
			}
			if rep.Phase == events.PodRunning && !gone {
				r.violate(OneRunning, "pod %s (uid %s) was deleted at seq %d, but %s's last report (seq %d) says Running and no PodTerminated followed",
					p.Key(), uid, p.Deleted, node, rep.Seq)
			}
		}
		switch {
		case p.Deleted == 0 && p.Scheduled != 0 && p.Bound == 0:
			r.Unbound = append(r.Unbound, fmt.Sprintf("%s %s@%s", p.Key(), uid, p.Node))
		case p.Deleted != 0 && p.Bound != 0:
			rep := p.Reports[p.BoundNode]
			if (rep == nil || rep.Phase != Terminated) && !ps.nodeGoneAfter(p.BoundNode, p.Bound) {
				r.Unterminated = append(r.Unterminated, fmt.Sprintf("%s %s@%s", p.Key(), uid, p.BoundNode))
			}
		}
	}
	for _, key := range sortedKeys(r.Running) {
		if nodes := r.Running[key]; len(nodes) > 1 {
			sort.Strings(nodes)
			r.violate(OneRunning, "pod %s is Running on %d nodes at the end of the log: %v", key, len(nodes), nodes)
		}
	}
}

// nodeGoneAfter says whether node was deleted after seq and not registered again since.
func (ps *pods) nodeGoneAfter(node string, seq uint64) bool {
	d := ps.nodeDeleted[node]
	return d > seq && ps.nodeRegistered[node] < d
}
