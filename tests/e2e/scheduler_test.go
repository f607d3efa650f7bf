package e2e_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
)

// With two scheduler replicas, killing the leader with SIGKILL hands the control loops to the
// other, which schedules a new pod within 15 s of the kill.
func TestStandbySchedulerTakesOver(t *testing.T) {
	c := cluster.New(t, cluster.Options{Schedulers: 2})
	var leader string
	c.WaitFor("a scheduler leads", func() bool {
		var err error
		leader, err = c.Leader()
		return err == nil && leader != ""
	})
	// The leader schedules: a first pod proves the cluster works before anything is killed.
	c.Apply(podSpec{name: "before", args: []string{"sleep"}, grace: 1}.manifest())
	waitRunning(t, c, "before")

	killed := c.KillScheduler(leader, syscall.SIGKILL)
	// Admission runs in every replica, so the survivor accepts the pod at once; scheduling
	// waits for it to take the leadership over.
	c.Apply(podSpec{name: "after", args: []string{"sleep"}, grace: 1}.manifest())
	pod := waitRunning(t, c, "after")

	evs := c.PodEvents("default", "after")
	scheduled := firstEvent(evs, "PodScheduled", nil)
	if scheduled == nil {
		t.Fatal("no PodScheduled event for the pod applied after the kill")
	}
	took := scheduled.Time.Sub(killed)
	running := firstEvent(evs, "PodStatusReported", func(ev *events.Event) bool {
		return ev.Data.(*events.PodStatusReported).Status.Phase == events.PodRunning
	})
	t.Logf("killed leader %s; %s scheduled the new pod %v after the kill (running after %v)",
		leader, scheduled.Actor, ms(took), ms(running.Time.Sub(killed)))
	if took > 15*time.Second {
		t.Errorf("the standby scheduled a new pod %v after the leader was killed, want within 15s", took)
	}
	if scheduled.Actor == "scheduler/"+leader || !strings.HasPrefix(scheduled.Actor, "scheduler/") {
		t.Errorf("PodScheduled written by %q, want the surviving replica", scheduled.Actor)
	}
	now, err := c.Leader()
	if err != nil || now == "" || now == leader {
		t.Errorf("leader after the kill is %q (%v), want the survivor", now, err)
	}
	if pod.Spec.NodeName != "node1" {
		t.Errorf("pod on %q, want node1", pod.Spec.NodeName)
	}

	// Both replicas' decisions come out the same when made again from the log, by the CLI.
	out, err := c.Skiff("events", "verify")
	if err != nil || !strings.Contains(out, "2 the same, 0 different") {
		t.Errorf("skiff events verify: %v\n%s", err, out)
	}
	out, err = c.Skiff("explain", "pod", "after", "--replay")
	if err != nil || !strings.Contains(out, "Scheduled at sequence") || !strings.Contains(out, "picks node1 again: the same node") ||
		!strings.Contains(out, scheduled.Actor) {
		t.Errorf("skiff explain pod after --replay: %v\n%s", err, out)
	}
}
