package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/datacenter"
)

// containerIDs maps each Running pod of app on node to its containers' IDs and restart counts.
func containerIDs(all []events.Pod, app, node string) map[string]string {
	out := map[string]string{}
	for _, p := range all {
		if p.Metadata.Labels["app"] != app || p.Spec.NodeName != node || !podReady(p) {
			continue
		}
		var ids []string
		for _, cs := range p.Status.ContainerStatuses {
			ids = append(ids, fmt.Sprintf("%s#%d", cs.ContainerID, cs.RestartCount))
		}
		out[p.Metadata.Name] = strings.Join(ids, ",")
	}
	return out
}

// adopted asserts that every pod in before still runs with the same containers and restart
// counts: a restarted agent adopts what runs instead of starting it again.
func adopted(ctx context.Context, t *testing.T, c *datacenter.Cluster, app, node string, before map[string]string) {
	t.Helper()
	all, err := pods(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	now := containerIDs(all, app, node)
	for name, ids := range before {
		if now[name] != ids {
			t.Errorf("pod %s on %s: containers %q before, %q after (want the same IDs and restart counts)", name, node, ids, now[name])
		}
	}
}

// TestAgentKilledWhilePodsStart: `kill -9` of vm1's node agent while a Deployment of 20 pods
// starts on the three VMs, restarted 300 ms later.
//
// Invariant: all 20 pods run; those that ran on vm1 before the kill keep their containers (same
// IDs, no restart); every node runs exactly the log's pods; the log passes the checker.
func TestAgentKilledWhilePodsStart(t *testing.T) {
	c := up(t, datacenter.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const replicas = 20
	vm := c.VMs[0]
	apply(ctx, t, c, deployment("web", replicas, "v1"))
	var before map[string]string
	if !cluster.PollContext(ctx, func() bool {
		all, err := pods(ctx, c)
		before = containerIDs(all, "web", vm.Name)
		return err == nil && len(before) > 0
	}) {
		t.Fatal("no pod ran on vm1")
	}
	killed := c.Signal(vm, datacenter.NodeAgent, syscall.SIGKILL)
	t.Logf("killed %s's agent with %d of its pods running", vm.Name, len(before))
	sleepCtx(ctx, 300*time.Millisecond)
	c.Restart(vm, datacenter.NodeAgent)
	done := waitConverged(ctx, t, c, "web", replicas, "v1")
	t.Logf("RECOVERY: 20 pods ready %v after the kill", done.Sub(killed).Round(time.Millisecond))
	adopted(ctx, t, c, "web", vm.Name, before)
	checkNodes(ctx, t, c)
	checkLog(ctx, t, c)
}

// TestContainerdRestarted: vm2's containerd is killed with SIGKILL while its pods run, and
// started again; then the Deployment is scaled up.
//
// Invariant: the pods keep running through it (their shims outlive containerd) with the same
// containers; the agent goes on with the new containerd: the scale-up's pods start on vm2 too;
// every node runs exactly the log's pods.
func TestContainerdRestarted(t *testing.T) {
	c := up(t, datacenter.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	vm := c.VMs[1]
	apply(ctx, t, c, deployment("web", 6, "v1"))
	waitConverged(ctx, t, c, "web", 6, "v1")
	all, err := pods(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	before := containerIDs(all, "web", vm.Name)
	killed := c.Signal(vm, datacenter.Containerd, syscall.SIGKILL)
	c.Restart(vm, datacenter.Containerd)
	t.Logf("restarted %s's containerd with %d pods running", vm.Name, len(before))
	apply(ctx, t, c, deployment("web", 12, "v1"))
	done := waitConverged(ctx, t, c, "web", 12, "v1")
	t.Logf("RECOVERY: scaled to 12 pods, all ready %v after the kill", done.Sub(killed).Round(time.Millisecond))
	adopted(ctx, t, c, "web", vm.Name, before)
	all, err = pods(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(containerIDs(all, "web", vm.Name)); n <= len(before) {
		t.Errorf("%s runs %d pods after the scale-up, %d before: no new pod started on the restarted containerd", vm.Name, n, len(before))
	}
	checkNodes(ctx, t, c)
	checkLog(ctx, t, c)
}

// TestNetProxyKilledDuringServiceChanges: 1,000 Services (200 in the short form) are applied in
// four batches in front of a Deployment; vm3's net proxy is killed with SIGKILL after the
// second batch and started again after the third.
//
// Invariant: once the proxy has caught up, vm3's table holds exactly the log's services: every
// ClusterIP and port, each with exactly the ready endpoints the log lists, or in the
// no-endpoints set; a Service's ClusterIP answers from vm3.
func TestNetProxyKilledDuringServiceChanges(t *testing.T) {
	c := up(t, datacenter.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	vm := c.VMs[2]
	apply(ctx, t, c, deployment("web", 3, "v1"))
	waitConverged(ctx, t, c, "web", 3, "v1")
	total := pick(200, 1000)
	const batches = 4
	var killed time.Time
	for b := 0; b < batches; b++ {
		var m strings.Builder
		for i := b * total / batches; i < (b+1)*total/batches; i++ {
			fmt.Fprintf(&m, "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%04d\nspec:\n  selector:\n    app: web\n  ports:\n    - name: http\n      port: %d\n      targetPort: http\n---\n", i, 80+i%3)
		}
		f := filepath.Join(c.Run.Dir, fmt.Sprintf("services-%d.yaml", b))
		if err := os.WriteFile(f, []byte(m.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AsAlice(ctx, "apply", "-f", f); err != nil {
			t.Fatal(err)
		}
		switch b {
		case 1:
			killed = c.Signal(vm, datacenter.NetProxy, syscall.SIGKILL)
		case 2:
			c.Restart(vm, datacenter.NetProxy)
		}
	}
	var diff string
	if !cluster.PollContext(ctx, func() bool {
		want, err := tableOfLog(ctx, c)
		if err != nil {
			diff = err.Error()
			return false
		}
		got, err := tableOf(ctx, vm)
		if err != nil {
			diff = err.Error()
			return false
		}
		diff = cmp.Diff(want, got)
		return diff == "" && len(want) >= total
	}) {
		t.Fatalf("%s's table does not hold the log's services (-log +table):\n%s", vm.Name, diff)
	}
	t.Logf("RECOVERY: %s's table equal to the log's %d services %v after the kill", vm.Name, total, time.Since(killed).Round(time.Millisecond))
	vip := clusterIP(ctx, t, c, fmt.Sprintf("svc-%04d", total-1))
	client := vm.HTTPClient(2 * time.Second)
	var askErr error
	if !cluster.PollContext(ctx, func() bool {
		_, askErr = cluster.AskEcho(client, fmt.Sprintf("%s:%d", vip, 80+(total-1)%3), "/hello")
		return askErr == nil
	}) {
		t.Errorf("the last Service's ClusterIP does not answer from %s: %v", vm.Name, askErr)
	}
	checkLog(ctx, t, c)
}

// tableOf reads vm's net proxy table as "VIP proto port → endpoints" lines.
func tableOf(ctx context.Context, vm *datacenter.VM) (map[string]string, error) {
	out, err := vm.Exec(ctx, nil, "", "nft", "-j", "list", "table", "ip", cluster.NetProxyTable)
	if err != nil {
		return nil, err
	}
	r, err := cluster.ParseServiceRules([]byte(out))
	if err != nil {
		return nil, err
	}
	table := map[string]string{}
	for p := range r.Verdicts {
		var eps []string
		for _, ep := range r.Endpoints[p] {
			eps = append(eps, ep)
		}
		sort.Strings(eps)
		table[p.String()] = strings.Join(eps, ",")
	}
	for p := range r.NoEndpoints {
		table[p.String()] = "(none)"
	}
	return table, nil
}

// tableOfLog is what every proxy's table must hold, from the fold of the whole log.
func tableOfLog(ctx context.Context, c *datacenter.Cluster) (map[string]string, error) {
	s := state.New()
	err := c.Store.Read(ctx, store.ReadOptions{}, func(ev *events.Event) error { return s.Apply(ev) })
	if err != nil {
		return nil, err
	}
	table := map[string]string{}
	for key, svc := range s.Services {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == "None" {
			continue
		}
		eps := s.Endpoints[key]
		for _, p := range svc.Spec.Ports {
			proto := strings.ToLower(p.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			var list []string
			if eps != nil {
				for _, a := range eps.Addresses {
					for _, ep := range a.Ports {
						if ep.Name == p.Name {
							list = append(list, fmt.Sprintf("%s:%d", a.IP, ep.Port))
						}
					}
				}
			}
			sort.Strings(list)
			v := strings.Join(list, ",")
			if v == "" {
				v = "(none)"
			}
			table[cluster.ServicePort{VIP: svc.Spec.ClusterIP, Protocol: proto, Port: int(p.Port)}.String()] = v
		}
	}
	return table, nil
}

// sleepCtx waits d or until ctx ends: the pause between two faults, not a synchronisation.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}
