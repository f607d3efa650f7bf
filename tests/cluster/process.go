package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one long-running process the harness started inside a network namespace.
type proc struct {
	name    string
	argv    []string
	netns   string // name under /run/netns
	logPath string
	env     []string
	dir     string // working directory; "" for the test's
	mountns string // mount namespace to enter too; "" for the test's

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	// logStart is the size of the log file when the current run started, so waiting for a log
	// line only looks at this run's output.
	logStart int64
}

// start runs the process in its network namespace. The process gets SIGKILL when the test
// process dies (Pdeathsig), so a killed test leaves no agent or containerd behind; its identity
// is recorded in pidsFile for the next run's stale sweep in case something survives anyway.
func (p *proc) start(pidsFile string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log file: %w", p.name, err)
	}
	if fi, err := logFile.Stat(); err == nil {
		p.logStart = fi.Size()
	}
	fmt.Fprintf(logFile, "=== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	// nsenter rather than `ip netns exec`: the latter also makes a private mount namespace, and
	// containerd's mounts must be visible to the agent (and to the cleanup).
	args := []string{"--net=" + netnsPath(p.netns)}
	if p.mountns != "" {
		// Entering a mount namespace moves the working directory to its root: name it again.
		args = append(args, "--mount="+p.mountns)
		if p.dir != "" {
			args = append(args, "--wd="+p.dir)
		}
	}
	args = append(append(args, "--"), p.argv...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if p.mountns == "" {
		cmd.Dir = p.dir
	}
	cmd.Env = append(append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin"), p.env...)
	// Own process group: a terminal's ^C reaches the test, whose cleanup then stops these in
	// order. Pdeathsig is tied to the OS thread that forks, so that thread stays locked (and
	// alive) for as long as the child runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.exited = cmd, exited
	if id := processIdentity(cmd.Process.Pid); id != "" {
		appendLine(pidsFile, p.name+" "+id)
	}
	return nil
}

// pid is the running process's PID, 0 if it is not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.exited:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// running reports whether the process runs.
func (p *proc) running() bool { return p.pid() != 0 }

// done is closed when the current run exits (nil if never started).
func (p *proc) done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// signal sends sig and, if wait > 0, waits that long for the process to exit. It reports
// whether the process is gone.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	if wait <= 0 {
		return false
	}
	select {
	case <-exited:
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		return true
	case <-time.After(wait):
		return false
	}
}

// stop asks the process to exit (SIGTERM), and kills it after grace.
func (p *proc) stop(grace time.Duration) {
	if !p.signal(syscall.SIGTERM, grace) {
		p.signal(syscall.SIGKILL, 10*time.Second)
	}
}

// log returns this process's log, from the start of its current (or last) run.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	p.mu.Lock()
	start := p.logStart
	p.mu.Unlock()
	if start > int64(len(b)) {
		start = 0
	}
	return string(b[start:])
}

// processIdentity is a PID and the process's start time, which together name one process even
// after its PID is reused; "" if the process is gone or a zombie.
func processIdentity(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command (field 2) may hold spaces but ends at the last ')'; the start time is field 22.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19]
}

// aliveIdentity parses "PID STARTTIME" and reports the PID if that very process still runs.
func aliveIdentity(id string) (int, bool) {
	pidStr, _, _ := strings.Cut(strings.TrimSpace(id), " ")
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, processIdentity(pid) == strings.TrimSpace(id)
}

// appendLine appends one line to file, best effort: the file only helps a later stale sweep.
func appendLine(file, line string) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// childrenOf lists the direct children of pid, whichever of its threads started them.
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, tk := range tasks {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, tk.Name()))
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// shim is one containerd shim process.
type shim struct {
	pid int
	id  string // the -id it was started with: the first container of its group
	// launcher: a `shim start` process, which starts the long-lived shim and exits.
	launcher bool
}

// shimsUnder returns the containerd shims serving a containerd whose socket lives under dir:
// shims outlive their containerd by design, and their command line names its socket.
func shimsUnder(dir string) []shim {
	entries, _ := os.ReadDir("/proc")
	var out []shim
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 0 || !strings.Contains(args[0], "containerd-shim") {
			continue
		}
		s := shim{pid: pid, launcher: args[len(args)-1] == "start"}
		ours := false
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "-address":
				ours = strings.HasPrefix(args[i+1], dir+"/")
			case "-id":
				s.id = args[i+1]
			}
			if ours && s.id != "" {
				break
			}
		}
		if ours {
			out = append(out, s)
		}
	}
	return out
}

func shimPIDs(dir string) []int {
	var pids []int
	for _, s := range shimsUnder(dir) {
		pids = append(pids, s.pid)
	}
	return pids
}

// killShims kills the shims of containerds under dir, and the containers they hold: each
// container's init is PID 1 of its own PID namespace, so killing it ends the container.
func killShims(dir string) (killed int) {
	for attempt := 0; attempt < 3; attempt++ {
		shims := shimPIDs(dir)
		if len(shims) == 0 {
			return killed
		}
		for _, shim := range shims {
			for _, child := range childrenOf(shim) {
				_ = syscall.Kill(child, syscall.SIGKILL)
			}
			_ = syscall.Kill(shim, syscall.SIGKILL)
			killed++
		}
		Poll(10*time.Second, func() bool { return len(shimPIDs(dir)) == 0 })
	}
	return killed
}
