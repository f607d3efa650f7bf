package chaos

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"skiff.dev/tests/datacenter"
)

// TestLeaderKilledDuringRollout: `kill -9` of the leading scheduler, again and again (5 times in
// the short form, 20 under `make chaos`), a few hundred milliseconds apart, while a Deployment
// of 30 pods is created and then rolled out to a new version. Nomad's restart in place is
// played by starting the killed replica again: at once after even kills (it finds its own key
// and leads on), and after odd ones only once the standby has taken over (leader TTL 3 s).
//
// Invariant: the rollout completes with exactly 30 pods, all of the new version; no pod is
// bound twice; every node runs exactly the containers and holds exactly the addresses of the
// pods the log places there (checkNodes); the log passes the checker.
func TestLeaderKilledDuringRollout(t *testing.T) {
	c := up(t, datacenter.Options{Args: map[string][]string{"skiff-bootstrap/bootstrap": {"--leader-ttl=3s"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const replicas = 30
	kills := pick(5, 20)

	apply(ctx, t, c, deployment("web", replicas, "v1"))
	var last time.Time
	for i := 0; i < kills; i++ {
		if i == kills/3 {
			apply(ctx, t, c, deployment("web", replicas, "v2"))
		}
		vm, id := leader(ctx, t, c)
		sleepCtx(ctx, time.Duration(200+rand.IntN(500))*time.Millisecond)
		last = c.Signal(vm, datacenter.Scheduler, syscall.SIGKILL)
		t.Logf("kill %d: the leader %s on %s", i+1, id[:8], vm.Name)
		if i%2 == 1 {
			next, _ := leader(ctx, t, c)
			t.Logf("kill %d: %s took over %v after the kill", i+1, next.Name, time.Since(last).Round(time.Millisecond))
		}
		c.Restart(vm, datacenter.Scheduler)
	}
	done := waitConverged(ctx, t, c, "web", replicas, "v2")
	t.Logf("RECOVERY: %d leader kills; 30 pods of v2 ready %v after the last kill", kills, done.Sub(last).Round(time.Millisecond))
	checkNodes(ctx, t, c)
	checkLog(ctx, t, c)
}
