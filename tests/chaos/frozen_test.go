package chaos

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/datacenter"
)

// rejectedLine is the scheduler's warning when the log refused its writes for a newer term.
var rejectedLine = regexp.MustCompile(`lost leadership: (\d+) writes rejected by a newer term`)

// TestFrozenLeader: the leading scheduler is frozen with SIGSTOP right after a rollout starts,
// for longer than its lease (leader TTL 3 s), until the standby leads and has finished the
// rollout; then a scale-up, and SIGCONT. Repeated 2 times (5 under `make chaos`).
//
// Invariant: the log rejects every write the old leader tries after the new term began (the
// count comes from its own warning; it may be 0 when its expired lease ends its term before a
// pending pass is sent); no event of a leader loop is written by the old replica after the new
// term's LeaderElected; the old replica steps down and stays a running standby; the Deployment
// ends with exactly its replicas; the checker (which also checks that every fence carries the
// newest term) finds nothing wrong.
func TestFrozenLeader(t *testing.T) {
	c := up(t, datacenter.Options{Args: map[string][]string{"skiff-bootstrap/bootstrap": {"--leader-ttl=3s"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	replicas := 12
	apply(ctx, t, c, deployment("web", replicas, "v0"))
	waitConverged(ctx, t, c, "web", replicas, "v0")
	rejected := 0
	for round := 1; round <= pick(2, 5); round++ {
		old, oldID := leader(ctx, t, c)
		version := "v" + strconv.Itoa(round)
		apply(ctx, t, c, deployment("web", replicas, version))
		frozen := c.Signal(old, datacenter.Scheduler, syscall.SIGSTOP)
		var next *datacenter.VM
		var nextID string
		if !cluster.PollContext(ctx, func() bool {
			vm, id, err := c.Leader(ctx)
			next, nextID = vm, id
			return err == nil && id != oldID
		}) {
			t.Fatalf("round %d: no standby took over from the frozen %s", round, old.Name)
		}
		// It took the key first and appends its term right after.
		var term *events.Event
		if !cluster.PollContext(ctx, func() bool {
			term = firstEvent(ctx, t, c, frozen, func(ev *events.Event) bool {
				_, ok := ev.Data.(*events.LeaderElected)
				return ok && ev.Actor == "scheduler/"+nextID
			})
			return term != nil
		}) {
			t.Fatalf("round %d: %s leads but wrote no LeaderElected", round, next.Name)
		}
		t.Logf("round %d: froze the leader on %s; %s's term began %s later", round, old.Name, next.Name, after(term, frozen))
		waitConverged(ctx, t, c, "web", replicas, version)
		replicas += 2
		apply(ctx, t, c, deployment("web", replicas, version))

		thawed := time.Now()
		before := c.Task(old, datacenter.Scheduler).Log()
		if err := c.Task(old, datacenter.Scheduler).Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		// It steps down: its log says its term ended, and it runs on as a standby.
		var tail string
		if !cluster.PollContext(ctx, func() bool {
			tail = strings.TrimPrefix(c.Task(old, datacenter.Scheduler).Log(), before)
			return strings.Contains(tail, "leadership ended") || rejectedLine.MatchString(tail)
		}) {
			t.Fatalf("round %d: the thawed scheduler on %s never said its leadership ended:\n%s", round, old.Name, tail)
		}
		n := 0
		if m := rejectedLine.FindStringSubmatch(tail); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		rejected += n
		done := waitConverged(ctx, t, c, "web", replicas, version)
		t.Logf("RECOVERY: round %d: the thawed leader stepped down, %d of its writes rejected by the log; %d pods ready %v after the thaw", round, n, replicas, done.Sub(thawed).Round(time.Millisecond))
		if !c.Task(old, datacenter.Scheduler).Running() {
			t.Fatalf("round %d: the thawed scheduler on %s exited", round, old.Name)
		}
		if vm, id, err := c.Leader(ctx); err != nil || id == oldID {
			t.Errorf("round %d: after the thaw the leader is %v %q (%v), want not the thawed one", round, vm, id, err)
		}
		// Nothing a leader loop decides was written by the old replica once the new term began.
		if stale := firstEvent(ctx, t, c, term.Time, func(ev *events.Event) bool {
			return ev.Seq > term.Seq && ev.Actor == "scheduler/"+oldID && leaderLoopEvent(ev)
		}); stale != nil {
			t.Errorf("round %d: the old leader wrote %s on %s (seq %d) after the new term began (seq %d)", round, stale.Type, stale.Subject, stale.Seq, term.Seq)
		}
	}
	t.Logf("writes of thawed leaders rejected by the log: %d", rejected)
	checkNodes(ctx, t, c)
	checkLog(ctx, t, c)
}

// leaderLoopEvent reports whether ev is something only the leader's loops write (scheduling,
// the controllers, node lifecycle), not a user's command, which every replica's admission takes.
func leaderLoopEvent(ev *events.Event) bool {
	switch ev.Data.(type) {
	case *events.LeaderWrote, *events.PodCreated, *events.PodScheduled, *events.PodUnschedulable, *events.PodBound,
		*events.PodStopRequested, *events.PodDeletionRequested, *events.PodDeleted, *events.EndpointsUpdated, *events.DeploymentRolloutProgressed,
		*events.NodeReady, *events.NodeNotReady, *events.NodePodCIDRAssigned:
		return true
	}
	return false
}
