package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The pieces below let other harnesses (tests/natscluster) build their own machines out of the
// same parts: a run whose leftovers the stale sweep finds, namespaces on a LAN bridge, processes
// started inside them, and a dialer from the test process into a namespace.

// Run is one harness run's footprint on the machine: its directory (with the owner and pids
// files the stale sweep reads) and the prefix of its namespaces.
type Run struct {
	// ID prefixes every namespace of the run; Dir is os.TempDir()/ID.
	ID, Dir string
}

// NewRun sweeps what dead test processes left, then makes a run directory owned by this process.
// Its teardown is the caller's (Sweep), so it can stop its processes first.
func NewRun() (Run, error) {
	sweepStale(nil)
	id := fmt.Sprintf("%s%d-%d", runPrefix, os.Getpid(), runSeq.Add(1))
	r := Run{ID: id, Dir: filepath.Join(os.TempDir(), id)}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return Run{}, err
	}
	if err := os.WriteFile(filepath.Join(r.Dir, ownerFile), []byte(processIdentity(os.Getpid())), 0o644); err != nil {
		return Run{}, err
	}
	return r, nil
}

// Sweep removes everything the run left: processes it recorded that still run, its namespaces
// and its directory. Best effort and idempotent.
func (r Run) Sweep(logf func(string, ...any)) { sweepRun(r.Dir, r.ID, logf) }

// Machine is one network namespace on a LAN, with one address on the LAN's bridge.
type Machine struct {
	Netns   string // namespace name under /run/netns
	Port    string // its veth's name on the bridge, unique on the LAN, at most 15 bytes
	Address string // IPv4 address, /24
}

// SetupLAN creates namespace lan holding a bridge, and each machine's namespace wired to it; see
// setupLAN. Nothing is created in the host's namespace.
func SetupLAN(lan string, machines []Machine) error {
	ms := make([]member, len(machines))
	for i, m := range machines {
		ms[i] = member{netns: m.Netns, veth: m.Port, address: m.Address}
	}
	return setupLAN(lan, ms)
}

// NetnsDialer is a nats.CustomDialer whose sockets are made inside namespace netns, so the test
// process can reach servers in it (or on its LAN) without leaving the host's namespace.
func NetnsDialer(netns string, timeout time.Duration) nats.CustomDialer {
	return netnsDialer{path: netnsPath(netns), timeout: timeout}
}

// Process is a long-running program the harness started inside a network namespace: it gets
// SIGKILL when the test process dies, and the run's sweep kills it if it survives anyway.
type Process struct{ p *proc }

// ProcessSpec says what to run where.
type ProcessSpec struct {
	Name  string   // for logs and errors
	Netns string   // namespace name
	Argv  []string // program and arguments
	Dir   string   // working directory; "" for the test's
	Log   string   // file receiving stdout and stderr, appended to on every start
	// Env is added to the test process's environment (raw_exec passes the client's on too).
	Env []string
	// MountNS, when set, is a mount namespace (such as /proc/PID/ns/mnt) the process runs in as
	// well; Dir is then a path inside it.
	MountNS string
}

// NewProcess returns the process described by spec, not started.
func NewProcess(spec ProcessSpec) *Process {
	return &Process{p: &proc{name: spec.Name, netns: spec.Netns, argv: spec.Argv, dir: spec.Dir, logPath: spec.Log, env: spec.Env, mountns: spec.MountNS}}
}

// Start starts the process (again, once it has exited), recording it in the run's pids file.
func (p *Process) Start(r Run) error { return p.p.start(filepath.Join(r.Dir, pidsFile)) }

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() error {
	if !p.p.signal(syscall.SIGKILL, 10*time.Second) {
		return fmt.Errorf("%s did not exit within 10s of SIGKILL", p.p.name)
	}
	return nil
}

// Signal sends sig (SIGSTOP and SIGCONT freeze and thaw it) without waiting.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.p.running() {
		return fmt.Errorf("%s is not running", p.p.name)
	}
	p.p.signal(sig, 0)
	return nil
}

// Stop sends SIGTERM and SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) { p.p.stop(grace) }

// Running reports whether the process runs; PID is its PID, 0 if not.
func (p *Process) Running() bool { return p.p.running() }
func (p *Process) PID() int      { return p.p.pid() }

// Done is closed when the current run of the process exits.
func (p *Process) Done() <-chan struct{} { return p.p.done() }

// Log is the process's output since its current (or last) start.
func (p *Process) Log() string { return p.p.log() }

// RequireRoot fails t (never skips it) when the test process is not root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("needs root (%s): run the tests as root", why)
	}
}

// ContainerdConfig is the configuration of a private containerd (see containerdConfig): root and
// state directories and the socket, as the harness runs it.
func ContainerdConfig(root, state, address string) string {
	return fmt.Sprintf(containerdConfig, root, state, address)
}

// mountTmpfs mounts a tmpfs of size bytes at dir (made if missing), in the host's mount
// namespace. Mounts under a run's directory are unmounted by its sweep.
func mountTmpfs(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return fmt.Errorf("mount a tmpfs of %d bytes at %s: %w", size, dir, err)
	}
	return nil
}
