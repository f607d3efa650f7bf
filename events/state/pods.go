package state

import (
	"slices"

	"skiff.dev/events"
)

func (s *State) applyPod(ev *events.Event, sub events.Subject, key Key) error {
	t := ev.Time
	if p, ok := ev.Data.(*events.PodCreated); ok {
		if old, exists := s.Pods[key]; exists {
			return precondition(ev, "pod %s already exists with uid %s", key, old.Metadata.UID)
		}
		pod := &Pod{Pod: p.Pod, Created: ev.Seq, Cause: ev.Cause()}
		pod.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		pod.Metadata.Namespace, pod.Metadata.Name = key.Namespace, key.Name
		if pod.Metadata.CreationTimestamp == nil {
			pod.Metadata.CreationTimestamp = &t
		}
		pod.Spec.NodeName = ""
		pod.MilliCPU, pod.Memory = pod.Spec.Requests()
		pod.Extra = pod.Spec.ExtraRequests()
		pod.Status = events.PodStatus{Phase: events.PodPending}
		for _, o := range pod.Metadata.OwnerReferences {
			if o.Controller {
				pod.OwnerUID = o.UID
			}
		}
		s.Pods[key] = pod
		s.pending[key] = pod
		if pod.OwnerUID != "" {
			s.share(pod)
			index(s.podsByOwner, pod.OwnerUID, key, pod)
		}
		return nil
	}

	pod, ok := s.Pods[key]
	if !ok {
		return precondition(ev, "pod %s does not exist", key)
	}
	if uid := events.PodUID(ev.Data); uid != pod.Metadata.UID {
		return precondition(ev, "pod %s has uid %s, the event is about uid %s", key, pod.Metadata.UID, uid)
	}
	if sub.Node != "" && sub.Node != pod.Spec.NodeName {
		return precondition(ev, "pod %s is assigned to node %q, not %s", key, pod.Spec.NodeName, sub.Node)
	}

	pod.Cause = ev.Cause()
	switch p := ev.Data.(type) {
	case *events.PodScheduled:
		if pod.Spec.NodeName != "" {
			return precondition(ev, "pod %s is already assigned to %s", key, pod.Spec.NodeName)
		}
		pod.Spec.NodeName = p.Node
		delete(s.pending, key)
		index(s.podsByNode, p.Node, key, pod)
		if n := s.Nodes[p.Node]; n != nil {
			n.RequestedCPU += pod.MilliCPU
			n.RequestedMemory += pod.Memory
			n.addExtra(pod.Extra, 1)
			n.PodCount++
			if a := n.Address(); a != "" {
				pod.Status.HostIP = a
			}
		}
		setCondition(&pod.Status.Conditions, events.Condition{Type: "PodScheduled", Status: "True", LastTransitionTime: &t})
	case *events.PodUnschedulable:
		setCondition(&pod.Status.Conditions, events.Condition{Type: "PodScheduled", Status: "False", Reason: "Unschedulable", Message: p.Message, LastTransitionTime: &t})
	case *events.PodBound:
		pod.Bound = true
	case *events.PodStopRequested:
		pod.StopRequested = true
	case *events.PodStatusReported:
		conds := pod.Status.Conditions
		hostIP := pod.Status.HostIP
		pod.Status = p.Status
		if pod.Status.HostIP == "" {
			pod.Status.HostIP = hostIP
		}
		pod.Status.Conditions = conds
		// The decoder leaves room to grow; a status lives as long as the pod, so keep it exact.
		pod.Status.ContainerStatuses = slices.Clone(pod.Status.ContainerStatuses)
		ready := "False"
		if pod.Ready() {
			ready = "True"
		}
		setCondition(&pod.Status.Conditions, events.Condition{Type: "Ready", Status: ready, LastTransitionTime: &t})
	case *events.PodTerminated:
		if !pod.Terminated {
			pod.Terminated = true
			s.release(pod)
		}
	case *events.PodDeletionRequested:
		if pod.Metadata.DeletionTimestamp == nil {
			pod.Metadata.DeletionTimestamp = &t
			pod.GracePeriodSeconds = p.GracePeriodSeconds
		} else if p.GracePeriodSeconds < pod.GracePeriodSeconds {
			pod.GracePeriodSeconds = p.GracePeriodSeconds
		}
	case *events.PodDeleted:
		if !pod.Terminated {
			s.release(pod)
		}
		delete(s.Pods, key)
		delete(s.pending, key)
		unindex(s.podsByNode, pod.Spec.NodeName, key)
		unindex(s.podsByOwner, pod.OwnerUID, key)
		if s.podsByOwner[pod.OwnerUID] == nil {
			delete(s.templates, pod.OwnerUID)
		}
	}
	return nil
}

// release returns a pod's requests to its node.
func (s *State) release(pod *Pod) {
	if n := s.Nodes[pod.Spec.NodeName]; n != nil && pod.Spec.NodeName != "" {
		n.RequestedCPU -= pod.MilliCPU
		n.RequestedMemory -= pod.Memory
		n.addExtra(pod.Extra, -1)
		n.PodCount--
	}
}

func setCondition(conds *[]events.Condition, c events.Condition) {
	for i := range *conds {
		if (*conds)[i].Type == c.Type {
			if (*conds)[i].Status == c.Status {
				c.LastTransitionTime = (*conds)[i].LastTransitionTime
			}
			(*conds)[i] = c
			return
		}
	}
	*conds = append(*conds, c)
}

func index(m map[string]map[Key]*Pod, k string, key Key, pod *Pod) {
	inner := m[k]
	if inner == nil {
		inner = map[Key]*Pod{}
		m[k] = inner
	}
	inner[key] = pod
}

func unindex(m map[string]map[Key]*Pod, k string, key Key) {
	if inner := m[k]; inner != nil {
		delete(inner, key)
		if len(inner) == 0 {
			delete(m, k)
		}
	}
}

// addExtra adds (sign 1) or takes back (-1) a pod's requests beyond CPU and memory. The node's
// map is replaced, not written into: readers copied it out of the state under a read lock.
func (n *Node) addExtra(x *events.ExtraResources, sign int64) {
	if x == nil {
		return
	}
	n.RequestedEphemeralStorage += sign * x.EphemeralStorage
	if len(x.Extended) == 0 {
		return
	}
	m := make(map[string]int64, len(n.RequestedExtended)+len(x.Extended))
	for k, v := range n.RequestedExtended {
		m[k] = v
	}
	for k, v := range x.Extended {
		if m[k] += sign * v; m[k] == 0 {
			delete(m, k)
		}
	}
	n.RequestedExtended = m
}
