package datacenter

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events/api"
	"skiff.dev/events/store"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/nomad"
)

// Options tune Up.
type Options struct {
	// Args are appended to the arguments of rendered tasks, by "job/task" (such as
	// "skiff-scheduler/scheduler"). Go's flag package keeps the last value of a repeated flag, so
	// "--lease-timeout=8s" overrides the jobspec's 40 s.
	Args map[string][]string
	// Timeout bounds the start-up and the waits of Cluster's methods; default 150 s.
	Timeout time.Duration
	// Lap, when set, is called at the end of each start-up phase with its name.
	Lap func(phase string)
}

// Cluster is a running datacenter: NATS on every VM, the bootstrap job done, two schedulers,
// containerd, an agent and a net proxy on every VM (README steps 1 to 6), and user alice with
// the project's images imported (step 7's first half).
type Cluster struct {
	*Datacenter
	Bin cluster.Binaries
	// Dir is what `skiff cluster init` wrote (the operator's workstation directory).
	Dir string
	// CA is the cluster's CA certificate; Servers the servers' URLs as a client config holds them.
	CA, Servers string
	// Admin is an admin connection from vm1; Store the log through it.
	Admin *nats.Conn
	Store *store.Store
	// Alice is user alice's client config.
	Alice string
	// Bootstrapped are the stream and bucket configs right after the bootstrap job.
	Bootstrapped map[string]jetstream.StreamConfig

	opts Options
	jobs []*nomad.Job
}

// jobByName returns the job called name.
func (c *Cluster) jobByName(name string) *nomad.Job {
	for _, j := range c.jobs {
		if j.Name == name {
			return j
		}
	}
	c.t.Fatalf("deploy/nomad has no job %s", name)
	return nil
}

// Up runs deploy/nomad's jobs on three simulated VMs as the README walks an operator through
// it. Everything is torn down at t's cleanup.
func Up(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 150 * time.Second
	}
	lap := opts.Lap
	if lap == nil {
		lap = func(string) {}
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
	lap("build")

	// README step 3: the VMs, with the programs in /usr/local/bin.
	dc := newDatacenter(t, 3, bins)
	c := &Cluster{Datacenter: dc, Bin: b, opts: opts, jobs: jobs, Dir: filepath.Join(dc.Run.Dir, "skiff-cluster")}
	lap("VMs")

	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()

	// README step 2, on the workstation (vm1's namespaces: the LAN is only reachable there).
	initArgs := []string{"cluster", "init", "--dir", c.Dir, "--tls-path", "secrets"}
	for _, vm := range dc.VMs {
		initArgs = append(initArgs, "--server", vm.Name+"="+vm.Address)
	}
	c.mustSkiff(ctx, initArgs...)
	c.mustSkiff(ctx, append([]string{"node", "creds"}, append(vmNames(dc.VMs), "--dir", c.Dir)...)...)
	// README step 5.
	vars, servers, err := variables(c.Dir, dc.VMs)
	if err != nil {
		t.Fatal(err)
	}
	c.Servers, c.CA = servers, filepath.Join(c.Dir, "ca.pem")
	lap("identities")

	// README step 6: NATS.
	if n := c.startJob(vars, "skiff-nats"); n != 3 {
		t.Fatalf("skiff-nats has %d allocations, want 3", n)
	}
	var leader string
	if !cluster.PollContext(ctx, func() bool { leader, err = natsReady(ctx, dc.VMs, c.CA); return err == nil }) {
		t.Fatalf("NATS not healthy with a meta leader: %v", err)
	}
	t.Logf("NATS: all three /healthz ok, meta leader %s", leader)
	lap("nats")

	// The bootstrap batch job: one allocation, exit 0.
	bootJob := c.jobByName("skiff-bootstrap")
	bp, err := nomad.Place(bootJob, c.nodes())
	if err != nil {
		t.Fatal(err)
	}
	if len(bp) != 1 || len(bp["bootstrap"]) != 1 {
		t.Fatalf("skiff-bootstrap placed as %v, want one allocation", bp)
	}
	bootVM := c.VM(bp["bootstrap"][0].Name)
	for _, task := range c.render(vars, bootJob, bootVM, 0) {
		out, err := bootVM.RunTask(ctx, task)
		if err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
		t.Logf("bootstrap on %s: %s", bootVM.Name, strings.TrimSpace(out))
	}
	c.Admin, err = connect(dc.VMs[0], servers, filepath.Join(c.Dir, "creds", "admin.creds"), c.CA, "admin")
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	t.Cleanup(c.Admin.Close)
	c.Bootstrapped = c.StreamConfigs(ctx)
	lap("bootstrap")

	// The scheduler job: two allocations on two VMs.
	if n := c.startJob(vars, "skiff-scheduler"); n != 2 {
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
	phase := time.Now()
	if n := c.startJob(vars, "skiff-node"); n != 3 {
		t.Fatalf("skiff-node has %d allocations, want 3 (a system job: one per VM)", n)
	}
	if !cluster.PollContext(ctx, func() bool {
		for _, vm := range dc.VMs {
			if !strings.Contains(c.Task(vm, NodeAgent).Log(), "node agent ready") {
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
			t.Logf("nodes took %v to get ready; %s's agent:\n%s", slow.Round(time.Millisecond), vm.Name, c.Task(vm, NodeAgent).Log())
		}
	}
	lap("nodes ready")

	c.Store, err = store.Attach(ctx, c.Admin, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// README step 7, as a user: creds and the images.
	c.mustSkiff(ctx, "user", "creds", "alice", "--dir", c.Dir)
	c.Alice = filepath.Join(c.Dir, "config", "user-alice.yaml")
	for _, image := range []string{"echo.tar", "testbox.tar"} {
		tar := filepath.Join(b.Images, image)
		if _, err := os.Stat(tar); err != nil {
			continue
		}
		c.mustSkiff(ctx, "--config", c.Alice, "image", "import", tar)
	}
	lap("user and images")
	return c
}

// logStreams are the streams behind what skiff cluster bootstrap creates: the log, the lease
// and leader buckets and the image store.
var logStreams = []string{"SKIFF", "KV_skiff-leases", "KV_skiff-leader", "OBJ_skiff-images"}

// Task names as Up starts them: job-task, and containerd.
const (
	NATS       = "skiff-nats-nats-server"
	Scheduler  = "skiff-scheduler-scheduler"
	NodeAgent  = "skiff-node-nodeagent"
	NetProxy   = "skiff-node-netproxy"
	Containerd = "containerd"
)

func (c *Cluster) nodes() []nomad.Node {
	var out []nomad.Node
	for _, vm := range c.VMs {
		out = append(out, vm.Node())
	}
	return out
}

// VM returns the VM called name.
func (c *Cluster) VM(name string) *VM {
	for _, vm := range c.VMs {
		if vm.Name == name {
			return vm
		}
	}
	c.t.Fatalf("no VM %s", name)
	return nil
}

func (c *Cluster) render(vars nomad.Variables, j *nomad.Job, vm *VM, index int) []nomad.Task {
	c.t.Helper()
	id := allocID()
	tasks, err := nomad.Render(j, vars, vm.Node(), nomad.Alloc{ID: id, Index: index, Dir: filepath.Join(vm.Dir, "nomad", "alloc", id)})
	if err != nil {
		c.t.Fatal(err)
	}
	for i := range tasks {
		tasks[i].Argv = append(tasks[i].Argv, c.opts.Args[tasks[i].Job+"/"+tasks[i].Name]...)
	}
	return tasks
}

// startJob places and starts every allocation of job name and returns how many it started.
func (c *Cluster) startJob(vars nomad.Variables, name string) int {
	c.t.Helper()
	j := c.jobByName(name)
	placed, err := nomad.Place(j, c.nodes())
	if err != nil {
		c.t.Fatal(err)
	}
	allocs := 0
	for group, nodes := range placed {
		for i, n := range nodes {
			vm := c.VM(n.Name)
			for _, task := range c.render(vars, j, vm, i) {
				if _, err := vm.StartTask(task); err != nil {
					c.t.Fatalf("job %s group %s on %s: %v", j.Name, group, vm.Name, err)
				}
			}
			allocs++
		}
	}
	return allocs
}

// Skiff runs the skiff CLI with args on vm1 (the operator's workstation) and returns its output.
func (c *Cluster) Skiff(ctx context.Context, args ...string) (string, error) {
	return c.VMs[0].Exec(ctx, nil, "", append([]string{filepath.Join(binDir, "skiff")}, args...)...)
}

// AsAlice runs the skiff CLI as user alice.
func (c *Cluster) AsAlice(ctx context.Context, args ...string) (string, error) {
	return c.Skiff(ctx, append([]string{"--config", c.Alice}, args...)...)
}

func (c *Cluster) mustSkiff(ctx context.Context, args ...string) string {
	c.t.Helper()
	out, err := c.Skiff(ctx, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// StreamConfigs are the configs of the log's stream and of the buckets' streams.
func (c *Cluster) StreamConfigs(ctx context.Context) map[string]jetstream.StreamConfig {
	c.t.Helper()
	js, err := jetstream.New(c.Admin)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]jetstream.StreamConfig{}
	for _, name := range logStreams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			c.t.Fatalf("stream %s: %v", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			c.t.Fatal(err)
		}
		out[name] = info.Config
	}
	return out
}

// Task is the process called name on vm (NATS, Scheduler, NodeAgent, NetProxy, Containerd), or
// nil when vm runs none.
func (c *Cluster) Task(vm *VM, name string) *cluster.Process {
	for _, p := range c.procs {
		if p.vm == vm && p.name == name {
			return p.proc
		}
	}
	return nil
}

// Signal sends sig to task name on vm; for SIGKILL it waits until the process is gone.
func (c *Cluster) Signal(vm *VM, name string, sig syscall.Signal) time.Time {
	c.t.Helper()
	p := c.Task(vm, name)
	if p == nil {
		c.t.Fatalf("%s runs no %s", vm.Name, name)
	}
	at := time.Now()
	var err error
	if sig == syscall.SIGKILL {
		err = p.Kill()
	} else {
		err = p.Signal(sig)
	}
	if err != nil {
		c.t.Fatalf("%s %s: %v", vm.Name, name, err)
	}
	return at
}

// Restart starts task name on vm again, with the arguments, files and environment it had, as
// Nomad restarts a task in place.
func (c *Cluster) Restart(vm *VM, name string) {
	c.t.Helper()
	p := c.Task(vm, name)
	if p == nil {
		c.t.Fatalf("%s runs no %s", vm.Name, name)
	}
	if err := p.Start(c.Run); err != nil {
		c.t.Fatalf("restart %s on %s: %v", name, vm.Name, err)
	}
}

// Schedulers maps each scheduler replica's id (its allocation ID) to its VM.
func (c *Cluster) Schedulers() map[string]*VM {
	out := map[string]*VM{}
	for _, p := range c.procs {
		if p.name == Scheduler {
			out[p.allocID] = p.vm
		}
	}
	return out
}

// leaderKey is the key the leading scheduler holds in api.LeaderBucket
// (services/scheduler/internal/leader.Key, which this module cannot import).
const leaderKey = "controllers"

// Leader returns the VM whose scheduler leads and its replica id, or nil when none does.
func (c *Cluster) Leader(ctx context.Context) (*VM, string, error) {
	js, err := jetstream.New(c.Admin)
	if err != nil {
		return nil, "", err
	}
	kv, err := js.KeyValue(ctx, api.LeaderBucket)
	if err != nil {
		return nil, "", fmt.Errorf("leader bucket: %w", err)
	}
	e, err := kv.Get(ctx, leaderKey)
	if err != nil {
		return nil, "", err
	}
	id := string(e.Value())
	vm, ok := c.Schedulers()[id]
	if !ok {
		return nil, id, fmt.Errorf("leader %q is none of the schedulers %v", id, c.Schedulers())
	}
	return vm, id, nil
}

// Partition drops every packet into and out of vm's LAN interface, inside vm's network
// namespace, as a cut cable or a firewall would: its processes keep running, cut off.
func (c *Cluster) Partition(vm *VM) {
	c.t.Helper()
	rules := `table inet skiff-chaos {
	chain cut_in { type filter hook input priority -400; iifname "eth0" drop; }
	chain cut_forward { type filter hook forward priority -400; iifname "eth0" drop; oifname "eth0" drop; }
	chain cut_out { type filter hook output priority -400; oifname "eth0" drop; }
}`
	if err := nftIn(vm, rules); err != nil {
		c.t.Fatalf("partition %s: %v", vm.Name, err)
	}
}

// Heal removes Partition's table.
func (c *Cluster) Heal(vm *VM) {
	c.t.Helper()
	if err := nftIn(vm, "delete table inet skiff-chaos"); err != nil {
		c.t.Fatalf("heal %s: %v", vm.Name, err)
	}
}

func vmNames(vms []*VM) []string {
	var out []string
	for _, vm := range vms {
		out = append(out, vm.Name)
	}
	return out
}

// HTTPClient is an HTTP client whose connections are made inside vm's network namespace, one
// per request.
func (vm *VM) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: dialIn(vm, timeout), DisableKeepAlives: true}, Timeout: timeout + time.Second}
}

// nftIn runs nft with script on its standard input in vm's network namespace.
func nftIn(vm *VM, script string) error {
	cmd := exec.Command("nsenter", "--net="+vm.NetnsPath(), "--", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	return nil
}

// repoRoot is the repository's root: this file is tests/datacenter/up.go.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
