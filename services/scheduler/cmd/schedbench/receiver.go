package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"skiff.dev/events/telemetry/telemetrytest"
)

// receiver is the OTLP receiver a traced run exports to, as a benchmark sees it: how many spans
// it has received and how much CPU it has used so far.
type receiver interface {
	stats() (spans int, cpu time.Duration, err error)
}

// inProcessReceiver is the receiver served in schedbench's own process: its CPU is in the
// scheduler's, so it reports none of its own.
type inProcessReceiver struct{ r *telemetrytest.Receiver }

func (r inProcessReceiver) stats() (int, time.Duration, error) { return r.r.Count(), 0, nil }

// childReceiver is a counting receiver in a child process (schedbench -otlp-receiver), as a
// collector runs beside the scheduler: its CPU is measured apart from the scheduler's. It
// answers each line on its stdin with its span count and CPU time.
type childReceiver struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	env []string
}

// startReceiver starts this program again as the receiver and waits for its endpoint.
func startReceiver() (*childReceiver, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &childReceiver{cmd: exec.Command(self, "-otlp-receiver")}
	c.cmd.Stderr = os.Stderr
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the OTLP receiver: %w", err)
	}
	c.out = bufio.NewReader(out)
	line, err := c.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		c.stop()
		return nil, fmt.Errorf("OTLP receiver did not get ready: %q %v", line, err)
	}
	c.env = strings.Fields(strings.TrimPrefix(line, "ready "))
	return c, nil
}

func (c *childReceiver) stats() (int, time.Duration, error) {
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return 0, 0, fmt.Errorf("ask the OTLP receiver: %w", err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return 0, 0, fmt.Errorf("read the OTLP receiver's answer: %w", err)
	}
	var spans int
	var cpu time.Duration
	if _, err := fmt.Sscan(line, &spans, &cpu); err != nil {
		return 0, 0, fmt.Errorf("OTLP receiver answered %q: %w", line, err)
	}
	return spans, cpu, nil
}

// stop closes the receiver's stdin, which ends it, and waits for it.
func (c *childReceiver) stop() {
	_ = c.in.Close()
	_ = c.cmd.Wait()
}

// serveReceiver is the child's side: serve, print the environment that points an exporter at
// it, then answer each line on stdin until it closes.
func serveReceiver() error {
	r, stop, err := telemetrytest.Serve(net.Listen, "127.0.0.1", false)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("ready %s\n", strings.Join(r.Env("grpc"), " "))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Printf("%d %d\n", r.Count(), cpuTime())
	}
	return in.Err()
}
