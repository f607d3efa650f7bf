package runtimetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"golang.org/x/sys/unix"

	ctrd "skiff.dev/services/nodeagent/containerd"
	"skiff.dev/services/nodeagent/internal/runtime"
)

// Containerd is a private containerd daemon run by a test.
type Containerd struct {
	Dir          string // everything lives under here
	Address      string // the gRPC socket
	CgroupParent string // give this to runtime.Config: cleanup removes it
	t            testing.TB
	hostMounts   bool // run in the test's mount namespace, whatever the cgroups
	privateMount bool // run in a mount namespace that sees no mount made after it starts
	cmd          *exec.Cmd
	exited       chan struct{}
	logFile      *os.File
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: runs containerd, runc and mounts (run the tests as root)")
	}
}

// Option changes how StartContainerd configures the daemon.
type Option func(*options)

type options struct {
	disabled     []string
	hostMounts   bool
	privateMount bool
}

// InPrivateMountNamespace runs the daemon in a mount namespace of its own that no later mount
// of the test's reaches (private propagation), as a containerd started under a service
// manager's mount isolation might run: pinned namespaces made after it started cannot reach it.
func InPrivateMountNamespace() Option {
	return func(o *options) { o.privateMount = true }
}

// InHostMountNamespace runs the daemon in the test's own mount namespace, as a system
// containerd runs, even on a host with hybrid cgroups, where crun then cannot work.
func InHostMountNamespace() Option {
	return func(o *options) { o.hostMounts = true }
}

// DisablePlugins keeps containerd from loading the named plugins, e.g.
// "io.containerd.snapshotter.v1.overlayfs" to see the runtime fall back.
func DisablePlugins(ids ...string) Option {
	return func(o *options) { o.disabled = append(o.disabled, ids...) }
}

// StartContainerd starts a private containerd and returns once it serves.
// The daemon is stopped and everything it made removed when the test ends.
func StartContainerd(t testing.TB, opts ...Option) *Containerd {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Fatalf("containerd not found in PATH (Debian package containerd): %v", err)
	}
	reapStale(t)
	// Not t.TempDir: unix socket paths are limited to 108 bytes and test
	// names can be long.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(processIdentity(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Containerd{
		Dir:          dir,
		Address:      filepath.Join(dir, "containerd.sock"),
		CgroupParent: "/skiff-test-" + filepath.Base(dir),
		t:            t,
	}
	t.Cleanup(c.cleanup)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c.hostMounts, c.privateMount = o.hostMounts, o.privateMount
	// Only what the runtime uses: no CRI (it would want CNI and a pause
	// image), no /opt/containerd, no snapshotters that cannot work here.
	disabled := append([]string{
		"io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
		"io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
		"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
		"io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
	}, o.disabled...)
	quoted := make([]string, len(disabled))
	for i, d := range disabled {
		quoted[i] = strconv.Quote(d)
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [%s]

[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), strings.Join(quoted, ", "), c.Address)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Start()
	return c
}

// Start starts the daemon (again, after Kill) and waits until it serves.
func (c *Containerd) Start() {
	c.t.Helper()
	if c.cmd != nil {
		c.t.Fatal("containerd is already running")
	}
	logFile, err := os.OpenFile(filepath.Join(c.Dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	// As skiff up and the end-to-end harness run it: on a host with hybrid cgroups, in a
	// mount namespace without the cgroup2 mount, so that crun works as well as runc.
	// Pinned sandboxes' namespaces are bind mounts the runtime makes later: their directory
	// must be shared before containerd's mount namespace is made, to reach it.
	if err := runtime.SharePinDir(c.RuntimeConfig().PinDir); err != nil {
		c.t.Fatal(err)
	}
	argv := ctrd.Argv("--config", filepath.Join(c.Dir, "config.toml"))
	switch {
	case c.hostMounts:
		argv = []string{"containerd", "--config", filepath.Join(c.Dir, "config.toml")}
	case c.privateMount:
		// Without the cgroup2 mount where there is one, as ctrd.Argv does, so crun works.
		argv = []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
			`umount ` + ctrd.UnifiedMount + ` 2>/dev/null; exec "$@"`, "sh",
			"containerd", "--config", filepath.Join(c.Dir, "config.toml")}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// runc lives in /usr/sbin on Debian, which a test's PATH may lack.
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
	// Its own process group, so a terminal's ^C reaches the test, which
	// then cleans up, rather than killing the daemon under it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.t.Fatalf("start containerd: %v", err)
	}
	c.cmd, c.logFile = cmd, logFile
	os.WriteFile(filepath.Join(c.Dir, daemonFile), []byte(processIdentity(cmd.Process.Pid)), 0o644)
	c.exited = make(chan struct{})
	go func(exited chan struct{}) { cmd.Wait(); close(exited) }(c.exited)

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-c.exited:
			c.t.Fatalf("containerd exited at start; log:\n%s", c.Log())
		default:
		}
		if conn, err := net.Dial("unix", c.Address); err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("containerd did not serve %s within 20s; log:\n%s", c.Address, c.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PID is the daemon's process ID, or 0 when it is not running.
func (c *Containerd) PID() int {
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Kill kills the daemon with SIGKILL, as a crash would, and waits for it to
// exit. Shims and containers keep running.
func (c *Containerd) Kill() {
	c.t.Helper()
	c.stop(syscall.SIGKILL, 10*time.Second)
}

func (c *Containerd) stop(sig syscall.Signal, wait time.Duration) bool {
	if c.cmd == nil {
		return true
	}
	c.cmd.Process.Signal(sig)
	select {
	case <-c.exited:
	case <-time.After(wait):
		return false
	}
	c.logFile.Close()
	c.cmd = nil
	return true
}

// Log returns what the daemon has logged.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(b)
}

// EnvOCIRuntime names the OCI runtime RuntimeConfig asks for (runc or crun); unset, the
// runtime's default. `SKIFF_TEST_OCI_RUNTIME=runc go test ./...` runs the tests with the
// one that is not the default.
const EnvOCIRuntime = "SKIFF_TEST_OCI_RUNTIME"

// RuntimeConfig is a runtime.Config for this daemon, with state and logs
// under Dir.
func (c *Containerd) RuntimeConfig() runtime.Config {
	return runtime.Config{
		OCIRuntime:   os.Getenv(EnvOCIRuntime),
		Address:      c.Address,
		Namespace:    "skiff",
		StateDir:     filepath.Join(c.Dir, "skiff"),
		PinDir:       filepath.Join(c.Dir, "skiff", "ns"),
		LogDir:       filepath.Join(c.Dir, "logs"),
		CgroupParent: c.CgroupParent,
		RuncRoot:     filepath.Join(c.Dir, "runc"),
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// NewRuntime returns a runtime.Runtime on this daemon, closed at cleanup.
func (c *Containerd) NewRuntime(t testing.TB) *runtime.Runtime {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := runtime.New(ctx, c.RuntimeConfig())
	if err != nil {
		t.Fatalf("runtime.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Client returns a plain containerd client for looking behind the
// runtime's back, closed at cleanup.
func (c *Containerd) Client(t testing.TB) *containerd.Client {
	t.Helper()
	client, err := containerd.New(c.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("connect to containerd: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// Mounts returns the mount points under Dir, deepest first, as the test process, the daemon
// and its shims see them: the daemon may run in a mount namespace of its own (see ctrd.Argv),
// where its shims mount the containers' root filesystems.
func (c *Containerd) Mounts() []string {
	files := []string{"/proc/self/mountinfo"}
	if pid := c.PID(); pid != 0 {
		files = append(files, fmt.Sprintf("/proc/%d/mountinfo", pid))
	}
	for _, pid := range c.ShimPIDs() {
		files = append(files, fmt.Sprintf("/proc/%d/mountinfo", pid))
	}
	seen := map[string]bool{}
	var mounts []string
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 5 {
				continue
			}
			mp := unescapeMountPath(fields[4])
			if (mp == c.Dir || strings.HasPrefix(mp, c.Dir+"/")) && !seen[mp] {
				seen[mp] = true
				mounts = append(mounts, mp)
			}
		}
		f.Close()
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ShimPIDs returns the shims serving this daemon: they are the processes
// whose command line names its socket.
func (c *Containerd) ShimPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == c.PID() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(cmdline, []byte{0})
		if len(args) == 0 || !bytes.Contains(args[0], []byte("containerd-shim")) {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if string(args[i]) == "-address" && string(args[i+1]) == c.Address {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func (c *Containerd) cleanup() {
	if c.cmd != nil {
		c.removeAll()
		if !c.stop(syscall.SIGTERM, 10*time.Second) {
			c.stop(syscall.SIGKILL, 10*time.Second)
		}
	}
	c.sweep()
}

// sweep removes what a stopped daemon left: shims and their containers,
// mounts, cgroups and the directory.
func (c *Containerd) sweep() {
	t := c.t
	// Shims outlive the daemon by design. Kill the container inits first
	// (each is PID 1 of its namespace, so that ends the container), then
	// the shims.
	for _, shim := range c.ShimPIDs() {
		for _, child := range childrenOf(shim) {
			unix.Kill(child, unix.SIGKILL)
		}
		unix.Kill(shim, unix.SIGKILL)
		t.Logf("runtimetest: killed leftover shim %d", shim)
	}
	waitGone(c.ShimPIDs, 10*time.Second)
	// A shim that was killed leaves its socket in containerd's global
	// socket directory; each container's bundle says which it was.
	addrs, _ := filepath.Glob(filepath.Join(c.Dir, "state", "io.containerd.runtime.v2.task", "*", "*", "address"))
	for _, a := range addrs {
		b, err := os.ReadFile(a)
		if sock, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "unix://"); err == nil && ok {
			os.Remove(sock)
		}
	}
	for _, m := range c.Mounts() {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Logf("runtimetest: unmount %s: %v", m, err)
		}
	}
	removeCgroups(c.CgroupParent)
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("runtimetest: remove %s: %v", c.Dir, err)
	}
}

// removeAll deletes every task and container in every namespace, so that
// runc removes cgroups and the snapshotter unmounts.
func (c *Containerd) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := containerd.New(c.Address, containerd.WithTimeout(5*time.Second))
	if err != nil {
		c.t.Logf("runtimetest: cleanup cannot connect: %v", err)
		return
	}
	defer client.Close()
	nss, err := client.NamespaceService().List(ctx)
	if err != nil {
		c.t.Logf("runtimetest: cleanup: %v", err)
		return
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, _ := client.Containers(nctx)
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				task.Delete(nctx, containerd.WithProcessKill)
			}
			if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				c.t.Logf("runtimetest: cleanup container %s: %v", ctr.ID(), err)
			}
		}
	}
}

func childrenOf(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func waitGone(pids func() []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for len(pids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// removeCgroups removes the cgroup parent and everything below it in every
// hierarchy (cgroup v1 has one per controller), killing what still runs in
// them: the parent is unique to one test daemon, so whatever is inside is
// that test's. Only empty cgroups can be removed, so children go first, and
// a killed process leaves its cgroup only once it has exited: retry.
func removeCgroups(parent string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := 0
		for _, root := range roots {
			dir := filepath.Join(root, parent)
			if _, err := os.Stat(dir); err != nil {
				continue
			}
			var dirs []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
			for _, d := range dirs {
				procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
				for _, f := range strings.Fields(string(procs)) {
					if pid, err := strconv.Atoi(f); err == nil {
						unix.Kill(pid, unix.SIGKILL)
					}
				}
				if err := unix.Rmdir(d); err != nil && !os.IsNotExist(err) {
					left++
				}
			}
		}
		if left == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	dirPrefix  = "ctrd-"
	ownerFile  = "owner"      // identity of the test process
	daemonFile = "daemon.pid" // identity of the containerd process
)

// processIdentity is a PID and the process's start time, which together
// name one process even after its PID is reused.
func processIdentity(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// Field 22 is the start time; the command (field 2) may hold spaces
	// but ends at the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return "" // a zombie has exited
	}
	return strconv.Itoa(pid) + " " + fields[19]
}

// alive reports whether the process recorded in file still runs.
func alive(file string) (pid int, ok bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	id := strings.TrimSpace(string(b))
	pidStr, _, _ := strings.Cut(id, " ")
	pid, err = strconv.Atoi(pidStr)
	if err != nil || id == "" {
		return 0, false
	}
	return pid, processIdentity(pid) == id
}

// reapStale cleans up after test processes that died without running their
// cleanup (killed, or timed out): their daemon directory names an owner
// that is gone.
func reapStale(t testing.TB) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		if _, ok := alive(filepath.Join(dir, ownerFile)); ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ownerFile)); err != nil {
			continue // not ours, or still being set up
		}
		t.Logf("runtimetest: cleaning up %s, left by a test process that died", dir)
		if pid, ok := alive(filepath.Join(dir, daemonFile)); ok {
			unix.Kill(pid, unix.SIGKILL)
			waitGone(func() []int {
				if _, ok := alive(filepath.Join(dir, daemonFile)); ok {
					return []int{pid}
				}
				return nil
			}, 10*time.Second)
		}
		stale := &Containerd{
			Dir:          dir,
			Address:      filepath.Join(dir, "containerd.sock"),
			CgroupParent: "/skiff-test-" + filepath.Base(dir),
			t:            t,
		}
		stale.sweep()
	}
}
