package e2e_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
)

// The node agent killed with SIGKILL five times, a few hundred milliseconds apart, while a
// 30-pod Deployment rolls out onto its node: some kills land between a sandbox's creation and
// its start. Invariant: the rollout still completes with exactly 30 pods Running, each with one
// running sandbox and one running container on the node, no task left stopped or created.
// (Issue 8's finding: the agent tried to recreate such sandboxes under the same ID forever.)
//
// With --sandbox pinned there is no sandbox container: the pod's namespaces are pinned files,
// which a restarted agent must find and keep for the pods it still runs, and a kill may leave
// half made.
func TestAgentKilledDuringRolloutLeavesNoStaleSandbox(t *testing.T) {
	for _, tc := range []struct {
		sandbox     string
		tasksPerPod int
	}{{"pause", 2}, {"pinned", 1}} {
		t.Run("sandbox="+tc.sandbox, func(t *testing.T) {
			agentKilledDuringRollout(t, tc.sandbox, tc.tasksPerPod)
		})
	}
}

func agentKilledDuringRollout(t *testing.T, sandbox string, tasksPerPod int) {
	const replicas = 30
	// Debug logs: a failure here is rare (a pod left not running after the kills, once in about
	// twenty runs, 5 Dec) and its log is the only witness of where the kill landed.
	c := cluster.New(t, cluster.Options{AgentArgs: []string{"--sandbox", sandbox}, LogLevel: "debug"})
	manifest := strings.Replace(echoDeployment, "replicas: 3", "replicas: 30", 1)
	manifest = strings.Replace(manifest, "cpu: 50m", "cpu: 10m", 1)
	start := time.Now()
	c.Apply(manifest)

	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
	for i := range 5 {
		// Kill while the agent is creating pods: wait for the first sandbox of this round.
		before := len(runningEcho(c))
		c.WaitFor("the agent to be starting pods", func() bool {
			ts, err := c.Tasks("node1")
			return err == nil && len(ts) > tasksPerPod*before || len(runningEcho(c)) == replicas
		})
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond) // the fault's timing, not synchronisation
		c.KillAgent("node1", syscall.SIGKILL)
		t.Logf("kill %d: %d pods were running", i+1, len(runningEcho(c)))
		c.StartAgent("node1")
	}
	waitStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if !cluster.PollContext(ctx, func() bool { return len(runningEcho(c)) == replicas }) {
		all, _ := c.PodsErr()
		for _, p := range all {
			if !running(p) {
				t.Logf("not running: %s on %q: %+v", p.Metadata.Name, p.Spec.NodeName, p.Status)
			}
		}
		t.Fatalf("%d of %d echo pods running 3m after the kills", len(runningEcho(c)), replicas)
	}
	took := time.Since(waitStart)
	t.Logf("all %d pods running %v after the apply (%v after the last restart)", replicas, time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))

	pods := runningEcho(c)
	if len(pods) != replicas {
		t.Fatalf("%d echo pods running, want %d", len(pods), replicas)
	}
	all, err := c.PodsErr()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != replicas {
		t.Errorf("%d pods in the cluster, want exactly %d", len(all), replicas)
	}
	var tasks []cluster.Task
	c.WaitFor("one running container per pod (and one sandbox with pause), nothing else", func() bool {
		tasks, err = c.Tasks("node1")
		if err != nil || len(tasks) != tasksPerPod*replicas {
			return false
		}
		for _, ts := range tasks {
			if ts.Status != "RUNNING" {
				return false
			}
		}
		return true
	})
	if sandbox == "pinned" {
		pins, _ := os.ReadDir(c.Node("node1").PinDir())
		if len(pins) != replicas {
			t.Errorf("%d pods' namespaces pinned, want %d", len(pins), replicas)
		}
	}
	log := c.Node("node1").AgentLog()
	t.Logf("sandboxes found left not running and replaced: %d (depends on where the kills landed)",
		strings.Count(log, "removing a sandbox that is not running"))
	if strings.Contains(log, "already exists") {
		i := strings.Index(log, "already exists")
		t.Errorf("the agent's log still reports a sandbox that already exists: ...%s", log[max(0, i-200):i+20])
	}
}

// runningEcho lists the echo Deployment's Running pods.
func runningEcho(c *cluster.Cluster) []events.Pod {
	all, err := c.PodsErr()
	if err != nil {
		return nil
	}
	var out []events.Pod
	for _, p := range all {
		if strings.HasPrefix(p.Metadata.Name, "echo-") && running(p) {
			out = append(out, p)
		}
	}
	return out
}

// Poison on the log, appended with admin rights: a payload that is not JSON, an unknown type, a
// version from the future, an oversized one (over events.MaxEventBytes), and an event on a
// subject of another kind.
// Invariant: every service reports and skips them and keeps going (a Deployment and a Service
// applied afterwards run and route), and `skiff events log` shows each where it sits.
func TestPoisonEventsAreReportedAndSkipped(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	c.StartNetProxies()
	js := c.Store().JetStream()
	ctx := context.Background()
	poison := cluster.Poison()
	var seqs []uint64
	for _, p := range poison {
		ack, err := js.Publish(ctx, p.Subject, []byte(p.Data))
		if err != nil {
			t.Fatalf("append poison on %s: %v", p.Subject, err)
		}
		seqs = append(seqs, ack.Sequence)
	}

	c.Apply(strings.Replace(echoDeployment, "name: echo\nspec:", "name: echo\nspec:", 1) + "---\n" + `apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector:
    app: echo
  ports:
    - port: 80
      targetPort: 8080
`)
	c.WaitFor("3 echo pods running after the poison", func() bool { return len(runningEcho(c)) == 3 })
	var vip string
	for _, ev := range c.Events(events.ObjectSubject(events.KindService, "default", "echo")) {
		if a, ok := ev.Data.(*events.ServiceApplied); ok {
			vip = a.Service.Spec.ClusterIP
		}
	}
	client := &http.Client{Transport: &http.Transport{DialContext: cluster.DialIn(c.Node("node1").NetnsPath(), 2*time.Second)}, Timeout: 2 * time.Second}
	c.WaitFor("the Service answering from node1", func() bool {
		resp, err := client.Get("http://" + vip + "/after-poison")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	out, err := c.Skiff("events", "log")
	if err != nil {
		t.Fatal(err)
	}
	for _, why := range cluster.UnmarkedPoison(out, seqs) {
		t.Errorf("poison not marked: %s", why)
	}
	for _, p := range []string{c.Node("node1").AgentLog(), c.Node("node1").NetProxyLog()} {
		if strings.Contains(p, "panic") {
			t.Errorf("a service panicked on poison:\n%s", p)
		}
	}
}
