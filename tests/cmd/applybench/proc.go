package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// proc is one process the benchmark started. It is stopped by its own PID only: the benchmark
// never signals anything it did not start.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	// exited is closed once the process has been waited for; err is Wait's result then.
	exited chan struct{}
	err    error
}

// cluster is one run's directory and the processes started for it.
type cluster struct {
	// bin holds the binaries, dir is the run's data (removed after it), logDir the logs (kept).
	bin, dir, logDir string
	// n is the run's number.
	n     int
	procs []*proc
}

func (c *cluster) skiff() string { return filepath.Join(c.bin, "skiff") }

// start starts argv in workDir ("" for this process's) as startProc does, with its log in
// logDir as runN-logName.log, and keeps it to be stopped with the run's.
func (c *cluster) start(name, logName, workDir string, argv ...string) (*proc, error) {
	p, err := startProc(name, filepath.Join(c.logDir, fmt.Sprintf("run%d-%s.log", c.n, logName)), workDir, argv...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// running reports the first of the run's processes that has exited.
func (c *cluster) running() error {
	for _, p := range c.procs {
		if err := p.running(); err != nil {
			return err
		}
	}
	return nil
}

// stop stops every process, newest first (the nodes before the control plane they talk to,
// the scheduler before its NATS server), and returns the processes that needed SIGKILL.
func (c *cluster) stop(grace time.Duration) []error {
	var errs []error
	for _, p := range slices.Backward(c.procs) {
		if err := p.stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// status prints a progress line of the run.
func (c *cluster) status(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "run %d: %s\n", c.n, fmt.Sprintf(format, args...))
}

// startProc starts argv in workDir ("" for this process's) with stdout and stderr going to
// logPath. The child gets SIGKILL if the benchmark itself dies, so a killed benchmark leaves no
// cluster behind.
func startProc(name, logPath, workDir string, argv ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	// The child has its own copy of the descriptor once started.
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = workDir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid is the process's id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// running reports an error if the process has exited.
func (p *proc) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s (pid %d) exited: %v; its log %s ends:\n%s", p.name, p.pid(), p.err, p.logPath, tail(p.logPath, 20))
	default:
		return nil
	}
}

// stop sends SIGTERM and, if the process has not exited within grace, SIGKILL. It reports a
// process that needed the SIGKILL.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM; killed", p.name, p.pid(), grace)
}

// peakRSS is the process's peak resident set size in bytes (VmHWM).
func (p *proc) peakRSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "VmHWM: %d kB", &kb); err == nil {
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.pid())
}

// tail is the last n lines of the file at path, indented, with runs of lines that differ only
// in their time= field folded into one (a log flooded by one message still shows what came
// before), or why it could not be read.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	type run struct {
		line  string
		count int
	}
	var runs []run
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		if k := len(runs) - 1; k >= 0 && withoutTime(runs[k].line) == withoutTime(line) {
			runs[k].line = line
			runs[k].count++
			continue
		}
		runs = append(runs, run{line, 1})
	}
	if len(runs) == 0 {
		return "    (empty)"
	}
	runs = runs[max(len(runs)-n, 0):]
	var b strings.Builder
	for i, r := range runs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("    " + r.line)
		if r.count > 1 {
			fmt.Fprintf(&b, "  (×%d, the last shown)", r.count)
		}
	}
	return b.String()
}

// withoutTime is a slog text line without its leading time= field.
func withoutTime(line string) string {
	if rest, ok := strings.CutPrefix(line, "time="); ok {
		_, after, _ := strings.Cut(rest, " ")
		return after
	}
	return line
}

// errNotYet tells poll to try again.
var errNotYet = errors.New("not yet")

// poll calls try every interval until it returns something other than errNotYet, ctx ends, or
// timeout passes; then it returns that error, or one saying what was awaited and the last
// state try described.
func poll(ctx context.Context, what string, timeout, interval time.Duration, try func() (state string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		state, err := try()
		if !errors.Is(err, errNotYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s (last: %s): %w", what, timeout, state, ctx.Err())
		case <-t.C:
		}
	}
}
