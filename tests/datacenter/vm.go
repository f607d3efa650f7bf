package datacenter

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/tests/cluster"
	"skiff.dev/tests/nomad"
)

// perVM are the host paths every VM sees its own directory at: host path → directory under the
// VM's Dir. Together with /usr/local/bin (the binaries) they are all the absolute paths the
// jobspecs and the programs they run write to.
var perVM = []struct{ path, dir string }{
	{"/var/lib/nats", "nats"},             // the skiff-nats host volume: JetStream store, resolver
	{"/var/lib/skiff", "state"},           // the agent's --state-dir ("state": the run's sweep finds its pods)
	{"/var/log/skiff", "log"},             // the agent's --log-dir is /var/log/skiff/pods
	{"/run/containerd", "run-containerd"}, // containerd's socket, as the agent's flag names it
	{"/run/skiff", "run-skiff"},           // runc's state (the agent's default --runc-root)
}

// binDir is where the VMs find their programs, as README step 3 installs them.
const binDir = "/usr/local/bin"

// hostVolumes is each VM's Nomad client host_volume configuration (README step 3).
var hostVolumes = map[string]string{"skiff-nats": "/var/lib/nats"}

// VM is one simulated machine: a network namespace on the LAN and a mount namespace.
type VM struct {
	Name, Address, Netns string
	// Dir holds the VM's own directories (mounted over perVM's paths), its containerd and its
	// Nomad allocation directories.
	Dir string
	// MountNS is the VM's mount namespace, /proc/<holder>/ns/mnt.
	MountNS string
	holder  *cluster.Process
	dc      *Datacenter
}

// Datacenter is the run: its VMs and every process started in them.
type Datacenter struct {
	Run cluster.Run
	VMs []*VM
	// Bin is the directory mounted over /usr/local/bin in every VM.
	Bin string

	t        testing.TB
	lan      string
	procs    []*task // in start order; stopped in reverse
	hostMnts map[string]int
}

// task is one running process of the datacenter.
type task struct {
	name string
	// allocID is the Nomad allocation's ID ("" for what is not a task, such as containerd).
	allocID string
	vm      *VM
	proc    *cluster.Process
	log     string
}

// gatewayAddress is the LAN's router, every VM's default gateway.
const gatewayAddress = "10.213.0.1"

// vmAddress is the address of VM i (1-based) on the LAN 10.213.0.0/24.
func vmAddress(i int) string { return fmt.Sprintf("10.213.0.%d", 10+i) }

// newDatacenter makes n VMs and registers the teardown with t.Cleanup.
func newDatacenter(t testing.TB, n int, bins map[string]string) *Datacenter {
	t.Helper()
	cluster.RequireRoot(t, "makes network and mount namespaces, runs containerd, runc and CNI plugins")
	for _, tool := range []string{"ip", "nsenter", "unshare", "mount", "containerd", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (scripts/setup.sh installs it): %v", tool, err)
		}
	}
	run, err := cluster.NewRun()
	if err != nil {
		t.Fatal(err)
	}
	dc := &Datacenter{Run: run, t: t, lan: run.ID + "-lan", Bin: filepath.Join(run.Dir, "bin"), hostMnts: hostMountCounts()}
	t.Cleanup(dc.cleanup)

	// README step 3: install the five programs into /usr/local/bin (here: one directory that
	// every VM mounts there).
	if err := os.MkdirAll(dc.Bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range bins {
		if err := copyFile(src, filepath.Join(dc.Bin, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// The LAN's router: a VM has a default route, which a connection to a ClusterIP needs before
	// the proxy's rules rewrite its destination (routing comes first).
	machines := []cluster.Machine{{Netns: run.ID + "-gw", Port: "v-gw", Address: gatewayAddress}}
	for i := 1; i <= n; i++ {
		vm := &VM{Name: fmt.Sprintf("vm%d", i), Address: vmAddress(i), dc: dc}
		vm.Netns = run.ID + "-" + vm.Name
		vm.Dir = filepath.Join(run.Dir, vm.Name)
		dc.VMs = append(dc.VMs, vm)
		machines = append(machines, cluster.Machine{Netns: vm.Netns, Port: "v-" + vm.Name, Address: vm.Address})
	}
	if err := cluster.SetupLAN(dc.lan, machines); err != nil {
		t.Fatalf("LAN: %v", err)
	}
	for _, vm := range dc.VMs {
		if out, err := exec.Command("ip", "-n", vm.Netns, "route", "add", "default", "via", gatewayAddress).CombinedOutput(); err != nil {
			t.Fatalf("%s: default route: %v: %s", vm.Name, err, out)
		}
	}
	for _, vm := range dc.VMs {
		if err := vm.boot(); err != nil {
			t.Fatalf("%s: %v", vm.Name, err)
		}
	}
	// Nothing the VMs mounted may show on the host.
	if leaked := dc.leakedMounts(); len(leaked) > 0 {
		t.Fatalf("mounts leaked to the host's mount namespace: %v", leaked)
	}
	return dc
}

// boot starts the VM's holder in its network namespace with a private mount namespace and
// mounts the VM's directories over the per-VM paths inside it.
func (vm *VM) boot() error {
	dc := vm.dc
	vm.holder = cluster.NewProcess(cluster.ProcessSpec{
		Name: vm.Name + "-holder", Netns: vm.Netns,
		// nsenter and unshare exec without forking: the holder's PID is the namespace's.
		Argv: []string{"unshare", "--mount", "--propagation", "private", "sleep", "infinity"},
		Log:  filepath.Join(dc.Run.Dir, vm.Name+"-holder.log"),
	})
	if err := vm.holder.Start(dc.Run); err != nil {
		return err
	}
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	pid := vm.holder.PID()
	ns := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	if !cluster.Poll(10*time.Second, func() bool {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		got, err := os.Readlink(ns)
		return err == nil && got != self && strings.TrimSpace(string(comm)) == "sleep"
	}) {
		return fmt.Errorf("holder (pid %d) did not get its own mount namespace: %s", pid, vm.holder.Log())
	}
	vm.MountNS = ns
	for _, m := range perVM {
		src := filepath.Join(vm.Dir, m.dir)
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if err := vm.mount(src, m.path); err != nil {
			return err
		}
	}
	if err := vm.mount(dc.Bin, binDir, "-o", "ro"); err != nil {
		return err
	}
	// The VM sees its own directories at every path.
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return err
	}
	for _, m := range append([]string{binDir}, perVMPaths()...) {
		if !strings.Contains(string(info), " "+m+" ") {
			return fmt.Errorf("%s is not a mount point in the VM's mount namespace", m)
		}
	}
	return nil
}

func perVMPaths() []string {
	var out []string
	for _, m := range perVM {
		out = append(out, m.path)
	}
	return out
}

// mount bind-mounts src over target inside the VM. A missing target is created on the host
// first (an empty directory: a mount point needs one).
func (vm *VM) mount(src, target string, opts ...string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	args := append([]string{"--mount=" + vm.MountNS, "--", "mount", "--bind"}, opts...)
	out, err := exec.Command("nsenter", append(args, src, target)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount %s over %s: %v: %s", src, target, err, out)
	}
	return nil
}

// Path is where the host sees the VM's path p (one of perVM's, or below one).
func (vm *VM) Path(p string) string {
	for _, m := range perVM {
		if p == m.path || strings.HasPrefix(p, m.path+"/") {
			return filepath.Join(vm.Dir, m.dir, strings.TrimPrefix(p, m.path))
		}
	}
	return p
}

// NetnsPath is the VM's network namespace.
func (vm *VM) NetnsPath() string { return filepath.Join("/run/netns", vm.Netns) }

// Node is the VM as a Nomad client: node name, address, and the meta of README step 3.
func (vm *VM) Node() nomad.Node {
	return nomad.Node{Name: vm.Name, Address: vm.Address, Meta: map[string]string{"skiff_nats": "true"}}
}

// Start runs argv in the VM's namespaces, in dir, with env added to the environment, as a
// long-running process the datacenter stops at its end.
func (vm *VM) Start(name string, argv []string, env map[string]string, dir string) (*cluster.Process, error) {
	dc := vm.dc
	logPath := filepath.Join(dc.Run.Dir, "logs", vm.Name+"-"+name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	p := cluster.NewProcess(cluster.ProcessSpec{
		Name: vm.Name + "-" + name, Netns: vm.Netns, MountNS: vm.MountNS,
		Argv: argv, Env: envList(env), Dir: dir, Log: logPath,
	})
	if err := p.Start(dc.Run); err != nil {
		return nil, err
	}
	dc.procs = append(dc.procs, &task{name: name, vm: vm, proc: p, log: logPath})
	return p, nil
}

// StartTask writes a rendered task's files and starts its argv, as the Nomad client would.
func (vm *VM) StartTask(t nomad.Task) (*cluster.Process, error) {
	if err := vm.prepareTask(t); err != nil {
		return nil, err
	}
	p, err := vm.Start(t.Job+"-"+t.Name, t.Argv, t.Env, t.Dir)
	if err == nil {
		vm.dc.procs[len(vm.dc.procs)-1].allocID = t.Env["NOMAD_ALLOC_ID"]
	}
	return p, err
}

// RunTask runs a batch task to its end and returns its output; an exit status other than 0 is
// an error.
func (vm *VM) RunTask(ctx context.Context, t nomad.Task) (string, error) {
	if err := vm.prepareTask(t); err != nil {
		return "", err
	}
	return vm.Exec(ctx, t.Env, t.Dir, t.Argv...)
}

// Exec runs argv in the VM's namespaces to its end and returns its combined output.
func (vm *VM) Exec(ctx context.Context, env map[string]string, dir string, argv ...string) (string, error) {
	args := []string{"--net=" + vm.NetnsPath(), "--mount=" + vm.MountNS}
	if dir != "" {
		args = append(args, "--wd="+dir)
	}
	cmd := exec.CommandContext(ctx, "nsenter", append(append(args, "--"), argv...)...)
	cmd.Env = append(os.Environ(), envList(env)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s on %s: %v\n%s", strings.Join(argv, " "), vm.Name, err, out)
	}
	return string(out), nil
}

// prepareTask writes the task's files and checks that its host volumes are where the task
// expects them: exec would bind the client's host_volume path at the destination; here the VM's
// mount namespace already shows its own directory at that path, so the two must be equal.
func (vm *VM) prepareTask(t nomad.Task) error {
	for _, m := range t.Mounts {
		path, ok := hostVolumes[m.Source]
		if !ok {
			return fmt.Errorf("%s/%s: host volume %q is not in the client configuration (README step 3)", t.Job, t.Name, m.Source)
		}
		if path != m.Destination {
			return fmt.Errorf("%s/%s: host volume %q (%s) mounted at %s: a mount at another path is not simulated", t.Job, t.Name, m.Source, path, m.Destination)
		}
	}
	return t.WriteFiles()
}

// exited lists the long-running processes that are no longer running.
func (dc *Datacenter) exited() []string {
	var out []string
	for _, p := range dc.procs {
		if !p.proc.Running() {
			out = append(out, p.vm.Name+" "+p.name)
		}
	}
	return out
}

// cleanup stops every process by PID, newest first, then whatever is left in each VM's mount
// namespace, then sweeps the run (namespaces, cgroups, CNI caches, the run directory).
func (dc *Datacenter) cleanup() {
	t := dc.t
	if t.Failed() {
		t.Logf("datacenter %s: logs of a failed test:\n%s", dc.Run.ID, dc.logTails(40))
	}
	for i := len(dc.procs) - 1; i >= 0; i-- {
		dc.procs[i].proc.Stop(5 * time.Second)
	}
	for _, vm := range dc.VMs {
		if vm.holder == nil || vm.MountNS == "" {
			continue
		}
		if n := vm.killRest(); n > 0 {
			t.Logf("datacenter: %s: killed %d leftover process(es) in its mount namespace (shims, containers)", vm.Name, n)
		}
	}
	for _, vm := range dc.VMs {
		if vm.holder != nil {
			if err := vm.holder.Kill(); err != nil {
				t.Errorf("%s: %v", vm.Name, err)
			}
		}
	}
	dc.Run.Sweep(t.Logf)
	if leaked := dc.leakedMounts(); len(leaked) > 0 {
		t.Errorf("mounts left in the host's mount namespace: %v", leaked)
	}
	if ns, _ := filepath.Glob(filepath.Join("/run/netns", dc.Run.ID+"-*")); len(ns) > 0 {
		t.Errorf("network namespaces left: %v", ns)
	}
}

// killRest kills every process in the VM's mount namespace but its holder, and their children
// (containers run in mount namespaces of their own, under containerd's shims), until none is
// left. It returns how many it killed.
func (vm *VM) killRest() int {
	ns, err := os.Readlink(vm.MountNS)
	if err != nil {
		return 0
	}
	holder := vm.holder.PID()
	return cluster.KillAll(15*time.Second, func() []int { return pidsInMountNS(ns, holder) })
}

// pidsInMountNS lists the processes whose mount namespace is ns (as readlink shows it), but
// except.
func pidsInMountNS(ns string, except int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except {
			continue
		}
		if got, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "mnt")); err == nil && got == ns {
			if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && zombie(stat) {
				continue
			}
			out = append(out, pid)
		}
	}
	return out
}

func zombie(stat []byte) bool {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// hostMountCounts counts the host's mounts at each per-VM path and under /tmp's run
// directories, to compare before and after.
func hostMountCounts() map[string]int {
	m := map[string]int{}
	for _, p := range cluster.Mounts() {
		m[p]++
	}
	return m
}

// leakedMounts lists the mount points the host has now and did not have when the run began, at
// the VMs' paths or under the run's directory.
func (dc *Datacenter) leakedMounts() []string {
	now := hostMountCounts()
	var out []string
	watch := append([]string{binDir}, perVMPaths()...)
	for p, n := range now {
		interesting := strings.HasPrefix(p, dc.Run.Dir+"/") || p == dc.Run.Dir
		for _, w := range watch {
			if p == w || strings.HasPrefix(p, w+"/") {
				interesting = true
			}
		}
		if interesting && n > dc.hostMnts[p] {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (dc *Datacenter) logTails(lines int) string {
	var b strings.Builder
	for _, p := range dc.procs {
		data, _ := os.ReadFile(p.log)
		l := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(l) > lines {
			l = l[len(l)-lines:]
		}
		fmt.Fprintf(&b, "--- %s %s (running: %v)\n%s\n", p.vm.Name, p.name, p.proc.Running(), strings.Join(l, "\n"))
	}
	return b.String()
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// containerdSocket is where the node job's agent looks for containerd (its flag, and the
// containerd package's default).
const containerdSocket = "/run/containerd/containerd.sock"

// startContainerd starts the VM's containerd, as the README's prerequisite has it, with its
// root and state in the VM's directory and its socket at containerdSocket inside the VM, and
// waits until it serves.
func (vm *VM) startContainerd(ctx context.Context) error {
	dir := filepath.Join(vm.Dir, "containerd") // the run's sweep finds container IDs under */containerd/state
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config.toml")
	conf := cluster.ContainerdConfig(filepath.Join(dir, "root"), filepath.Join(dir, "state"), containerdSocket)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	p, err := vm.Start("containerd", []string{"containerd", "--config", cfg}, nil, "")
	if err != nil {
		return err
	}
	sock := vm.Path(containerdSocket)
	if !cluster.PollContext(ctx, func() bool {
		_, err := os.Stat(sock)
		return err == nil || !p.Running()
	}) || !p.Running() {
		return fmt.Errorf("containerd of %s did not serve %s:\n%s", vm.Name, containerdSocket, p.Log())
	}
	return nil
}
