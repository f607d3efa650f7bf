package datacenter

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/store"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/nomad"
)

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }

// repoRoot is the repository's root: this file is tests/datacenter/datacenter_test.go.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// logBuckets are the streams behind what skiff cluster bootstrap creates: the log, the lease
// and leader buckets and the image store.
var logStreams = []string{"SKIFF", "KV_skiff-leases", "KV_skiff-leader", "OBJ_skiff-images"}

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

	// README step 1: build the programs.
	b := cluster.Build(t)
	bins := map[string]string{
		"skiff": b.Skiff, "skiff-scheduler": b.Scheduler, "skiff-nodeagent": b.NodeAgent,
		"skiff-netproxy": cluster.NetProxyBinary(t), "nats-server": cluster.NATSServer(t),
	}
	jobs, err := nomad.LoadDir(filepath.Join(repoRoot(), "deploy", "nomad"))
	if err != nil {
		t.Fatal(err)
	}
	job := func(name string) *nomad.Job {
		for _, j := range jobs {
			if j.Name == name {
				return j
			}
		}
		t.Fatalf("deploy/nomad has no job %s", name)
		return nil
	}
	lap("build")

	// README step 3: the VMs, with the programs in /usr/local/bin.
	dc := newDatacenter(t, 3, bins)
	vm1 := dc.VMs[0]
	var nodes []nomad.Node
	for _, vm := range dc.VMs {
		nodes = append(nodes, vm.Node())
	}
	byName := map[string]*VM{}
	for _, vm := range dc.VMs {
		byName[vm.Name] = vm
	}
	lap("VMs")

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	// README step 2, on the workstation (vm1's namespaces: the LAN is only reachable there).
	D := filepath.Join(dc.Run.Dir, "skiff-cluster")
	skiff := func(args ...string) string {
		t.Helper()
		out, err := vm1.Exec(ctx, nil, "", append([]string{filepath.Join(binDir, "skiff")}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	initArgs := []string{"cluster", "init", "--dir", D, "--tls-path", "secrets"}
	for _, vm := range dc.VMs {
		initArgs = append(initArgs, "--server", vm.Name+"="+vm.Address)
	}
	skiff(initArgs...)
	skiff(append([]string{"node", "creds"}, append(vmNames(dc.VMs), "--dir", D)...)...)
	// README step 5.
	vars, servers, err := variables(D, dc.VMs)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(D, "ca.pem")
	lap("identities")

	// README step 6: NATS.
	render := func(j *nomad.Job, vm *VM, index int) []nomad.Task {
		t.Helper()
		id := allocID()
		tasks, err := nomad.Render(j, vars, vm.Node(), nomad.Alloc{ID: id, Index: index, Dir: filepath.Join(vm.Dir, "nomad", "alloc", id)})
		if err != nil {
			t.Fatal(err)
		}
		return tasks
	}
	place := func(j *nomad.Job) map[string][]nomad.Node {
		t.Helper()
		p, err := nomad.Place(j, nodes)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	startJob := func(j *nomad.Job) int {
		t.Helper()
		allocs := 0
		for group, placed := range place(j) {
			for i, n := range placed {
				vm := byName[n.Name]
				for _, task := range render(j, vm, i) {
					if _, err := vm.StartTask(task); err != nil {
						t.Fatalf("job %s group %s on %s: %v", j.Name, group, vm.Name, err)
					}
				}
				allocs++
			}
		}
		return allocs
	}
	if n := startJob(job("skiff-nats")); n != 3 {
		t.Fatalf("skiff-nats has %d allocations, want 3", n)
	}
	var leader string
	if !cluster.PollContext(ctx, func() bool { leader, err = natsReady(ctx, dc.VMs, ca); return err == nil }) {
		t.Fatalf("NATS not healthy with a meta leader: %v", err)
	}
	t.Logf("NATS: all three /healthz ok, meta leader %s", leader)
	lap("nats")

	// The bootstrap batch job: one allocation, exit 0.
	bootJob := job("skiff-bootstrap")
	bp := place(bootJob)
	if len(bp) != 1 || len(bp["bootstrap"]) != 1 {
		t.Fatalf("skiff-bootstrap placed as %v, want one allocation", bp)
	}
	for _, task := range render(bootJob, byName[bp["bootstrap"][0].Name], 0) {
		out, err := byName[bp["bootstrap"][0].Name].RunTask(ctx, task)
		if err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
		t.Logf("bootstrap on %s: %s", bp["bootstrap"][0].Name, strings.TrimSpace(out))
	}
	admin, err := connect(vm1, servers, filepath.Join(D, "creds", "admin.creds"), ca, "admin")
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	defer admin.Close()
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	streamConfigs := func() map[string]jetstream.StreamConfig {
		t.Helper()
		out := map[string]jetstream.StreamConfig{}
		for _, name := range logStreams {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatalf("stream %s after bootstrap: %v", name, err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = info.Config
		}
		return out
	}
	bootstrapped := streamConfigs()
	for name, cfg := range bootstrapped {
		if cfg.Replicas != 3 {
			t.Errorf("stream %s has %d replicas after bootstrap, want 3", name, cfg.Replicas)
		}
	}
	lap("bootstrap")

	// The scheduler job: two allocations on two VMs.
	if n := startJob(job("skiff-scheduler")); n != 2 {
		t.Fatalf("skiff-scheduler has %d allocations, want 2", n)
	}
	lap("schedulers started")

	// Every VM's containerd (README step 3's prerequisite), then the node system job.
	for _, vm := range dc.VMs {
		if err := vm.startContainerd(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lap("containerd")
	if n := startJob(job("skiff-node")); n != 3 {
		t.Fatalf("skiff-node has %d allocations, want 3 (a system job: one per VM)", n)
	}
	var agents []*task
	for _, p := range dc.procs {
		if strings.HasSuffix(p.name, "skiff-node-nodeagent") {
			agents = append(agents, p)
		}
	}
	if !cluster.PollContext(ctx, func() bool {
		for _, a := range agents {
			if b, _ := os.ReadFile(a.log); !strings.Contains(string(b), "node agent ready") {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not every node agent logged that it is ready")
	}
	if slow := time.Since(phase); slow > 3*time.Second {
		// Seen now and then: an agent waits about 10 s between "projection synced" and
		// registering; its log says where.
		for _, vm := range dc.VMs {
			t.Logf("nodes took %v to get ready; %s's agent:\n%s", slow.Round(time.Millisecond), vm.Name, dc.logOf(vm, "skiff-node-nodeagent"))
		}
	}
	lap("nodes ready")

	// The agents and proxies attached with node credentials and changed nothing of the log.
	if diff := cmp.Diff(bootstrapped, streamConfigs()); diff != "" {
		t.Errorf("stream and bucket configs changed after the schedulers, agents and proxies started (-bootstrap +now):\n%s", diff)
	}

	// README step 7, as a user: images and the echo app.
	skiff("user", "creds", "alice", "--dir", D)
	alice := filepath.Join(D, "config", "user-alice.yaml")
	skiff("--config", alice, "image", "import", filepath.Join(b.Images, "echo.tar"))
	skiff("--config", alice, "apply", "-f", filepath.Join(repoRoot(), "examples", "echo.yaml"))
	st, err := store.Attach(ctx, admin, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
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
		hc := &http.Client{Transport: &http.Transport{DialContext: dialIn(vm, 2*time.Second), DisableKeepAlives: true}, Timeout: 3 * time.Second}
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
			t.Logf("from %s: first answer after %v; the first attempt failed: %v\n%s", vm.Name, time.Since(asked).Round(time.Millisecond), firstErr, dc.logOf(vm, "skiff-node-netproxy"))
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

	checkActors(ctx, t, st, dc.VMs)
	// Nomad would have restarted a task that exited; none may have needed it.
	if gone := dc.exited(); len(gone) > 0 {
		t.Errorf("tasks that exited: %v", gone)
	}
	if diff := cmp.Diff(bootstrapped, streamConfigs()); diff != "" {
		t.Errorf("stream and bucket configs changed while the app was deployed (-bootstrap +now):\n%s", diff)
	}
	lap("checks")
	t.Logf("total %.2fs", time.Since(total).Seconds())
}

func vmNames(vms []*VM) []string {
	var out []string
	for _, vm := range vms {
		out = append(out, vm.Name)
	}
	return out
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
