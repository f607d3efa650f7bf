package agent

import (
	"fmt"
	"time"

	"skiff.dev/events"
	"skiff.dev/services/nodeagent/internal/runtime"
)

// Waiting reasons, as the kubelet reports them.
const (
	ReasonContainerCreating = "ContainerCreating"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonErrImageNotFound  = "ErrImageNotFound"
	ReasonErrImageNeverPull = "ErrImageNeverPull"
	ReasonCreateError       = "CreateContainerError"
	ReasonNetworkNotReady   = "NetworkNotReady"
	ReasonPodInitializing   = "PodInitializing"
)

// observed is what a pod worker knows about one of its containers.
type observed struct {
	name  string
	image string
	// run is containerd's view of the current run; nil before the first create.
	run *runtime.ContainerStatus
	// waiting is why the container is not running, when it is not.
	waiting, message string
	// restarts is how many times the container was restarted.
	restarts int
	// last is how the previous run ended.
	last *events.ContainerStateTerminated
	// final: exited and will not be restarted (restartPolicy says so).
	final bool
}

// terminated describes a finished run.
func terminated(s *runtime.ContainerStatus) *events.ContainerStateTerminated {
	reason := "Completed"
	switch {
	case s.OOMKilled:
		reason = "OOMKilled"
	case s.ExitCode != 0:
		reason = "Error"
	}
	t := &events.ContainerStateTerminated{ExitCode: int32(s.ExitCode), Reason: reason}
	if !s.StartedAt.IsZero() {
		t.StartedAt = utc(s.StartedAt)
	}
	if !s.FinishedAt.IsZero() {
		t.FinishedAt = utc(s.FinishedAt)
	}
	if s.ExitCode > 128 {
		t.Signal = int32(s.ExitCode - 128)
	}
	return t
}

func utc(t time.Time) *time.Time {
	u := t.UTC().Truncate(time.Second)
	return &u
}

// podStatus computes the status a node reports, as the kubelet does: Running while any
// container runs or will be restarted after having run, Succeeded or Failed once every container
// is done for good, Pending before that.
func podStatus(cs []observed, podIP, hostIP string, started *time.Time) events.PodStatus {
	st := events.PodStatus{PodIP: podIP, HostIP: hostIP, StartTime: started}
	var running, everRan, final, failed int
	for _, c := range cs {
		s := events.ContainerStatus{Name: c.name, Image: c.image, RestartCount: int32(c.restarts)}
		if c.last != nil {
			s.LastTerminationState.Terminated = c.last
		}
		switch {
		case c.run != nil && c.run.State == runtime.StateRunning && c.waiting == "":
			s.State.Running = &events.ContainerStateRunning{StartedAt: utc(c.run.StartedAt)}
			s.Ready = true
			s.ContainerID = "containerd://" + c.run.ID
			running++
			everRan++
		case c.run != nil && c.run.State == runtime.StateExited && (c.final || c.waiting == ""):
			s.State.Terminated = terminated(c.run)
			s.ContainerID = "containerd://" + c.run.ID
			everRan++
			if c.final {
				final++
				if c.run.ExitCode != 0 {
					failed++
				}
			}
		default:
			reason := c.waiting
			if reason == "" {
				reason = ReasonContainerCreating
			}
			s.State.Waiting = &events.ContainerStateWaiting{Reason: reason, Message: c.message}
			if c.run != nil || c.last != nil {
				everRan++
			}
			if c.run != nil {
				s.ContainerID = "containerd://" + c.run.ID
			}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, s)
	}
	switch {
	case len(cs) > 0 && final == len(cs) && failed == 0:
		st.Phase = events.PodSucceeded
	case len(cs) > 0 && final == len(cs):
		st.Phase = events.PodFailed
	case running > 0 || everRan == len(cs) && len(cs) > 0:
		st.Phase = events.PodRunning
	default:
		st.Phase = events.PodPending
	}
	return st
}

// restartable reports whether a container that exited with code should be restarted.
// podStatusWithInit is podStatus with the init containers' statuses: until every init container
// has succeeded the pod is Pending (its app containers waiting PodInitializing), and Failed once
// one has failed for good; after that, the app containers decide as in podStatus.
func podStatusWithInit(inits, cs []observed, podIP, hostIP string, started *time.Time) events.PodStatus {
	st := podStatus(cs, podIP, hostIP, started)
	if len(inits) == 0 {
		return st
	}
	is := podStatus(inits, podIP, hostIP, started)
	st.InitContainerStatuses = is.ContainerStatuses
	done, failed := 0, false
	for i, o := range inits {
		if o.final && o.run != nil && o.run.ExitCode == 0 {
			done++
			st.InitContainerStatuses[i].Ready = true
		} else if o.final {
			failed = true
		}
		if s := &st.InitContainerStatuses[i]; s.State.Running != nil {
			s.Ready = false // an init container is ready when it has succeeded
		}
	}
	switch {
	case failed:
		st.Phase = events.PodFailed
	case done < len(inits):
		st.Phase = events.PodPending
	}
	initialized := events.Condition{Type: "Initialized", Status: "True"}
	if done < len(inits) {
		initialized.Status, initialized.Reason = "False", "ContainersNotInitialized"
		initialized.Message = fmt.Sprintf("containers with incomplete status: [%s]", inits[done].name)
	}
	st.Conditions = append(st.Conditions, initialized)
	return st
}

func restartable(policy string, code uint32) bool {
	switch policy {
	case events.RestartNever:
		return false
	case events.RestartOnFailure:
		return code != 0
	}
	return true
}
