package datacenter

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/store"
	"skiff.dev/tests/cluster"
)

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }

// TestDatacenterFromNomadJobspecs runs deploy/nomad's jobs on three simulated VMs as the README
// walks an operator through it, then deploys examples/echo.yaml and reaches its ClusterIP from
// every VM.
func TestDatacenterFromNomadJobspecs(t *testing.T) {
	cluster.RequireRoot(t, "makes network and mount namespaces, runs containerd, runc and CNI plugins")
	total := time.Now()
	phase := time.Now()
	lap := func(name string) {
		t.Logf("phase %-28s %6.2fs", name, time.Since(phase).Seconds())
		phase = time.Now()
	}

	c := Up(t, Options{Lap: lap})
	dc := c.Datacenter
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	for name, cfg := range c.Bootstrapped {
		if cfg.Replicas != 3 {
			t.Errorf("stream %s has %d replicas after bootstrap, want 3", name, cfg.Replicas)
		}
	}
	// The agents and proxies attached with node credentials and changed nothing of the log.
	if diff := cmp.Diff(c.Bootstrapped, c.StreamConfigs(ctx)); diff != "" {
		t.Errorf("stream and bucket configs changed after the schedulers, agents and proxies started (-bootstrap +now):\n%s", diff)
	}

	// README step 7, as a user: the echo app.
	if _, err := c.AsAlice(ctx, "apply", "-f", filepath.Join(repoRoot(), "examples", "echo.yaml")); err != nil {
		t.Fatal(err)
	}
	st := c.Store
	var running map[string]string // pod → node
	if !cluster.PollContext(ctx, func() bool {
		running = runningPods(ctx, t, st)
		return len(running) == 3
	}) {
		t.Fatalf("echo pods running: %v, want 3", running)
	}
	t.Logf("echo pods running: %v", running)
	onNodes := map[string]bool{}
	for _, n := range running {
		onNodes[n] = true
	}
	if len(onNodes) != 3 {
		t.Errorf("echo pods run on %d nodes (%v), want one on each of the 3", len(onNodes), running)
	}
	lap("echo running")

	vip := clusterIP(ctx, t, st, "echo")
	lap("ClusterIP from the log")
	for _, vm := range dc.VMs {
		hc := vm.HTTPClient(2 * time.Second)
		var pod string
		var lastErr, firstErr error
		asked := time.Now()
		if !cluster.PollContext(ctx, func() bool {
			pod, lastErr = cluster.AskEcho(hc, vip+":80", "/hello")
			if firstErr == nil {
				firstErr = lastErr
			}
			return lastErr == nil
		}) {
			t.Fatalf("from %s: no answer from http://%s:80/hello: %v", vm.Name, vip, lastErr)
		}
		if firstErr != nil {
			t.Logf("from %s: first answer after %v; the first attempt failed: %v\n%s", vm.Name, time.Since(asked).Round(time.Millisecond), firstErr, c.Task(vm, NetProxy).Log())
		}
		got := map[string]int{pod: 1}
		for i := 0; i < 5; i++ {
			p, err := cluster.AskEcho(hc, vip+":80", "/hello")
			if err != nil {
				t.Errorf("from %s: %v", vm.Name, err)
				continue
			}
			got[p]++
		}
		for p := range got {
			if _, ok := running[p]; !ok {
				t.Errorf("from %s: answer from %q, which is not a running echo pod (%v)", vm.Name, p, running)
			}
		}
		t.Logf("from %s: ClusterIP %s answered by %v", vm.Name, vip, got)
	}
	lap("ClusterIP from every VM")

	// Prometheus scrapes every part where the jobspecs' metrics ports say: each VM's agent and
	// proxy, and each scheduler replica's VM.
	schedVMs := map[string]bool{}
	for _, vm := range c.Schedulers() {
		schedVMs[vm.Name] = true
	}
	for _, vm := range dc.VMs {
		scrapes := []struct{ port, metric string }{{"9181", "skiff_nodeagent_pods_running"}, {"9182", "skiff_netproxy_full_syncs_total"}}
		if schedVMs[vm.Name] {
			scrapes = append(scrapes, struct{ port, metric string }{"9180", "skiff_scheduler_pods_bound_total"})
		}
		for _, sc := range scrapes {
			body, err := getText(vm.HTTPClient(2*time.Second), "http://"+vm.Address+":"+sc.port+"/metrics")
			if err != nil || !strings.Contains(body, "\n"+sc.metric) {
				t.Errorf("from %s: metrics on port %s: %v; want %s in:\n%.400s", vm.Name, sc.port, err, sc.metric, body)
			}
		}
	}
	if len(schedVMs) != 2 {
		t.Errorf("scheduler replicas on %d VMs, want 2", len(schedVMs))
	}
	lap("metrics from every part")

	checkActors(ctx, t, st, dc.VMs)
	// Nomad would have restarted a task that exited; none may have needed it.
	if gone := dc.exited(); len(gone) > 0 {
		t.Errorf("tasks that exited: %v", gone)
	}
	if diff := cmp.Diff(c.Bootstrapped, c.StreamConfigs(ctx)); diff != "" {
		t.Errorf("stream and bucket configs changed while the app was deployed (-bootstrap +now):\n%s", diff)
	}
	lap("checks")
	t.Logf("total %.2fs", time.Since(total).Seconds())
}

// runningPods are the echo pods whose last status report says Running, with their nodes.
func runningPods(ctx context.Context, t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	last := map[string]*events.Event{}
	err := st.Read(ctx, store.ReadOptions{Filters: []string{events.SubjectRoot + "." + events.KindStatus + ".>"}}, func(ev *events.Event) error {
		if _, ok := ev.Data.(*events.PodStatusReported); ok {
			last[ev.Object.Name] = ev
		}
		return nil
	})
	if err != nil {
		t.Logf("read the log: %v", err)
		return nil
	}
	out := map[string]string{}
	for name, ev := range last {
		s, _ := events.ParseSubject(ev.Subject)
		if ev.Data.(*events.PodStatusReported).Status.Phase == events.PodRunning && strings.HasPrefix(name, "echo-") {
			out[name] = s.Node
		}
	}
	return out
}

// clusterIP is the ClusterIP the log holds for Service name.
func clusterIP(ctx context.Context, t *testing.T, st *store.Store, name string) string {
	t.Helper()
	vip := ""
	err := st.Read(ctx, store.ReadOptions{Filters: []string{events.ObjectSubject(events.KindService, "default", name)}}, func(ev *events.Event) error {
		if a, ok := ev.Data.(*events.ServiceApplied); ok {
			vip = a.Service.Spec.ClusterIP
		}
		return nil
	})
	if err != nil || vip == "" {
		t.Fatalf("no ClusterIP for service %s in the log: %v", name, err)
	}
	return vip
}

// checkActors asserts who wrote what: the deployment by alice, each status by the node its
// subject names, and every node's reports among them.
func checkActors(ctx context.Context, t *testing.T, st *store.Store, vms []*VM) {
	t.Helper()
	applied := 0
	reporters := map[string]bool{}
	err := st.Read(ctx, store.ReadOptions{Raw: true}, func(ev *events.Event) error {
		switch ev.Type {
		case "DeploymentApplied":
			applied++
			if ev.Actor != "user/alice" {
				t.Errorf("DeploymentApplied seq %d written by %q, want user/alice", ev.Seq, ev.Actor)
			}
		case "PodStatusReported":
			s, err := events.ParseSubject(ev.Subject)
			if err != nil {
				t.Errorf("PodStatusReported seq %d: %v", ev.Seq, err)
				return nil
			}
			if ev.Actor != "node/"+s.Node {
				t.Errorf("PodStatusReported seq %d on %s written by %q, want node/%s", ev.Seq, ev.Subject, ev.Actor, s.Node)
			}
			reporters[s.Node] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	if applied == 0 {
		t.Errorf("no DeploymentApplied in the log")
	}
	var want, got []string
	for _, vm := range vms {
		want = append(want, vm.Name)
	}
	for n := range reporters {
		got = append(got, n)
	}
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes that reported pod status (-want +got):\n%s", diff)
	}
}

// getText GETs url and returns the body of a 200 answer.
func getText(hc *http.Client, url string) (string, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}
