package table

import (
	"fmt"
	"strconv"
	"time"

	"skiff.dev/events"
)

// PodRow is one pod's row.
func PodRow(p *events.Pod, opts Options, now time.Time) []string {
	ready, restarts, lastRestart := containerCounts(p)
	row := lead(opts, &p.Metadata, 7)
	r := strconv.Itoa(int(restarts))
	if restarts > 0 && lastRestart != nil {
		r += " (" + Age(now.Sub(*lastRestart)) + " ago)"
	}
	row = append(row,
		strconv.Itoa(ready)+"/"+strconv.Itoa(len(p.Spec.Containers)),
		PodStatus(p),
		r,
		since(p.Metadata.CreationTimestamp, now))
	if opts.Wide {
		row = append(row, orNone(p.Status.PodIP), orNone(p.Spec.NodeName))
	}
	return row
}

// containerCounts sums ready containers and restarts, and finds when a container last ended
// (the "(5m ago)" after RESTARTS).
func containerCounts(p *events.Pod) (ready int, restarts int32, last *time.Time) {
	for _, c := range p.Status.InitContainerStatuses {
		restarts += c.RestartCount
	}
	for _, c := range p.Status.ContainerStatuses {
		restarts += c.RestartCount
		if c.Ready && c.State.Running != nil {
			ready++
		}
		if t := c.LastTerminationState.Terminated; t != nil && t.FinishedAt != nil {
			if last == nil || t.FinishedAt.After(*last) {
				last = t.FinishedAt
			}
		}
	}
	return ready, restarts, last
}

// PodStatus is the STATUS column: the one word that best says what is going on with the pod,
// computed as kubectl computes it. The phase is the starting point; a container that waits or
// ended with a reason overrides it (the first container in spec order wins, since it is
// usually the main one); a pod being deleted is Terminating whatever its containers do.
func PodStatus(p *events.Pod) string {
	reason := p.Status.Phase
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	if reason == "" {
		reason = events.PodPending
	}
	// An init container that has not succeeded says where initialization stands, as kubectl
	// shows it: Init:1/2 while the second runs, Init:CrashLoopBackOff, Init:Error.
	for i, c := range p.Status.InitContainerStatuses {
		t, w := c.State.Terminated, c.State.Waiting
		switch {
		case t != nil && t.ExitCode == 0:
			continue
		case t != nil && t.Reason != "":
			reason = "Init:" + t.Reason
		case t != nil && t.Signal != 0:
			reason = "Init:Signal:" + strconv.Itoa(int(t.Signal))
		case t != nil:
			reason = "Init:ExitCode:" + strconv.Itoa(int(t.ExitCode))
		case w != nil && w.Reason != "" && w.Reason != "PodInitializing":
			reason = "Init:" + w.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Status.InitContainerStatuses))
		}
		if p.Metadata.DeletionTimestamp != nil {
			reason = "Terminating"
		}
		return reason
	}
	running := false
	cs := p.Status.ContainerStatuses
	// Walk backwards so that the first container's reason is the one left standing.
	for i := len(cs) - 1; i >= 0; i-- {
		c := &cs[i]
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "":
			reason = c.State.Waiting.Reason
		case c.State.Terminated != nil && c.State.Terminated.Reason != "":
			reason = c.State.Terminated.Reason
		case c.State.Terminated != nil && c.State.Terminated.Signal != 0:
			reason = "Signal:" + strconv.Itoa(int(c.State.Terminated.Signal))
		case c.State.Terminated != nil:
			reason = "ExitCode:" + strconv.Itoa(int(c.State.Terminated.ExitCode))
		case c.Ready && c.State.Running != nil:
			running = true
		}
	}
	// One container finished its job while another still serves: the pod is still running.
	if reason == "Completed" && running {
		reason = events.PodRunning
		if !hasReadyCondition(p) {
			reason = "NotReady"
		}
	}
	if p.Metadata.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	return reason
}

func hasReadyCondition(p *events.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return true
		}
	}
	return false
}
