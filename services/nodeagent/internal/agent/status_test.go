package agent

import (
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/services/nodeagent/internal/runtime"
)

func TestPodStatus(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	running := &runtime.ContainerStatus{ID: "c1", State: runtime.StateRunning, StartedAt: t0}
	exited0 := &runtime.ContainerStatus{ID: "c1", State: runtime.StateExited, ExitCode: 0, StartedAt: t0, FinishedAt: t0.Add(time.Second)}
	exited1 := &runtime.ContainerStatus{ID: "c1", State: runtime.StateExited, ExitCode: 1, StartedAt: t0, FinishedAt: t0.Add(time.Second)}
	oom := &runtime.ContainerStatus{ID: "c1", State: runtime.StateExited, ExitCode: 137, OOMKilled: true, StartedAt: t0, FinishedAt: t0.Add(time.Second)}
	for _, tc := range []struct {
		name       string
		cs         []observed
		phase      string
		state      string // running, waiting:<reason>, terminated:<reason>
		ready      bool
		restarts   int32
		lastReason string
	}{
		{"creating", []observed{{name: "a"}}, events.PodPending, "waiting:ContainerCreating", false, 0, ""},
		{"image missing", []observed{{name: "a", waiting: ReasonErrImageNotFound, message: "no image"}}, events.PodPending, "waiting:ErrImageNotFound", false, 0, ""},
		{"running", []observed{{name: "a", run: running}}, events.PodRunning, "running", true, 0, ""},
		{"crash looping", []observed{{name: "a", run: exited1, waiting: ReasonCrashLoopBackOff, restarts: 3, last: terminated(exited1)}}, events.PodRunning, "waiting:CrashLoopBackOff", false, 3, "Error"},
		{"completed for good", []observed{{name: "a", run: exited0, final: true}}, events.PodSucceeded, "terminated:Completed", false, 0, ""},
		{"failed for good", []observed{{name: "a", run: exited1, final: true}}, events.PodFailed, "terminated:Error", false, 0, ""},
		{"oom killed, will not restart", []observed{{name: "a", run: oom, final: true}}, events.PodFailed, "terminated:OOMKilled", false, 0, ""},
		{"restarted after oom", []observed{{name: "a", run: running, restarts: 1, last: terminated(oom)}}, events.PodRunning, "running", true, 1, "OOMKilled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := podStatus(tc.cs, "10.88.0.2", "10.0.0.1", &t0)
			if st.Phase != tc.phase {
				t.Errorf("phase = %s, want %s", st.Phase, tc.phase)
			}
			c := st.ContainerStatuses[0]
			var state string
			switch {
			case c.State.Running != nil:
				state = "running"
			case c.State.Waiting != nil:
				state = "waiting:" + c.State.Waiting.Reason
			case c.State.Terminated != nil:
				state = "terminated:" + c.State.Terminated.Reason
			}
			if state != tc.state || c.Ready != tc.ready || c.RestartCount != tc.restarts {
				t.Errorf("container = %s ready %v restarts %d; want %s %v %d", state, c.Ready, c.RestartCount, tc.state, tc.ready, tc.restarts)
			}
			last := ""
			if c.LastTerminationState.Terminated != nil {
				last = c.LastTerminationState.Terminated.Reason
			}
			if last != tc.lastReason {
				t.Errorf("last termination = %q, want %q", last, tc.lastReason)
			}
		})
	}
}

func TestRestartable(t *testing.T) {
	for _, tc := range []struct {
		policy string
		code   uint32
		want   bool
	}{
		{events.RestartAlways, 0, true}, {events.RestartAlways, 1, true},
		{events.RestartOnFailure, 0, false}, {events.RestartOnFailure, 2, true},
		{events.RestartNever, 0, false}, {events.RestartNever, 1, false},
	} {
		if got := restartable(tc.policy, tc.code); got != tc.want {
			t.Errorf("restartable(%s, %d) = %v", tc.policy, tc.code, got)
		}
	}
}
