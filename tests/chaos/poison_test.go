package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/tests/cluster"
	"skiff.dev/tests/datacenter"
)

// TestPoisonDuringRollout: an admin appends one of each kind of poison (cluster.Poison) with a
// raw publish while a Deployment of 12 pods rolls out to a new version.
//
// Invariant: every service on every VM reports and skips them and keeps going: the rollout
// completes, the Service answers from every VM, no process exited; `skiff events log` marks
// each poison where it sits; the checker finds exactly these as poison and nothing else wrong.
func TestPoisonDuringRollout(t *testing.T) {
	c := up(t, datacenter.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	apply(ctx, t, c, deployment("web", 12, "v1"))
	waitConverged(ctx, t, c, "web", 12, "v1")
	apply(ctx, t, c, deployment("web", 12, "v2"))
	js, err := jetstream.New(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	poison := cluster.Poison()
	var seqs []uint64
	for _, p := range poison {
		ack, err := js.Publish(ctx, p.Subject, []byte(p.Data))
		if err != nil {
			t.Fatalf("append poison (%s) on %s: %v", p.Why, p.Subject, err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	poisoned := time.Now()
	done := waitConverged(ctx, t, c, "web", 12, "v2")
	t.Logf("RECOVERY: rollout complete %v after the poison", done.Sub(poisoned).Round(time.Millisecond))
	vip := clusterIP(ctx, t, c, "web")
	for _, vm := range c.VMs {
		client := vm.HTTPClient(2 * time.Second)
		var askErr error
		if !cluster.PollContext(ctx, func() bool {
			_, askErr = cluster.AskEcho(client, vip+":80", "/after-poison")
			return askErr == nil
		}) {
			t.Errorf("the Service does not answer from %s after the poison: %v", vm.Name, askErr)
		}
	}
	out, err := c.AsAlice(ctx, "events", "log")
	if err != nil {
		t.Fatal(err)
	}
	for _, why := range cluster.UnmarkedPoison(out, seqs) {
		t.Errorf("poison not marked: %s", why)
	}
	for _, vm := range c.VMs {
		for _, name := range []string{datacenter.Scheduler, datacenter.NodeAgent, datacenter.NetProxy} {
			if p := c.Task(vm, name); p != nil && !p.Running() {
				t.Errorf("%s's %s exited after the poison:\n%s", vm.Name, name, p.Log())
			}
		}
	}
	r := checkLogAllowing(ctx, t, c, seqs)
	t.Logf("checker found the %d poison messages: %v", len(r.Poison), r.Poison)
}
