package controllerstest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// FakeNodes plays the scheduler and the node agents: it schedules pending pods round-robin onto
// the Ready ones of Nodes, binds them, reports them running with an address, and reports PodTerminated for pods
// whose stop was requested. One step per pod per pass, each write conditional, like the real ones.
type FakeNodes struct {
	// Nodes are registered by Start.
	Nodes []string
	// NotReady, if set, picks pods that are reported running but not ready.
	NotReady func(*state.Pod) bool
	// FinishDeletions stands in for the pod lifecycle controller: pods being deleted get
	// PodDeleted at once.
	FinishDeletions bool

	c    *Cluster
	next int
	ips  int
}

// StartFakeNodes registers f.Nodes and runs f until cleanup.
func (c *Cluster) StartFakeNodes(f *FakeNodes) {
	c.T.Helper()
	f.c = c
	for i, n := range f.Nodes {
		c.RegisterNode(n, fmt.Sprintf("192.168.0.%d", i+1))
	}
	loop := reconcile.NewLoop(reconcile.Config{Name: "fakenodes", Projection: c.Projection, Logger: c.Logger.With("component", "fakenodes")}, f.pass)
	c.Go(loop.Run)
}

func (f *FakeNodes) pass(ctx context.Context) (reconcile.Result, error) {
	b := reconcile.NewBatch(f.c.Clock.Now(), events.Meta{Actor: "fakenodes"})
	f.c.Projection.View(func(s *state.State) {
		for _, key := range slices.SortedFunc(maps.Keys(s.Pods), func(a, b state.Key) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		}) {
			f.step(s, s.Pods[key], b)
		}
	})
	return b.Flush(ctx, f.c.Store)
}

func (f *FakeNodes) step(s *state.State, p *state.Pod, b *reconcile.Batch) {
	ref := PodRef(p.Metadata.Namespace, p.Metadata.Name, p.Metadata.UID)
	podSubject := events.ObjectSubject(events.KindPod, ref.Namespace, ref.Name)
	node := p.Spec.NodeName
	switch {
	case p.Deleting() && f.FinishDeletions:
		b.Add(ref, "", &events.PodDeleted{UID: ref.UID}, s.SubjectSeq(podSubject))
	case p.StopRequested && !p.Terminated:
		b.Add(ref, node, &events.PodTerminated{UID: ref.UID}, s.SubjectSeq(events.StatusSubject(node, ref.Namespace, ref.Name)))
	case p.Deleting():
		// The pod lifecycle controller takes it from here.
	case node == "":
		var ready []string
		for _, n := range f.Nodes {
			if sn := s.Nodes[n]; sn != nil && sn.Ready {
				ready = append(ready, n)
			}
		}
		if len(ready) == 0 {
			return
		}
		n := ready[f.next%len(ready)]
		f.next++
		b.Add(ref, "", &events.PodScheduled{UID: ref.UID, Node: n}, s.SubjectSeq(podSubject))
	case node != "" && !p.Bound:
		b.Add(ref, node, &events.PodBound{Pod: p.Pod}, s.SubjectSeq(events.BindSubject(node, ref.Namespace, ref.Name)))
	case p.Bound && p.Status.PodIP == "":
		f.ips++
		ip := fmt.Sprintf("10.88.%d.%d", f.ips/250, f.ips%250+2)
		ready := f.NotReady == nil || !f.NotReady(p)
		b.Add(ref, node, &events.PodStatusReported{UID: ref.UID, Status: RunningStatus(ip, ready)},
			s.SubjectSeq(events.StatusSubject(node, ref.Namespace, ref.Name)))
	}
}
