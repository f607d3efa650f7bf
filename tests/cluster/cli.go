package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// commandTimeout bounds one CLI, ctr or exec command.
const commandTimeout = 60 * time.Second

// Skiff runs the skiff CLI with args in the control plane's namespace against the cluster's NATS
// and returns its standard output. A failure's error holds the exit status and standard error.
func (c *Cluster) Skiff(args ...string) (string, error) {
	return c.skiff("", args...)
}

// SkiffStdin is Skiff with stdin as standard input.
func (c *Cluster) SkiffStdin(stdin string, args ...string) (string, error) {
	return c.skiff(stdin, args...)
}

func (c *Cluster) skiff(stdin string, args ...string) (string, error) {
	return run(stdin, "nsenter", c.skiffArgv(e2eUser, args)...)
}

// SkiffAs is Skiff with the creds of identity (as Creds names them): "admin" for what only an
// operator may do, such as `cluster bootstrap`.
func (c *Cluster) SkiffAs(identity string, args ...string) (string, error) {
	return run("", "nsenter", c.skiffArgv(identity, args)...)
}

// SkiffCommand is the command Skiff runs, not started, as the test's CLI user: for a test that
// times the CLI, runs many at once, or reads its standard error and exit status itself. ctx
// kills it.
func (c *Cluster) SkiffCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", c.skiffArgv(e2eUser, args)...)
}

// skiffArgv is nsenter's argv that runs the CLI as identity in the control plane's namespace.
func (c *Cluster) skiffArgv(identity string, args []string) []string {
	return append([]string{"--net=" + netnsPath(c.ControlPlaneNetns), "--", c.Bin.Skiff,
		"--server", c.Server, "--creds", c.Creds(identity), "--tls-ca", c.CA()}, args...)
}

// Apply applies a manifest (YAML or JSON, one or more documents) and fails the test if the
// cluster rejects it. It returns the CLI's output ("deployment.apps/web created").
func (c *Cluster) Apply(manifest string) string {
	c.t.Helper()
	out, err := c.SkiffStdin(manifest, "apply", "-f", "-")
	if err != nil {
		c.t.Fatalf("skiff apply: %v\nmanifest:\n%s", err, manifest)
	}
	return out
}

// Pods lists the pods of every namespace as `skiff get pods -A -o json` prints them.
func (c *Cluster) Pods() []events.Pod {
	c.t.Helper()
	pods, err := c.PodsErr()
	if err != nil {
		c.t.Fatal(err)
	}
	return pods
}

// PodsErr is Pods returning its error, for use inside WaitFor conditions that tolerate one.
func (c *Cluster) PodsErr() ([]events.Pod, error) {
	out, err := c.Skiff("get", "pods", "-A", "-o", "json")
	if err != nil {
		// kubectl's behaviour: an empty listing prints "No resources found" on stderr.
		if strings.Contains(err.Error(), "No resources found") {
			return nil, nil
		}
		return nil, fmt.Errorf("skiff get pods: %w", err)
	}
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	var list struct {
		Items []events.Pod `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("decode skiff get pods -o json: %v\n%s", err, out)
	}
	return list.Items, nil
}

// Pod returns the pod called name in namespace default, and whether it exists.
func (c *Cluster) Pod(name string) (events.Pod, bool) {
	c.t.Helper()
	for _, p := range c.Pods() {
		if p.Metadata.Name == name && p.Metadata.Namespace == "default" {
			return p, true
		}
	}
	return events.Pod{}, false
}

// WaitFor polls cond every 100 ms until it returns true, and fails the test with what it was
// waiting for when Options.Timeout passes first. It returns how long it waited.
func (c *Cluster) WaitFor(what string, cond func() bool) time.Duration {
	c.t.Helper()
	return c.WaitForWithin(c.opts.Timeout, what, cond)
}

// WaitForWithin is WaitFor with its own timeout.
func (c *Cluster) WaitForWithin(timeout time.Duration, what string, cond func() bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// ExecInNode runs a command in a node's network namespace (the host's mount namespace and
// files), such as curl to a pod IP, and returns its combined output.
func (c *Cluster) ExecInNode(node string, cmd ...string) (string, error) {
	c.t.Helper()
	n := c.Node(node)
	return run("", "nsenter", append([]string{"--net=" + netnsPath(n.Netns), "--"}, cmd...)...)
}

// ExecInPod runs a command in the network namespace of a pod (of its first container), from the
// host's files: the pod's images hold no curl.
func (c *Cluster) ExecInPod(pod events.Pod, cmd ...string) (string, error) {
	c.t.Helper()
	pid, err := c.ContainerPID(pod, 0)
	if err != nil {
		return "", err
	}
	return run("", "nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", pid), "--"}, cmd...)...)
}

// ContainerPID is the host PID of the i-th container of pod, from its node's containerd.
func (c *Cluster) ContainerPID(pod events.Pod, i int) (int, error) {
	c.t.Helper()
	if pod.Spec.NodeName == "" || len(pod.Status.ContainerStatuses) <= i {
		return 0, fmt.Errorf("pod %s is not running on a node yet", pod.Metadata.Name)
	}
	id := strings.TrimPrefix(pod.Status.ContainerStatuses[i].ContainerID, "containerd://")
	tasks, err := c.Tasks(pod.Spec.NodeName)
	if err != nil {
		return 0, err
	}
	for _, tk := range tasks {
		if tk.ID == id {
			return tk.PID, nil
		}
	}
	return 0, fmt.Errorf("container %s of pod %s has no task on %s", id, pod.Metadata.Name, pod.Spec.NodeName)
}

// Ctr runs ctr against a node's containerd in the agent's containerd namespace.
func (c *Cluster) Ctr(node string, args ...string) (string, error) {
	c.t.Helper()
	n := c.Node(node)
	return run("", "ctr", append([]string{"--address", n.ContainerdAddress, "--namespace", "skiff"}, args...)...)
}

// Task is one containerd task as `ctr tasks ls` lists it.
type Task struct {
	ID     string
	PID    int
	Status string
}

// Tasks lists the tasks of a node's containerd.
func (c *Cluster) Tasks(node string) ([]Task, error) {
	c.t.Helper()
	out, err := c.Ctr(node, "tasks", "ls")
	if err != nil {
		return nil, err
	}
	return ParseTasks(out), nil
}

// ParseTasks reads `ctr tasks ls`: a header, then TASK PID STATUS per line.
func ParseTasks(out string) []Task {
	var tasks []Task
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) != 3 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		tasks = append(tasks, Task{ID: f[0], PID: pid, Status: f[2]})
	}
	return tasks
}

// Events reads the whole log, or the events on the given subject filters, in stream order.
func (c *Cluster) Events(filters ...string) []*events.Event {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*events.Event
	if err := c.Store().Read(ctx, store.ReadOptions{Filters: filters}, func(ev *events.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		c.t.Fatalf("read the log %v: %v", filters, err)
	}
	return out
}

// PodEvents are the events of one pod of namespace ns: its own subject, its bindings and every
// node's status reports, in stream order.
func (c *Cluster) PodEvents(ns, name string) []*events.Event {
	c.t.Helper()
	return c.Events(
		events.ObjectSubject(events.KindPod, ns, name),
		events.SubjectRoot+"."+events.KindBind+".*."+ns+"."+name,
		events.SubjectRoot+"."+events.KindStatus+".*."+ns+"."+name,
	)
}

// run runs a command with a timeout and returns its standard output; a failure's error holds
// the exit status and standard error.
func run(stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// EventsSince reads the events after sequence seq, or those of them on the given subject
// filters, in stream order.
func (c *Cluster) EventsSince(seq uint64, filters ...string) []*events.Event {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*events.Event
	if err := c.Store().Read(ctx, store.ReadOptions{Filters: filters, From: seq + 1}, func(ev *events.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		c.t.Fatalf("read the log after %d %v: %v", seq, filters, err)
	}
	return out
}

// Head is the sequence of the log's last event.
func (c *Cluster) Head() uint64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq, err := c.Store().Head(ctx)
	if err != nil {
		c.t.Fatalf("log head: %v", err)
	}
	return seq
}

// ContainerdEvents follows the events of a node's containerd (`ctr events`): task exits with
// their exit status, OOMs, deletes. It returns once the subscription is known to work (a
// namespace made and removed to see its event come through); stop ends the subscription and
// returns every event line printed.
func (c *Cluster) ContainerdEvents(node string) (stop func() string) {
	c.t.Helper()
	n := c.Node(node)
	cmd := exec.Command("ctr", "--address", n.ContainerdAddress, "events")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("ctr events: %v", err)
	}
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return out.String()
	}
	c.t.Cleanup(func() { stop() })
	probe := fmt.Sprintf("e2e-probe-%d", time.Now().UnixNano())
	ctr := func(args ...string) {
		if _, err := run("", "ctr", append([]string{"--address", n.ContainerdAddress}, args...)...); err != nil {
			c.t.Fatal(err)
		}
	}
	seen := false
	for deadline := time.Now().Add(c.opts.Timeout); !seen && time.Now().Before(deadline); {
		ctr("namespaces", "create", probe)
		ctr("namespaces", "remove", probe)
		for end := time.Now().Add(500 * time.Millisecond); !seen && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			seen = strings.Contains(out.String(), probe)
		}
	}
	if !seen {
		c.t.Fatalf("ctr events on %s shows nothing:\n%s", node, stop())
	}
	return stop
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
