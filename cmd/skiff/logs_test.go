package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/services/nodeagent"
)

// logsPod is a pod of the logs tests and where the scheduler put it.
type logsPod struct {
	name, uid, node string
	containers      []string
	status          *events.PodStatus // nil: not reported yet
	unschedulable   string
}

// logsCluster writes the pods' history and starts the real logs server of node n1 over a log
// directory the test writes. It returns that directory.
func logsCluster(t *testing.T, pods ...logsPod) (*cluster, string) {
	t.Helper()
	c := newCluster(t)
	f := c.startScheduler()
	var seq uint64
	for _, p := range pods {
		seq = appendPod(c, p)
	}
	f.waitSeq(t, seq)
	dir, _ := startLogsServer(t, c.nc, "n1")
	return c, dir
}

// appendPod writes one pod's history and returns the last sequence.
func appendPod(c *cluster, p logsPod) uint64 {
	pod := events.Pod{Metadata: events.ObjectMeta{Namespace: "default", Name: p.name, UID: p.uid}}
	for _, n := range p.containers {
		pod.Spec.Containers = append(pod.Spec.Containers, events.Container{Name: n, Image: "skiff.dev/echo:v1"})
	}
	ref := podRef("default", p.name, p.uid)
	seq := c.append(0, "user/alice", ref, "", &events.PodCreated{Pod: pod})
	if p.unschedulable != "" {
		seq = c.append(time.Second, scheduler, ref, "", &events.PodUnschedulable{UID: p.uid, Message: p.unschedulable})
	}
	if p.node == "" {
		return seq
	}
	c.append(time.Second, scheduler, ref, "", &events.PodScheduled{UID: p.uid, Node: p.node})
	pod.Spec.NodeName = p.node
	seq = c.append(time.Second, scheduler, ref, p.node, &events.PodBound{Pod: pod})
	if p.status != nil {
		seq = c.append(2*time.Second, "node/"+p.node, ref, p.node, &events.PodStatusReported{UID: p.uid, Status: *p.status})
	}
	return seq
}

// startLogsServer runs the node agent's logs server for node over a new log directory until
// stop or the end of the test, and waits until it answers.
func startLogsServer(t *testing.T, nc *nats.Conn, node string) (dir string, stop func()) {
	t.Helper()
	dir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nodeagent.ServeLogs(ctx, nc, node, dir, nil) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ServeLogs: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	eventstest.EventuallyErr(t, 10*time.Second, "the logs server answers", func() error {
		_, err := nc.Request(api.LogsSubject(node), []byte("{}"), time.Second)
		if err != nil && !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("the logs server does not answer: %v", err)
		}
		return err
	})
	return dir, stop
}

// writeLog writes the log file of one run of a container of a pod, where the runtime's shim
// writes it: <dir>/<namespace>_<pod>_<uid>/<container>/<run>.log.
func writeLog(t *testing.T, dir, pod, uid, container, file, content string) string {
	t.Helper()
	p := filepath.Join(dir, "default_"+pod+"_"+uid, container, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func appendLog(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

var (
	runningStatus = &events.PodStatus{Phase: events.PodRunning, ContainerStatuses: []events.ContainerStatus{
		{Name: "app", Ready: true, RestartCount: 1, State: events.ContainerState{Running: &events.ContainerStateRunning{}}}}}
	creatingStatus = &events.PodStatus{Phase: events.PodPending, ContainerStatuses: []events.ContainerStatus{
		{Name: "app", State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "ErrImageNotFound"}}}}}
	succeededStatus = &events.PodStatus{Phase: events.PodSucceeded, ContainerStatuses: []events.ContainerStatus{
		{Name: "app", State: events.ContainerState{Terminated: &events.ContainerStateTerminated{Reason: "Completed"}}}}}
)

var logsPods = []logsPod{
	{name: "web", uid: "u-web", node: "n1", containers: []string{"app"}, status: runningStatus},
	{name: "multi", uid: "u-multi", node: "n1", containers: []string{"app", "sidecar"}, status: runningStatus},
	{name: "fresh", uid: "u-fresh", node: "n1", containers: []string{"app"}, status: runningStatus},
	{name: "creating", uid: "u-creating", node: "n1", containers: []string{"app"}, status: creatingStatus},
	{name: "bound", uid: "u-bound", node: "n1", containers: []string{"app"}},
	{name: "done", uid: "u-done", node: "n1", containers: []string{"app"}, status: succeededStatus},
	{name: "pending", uid: "u-pending", containers: []string{"app"}, unschedulable: "0/2 nodes are available: 2 Insufficient cpu."},
	{name: "far", uid: "u-far", node: "n2", containers: []string{"app"}, status: runningStatus},
}

func TestLogs(t *testing.T) {
	c, dir := logsCluster(t, logsPods...)
	writeLog(t, dir, "web", "u-web", "app", "0.log", "crashed\n")
	writeLog(t, dir, "web", "u-web", "app", "1.log.1", "one\ntwo\n")
	writeLog(t, dir, "web", "u-web", "app", "1.log", "three\nfour\n")
	writeLog(t, dir, "multi", "u-multi", "app", "0.log", "app says\n")
	writeLog(t, dir, "multi", "u-multi", "sidecar", "0.log", "sidecar says\n")
	writeLog(t, dir, "fresh", "u-fresh", "app", "0.log", "first run\n")
	writeLog(t, dir, "done", "u-done", "app", "0.log", "finished\n")

	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{name: "the current run", args: []string{"logs", "web"}, wantStdout: "one\ntwo\nthree\nfour\n"},
		{name: "KIND/NAME", args: []string{"logs", "pod/web"}, wantStdout: "one\ntwo\nthree\nfour\n"},
		{name: "tail", args: []string{"logs", "web", "--tail", "3"}, wantStdout: "two\nthree\nfour\n"},
		{name: "previous", args: []string{"logs", "web", "-p"}, wantStdout: "crashed\n"},
		{name: "named container", args: []string{"logs", "multi", "-c", "sidecar"}, wantStdout: "sidecar says\n"},
		{name: "inline container", args: []string{"logs", "multi", "app"}, wantStdout: "app says\n"},
		{name: "an ended pod is not followed", args: []string{"logs", "-f", "done"}, wantStdout: "finished\n"},
		{name: "no previous run", args: []string{"logs", "fresh", "--previous"}, wantCode: 1,
			wantStderr: "Error from server (NotFound): previous terminated container \"app\" in pod \"fresh\" not found\n"},
		{name: "several containers", args: []string{"logs", "multi"}, wantCode: 1,
			wantStderr: "error: a container name must be specified for pod multi, choose one of: [app sidecar]\n"},
		{name: "unknown container", args: []string{"logs", "web", "-c", "db"}, wantCode: 1,
			wantStderr: "error: container db is not valid for pod web\n"},
		{name: "unknown pod", args: []string{"logs", "nope"}, wantCode: 1,
			wantStderr: "Error from server (NotFound): pods \"nope\" not found\n"},
		{name: "other namespace", args: []string{"logs", "web", "-n", "shop"}, wantCode: 1,
			wantStderr: "Error from server (NotFound): pods \"web\" not found\n"},
		{name: "not scheduled", args: []string{"logs", "pending"}, wantCode: 1,
			wantStderr: "error: pod pending is not scheduled to a node, so it has no logs yet: 0/2 nodes are available: 2 Insufficient cpu.\n"},
		{name: "waiting to start", args: []string{"logs", "creating"}, wantCode: 1,
			wantStderr: "error: container \"app\" in pod \"creating\" is waiting to start: ErrImageNotFound\n"},
		{name: "bound, nothing reported yet", args: []string{"logs", "bound", "-f"}, wantCode: 1,
			wantStderr: "error: container \"app\" in pod \"bound\" is waiting to start: ContainerCreating\n"},
		{name: "no agent on the node", args: []string{"logs", "far"}, wantCode: 1,
			wantStderr: "error: no agent answers for node n2: is skiff-nodeagent running there?\n"},
		{name: "not a pod", args: []string{"logs", "deploy/web"}, wantCode: 2,
			wantStderr: "error: skiff logs reads the logs of pods; \"deploy/web\" is not a pod\nSee 'skiff logs --help' for usage.\n"},
		{name: "container twice", args: []string{"logs", "multi", "app", "-c", "sidecar"}, wantCode: 2,
			wantStderr: "error: only one of -c or an inline [CONTAINER] arg is allowed\nSee 'skiff logs --help' for usage.\n"},
		{name: "no pod", args: []string{"logs"}, wantCode: 2,
			wantStderr: "error: skiff logs takes POD [CONTAINER], got 0 arguments\nSee 'skiff logs --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stdout != tt.wantStdout || r.stderr != tt.wantStderr {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q",
					r.code, r.stdout, r.stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

// TestLogsBig checks a log of many chunks arrives whole and in order.
func TestLogsBig(t *testing.T) {
	c, dir := logsCluster(t, logsPods[0])
	var want []byte
	for i := 0; len(want) < 3*api.LogsChunkBytes+100; i++ {
		want = append(want, []byte(time.Duration(i).String()+" of a long log line\n")...)
	}
	writeLog(t, dir, "web", "u-web", "app", "0.log", string(want))
	r := c.run("logs", "web")
	if r.code != 0 || r.stdout != string(want) {
		t.Fatalf("exit %d, %d bytes of %d, stderr %q", r.code, len(r.stdout), len(want), r.stderr)
	}
}

func TestLogsFollow(t *testing.T) {
	t.Run("until the pod is gone", func(t *testing.T) {
		c, dir := logsCluster(t, logsPods[0])
		p := writeLog(t, dir, "web", "u-web", "app", "0.log", "hello\n")
		b := c.start("logs", "-f", "web")
		b.waitFor(t, "hello\n")
		appendLog(t, p, "more\n")
		b.waitFor(t, "hello\nmore\n")
		// A restart: the last words of the old run, then the new run.
		appendLog(t, p, "dying\n")
		writeLog(t, dir, "web", "u-web", "app", "1.log", "reborn\n")
		b.waitFor(t, "hello\nmore\ndying\nreborn\n")
		if err := os.RemoveAll(filepath.Join(dir, "default_web_u-web")); err != nil {
			t.Fatal(err)
		}
		if code := b.wait(t); code != 0 || b.out.String() != "hello\nmore\ndying\nreborn\n" || b.err.String() != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, b.out.String(), b.err.String())
		}
	})

	t.Run("a container that exited", func(t *testing.T) {
		c := newCluster(t)
		f := c.startScheduler()
		p := logsPods[0]
		p.status = &events.PodStatus{Phase: events.PodRunning, ContainerStatuses: []events.ContainerStatus{{Name: "app",
			State: events.ContainerState{Terminated: &events.ContainerStateTerminated{ExitCode: 1}}}}}
		f.waitSeq(t, appendPod(c, p))
		dir, _ := startLogsServer(t, c.nc, p.node)
		writeLog(t, dir, "web", "u-web", "app", "0.log", "last words\n")
		r := c.run("logs", "-f", "web")
		if r.code != 0 || r.stdout != "last words\n" || r.stderr != "" {
			t.Fatalf("logs -f of an exited container: exit %d, stdout %q, stderr %q; want its log, then the end", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		c, dir := logsCluster(t, logsPods[0])
		writeLog(t, dir, "web", "u-web", "app", "0.log", "hello\n")
		b := c.start("logs", "-f", "web")
		b.waitFor(t, "hello\n")
		if code := b.stop(t); code != 0 || b.out.String() != "hello\n" {
			t.Fatalf("exit %d after an interrupt, stdout %q, stderr %q", code, b.out.String(), b.err.String())
		}
	})

	t.Run("the agent stops", func(t *testing.T) {
		c := newCluster(t)
		f := c.startScheduler()
		f.waitSeq(t, appendPod(c, logsPods[0]))
		dir, stop := startLogsServer(t, c.nc, "n1")
		writeLog(t, dir, "web", "u-web", "app", "0.log", "hello\n")
		b := c.start("logs", "-f", "web")
		b.waitFor(t, "hello\n")
		stop()
		if code := b.wait(t); code != 1 || b.err.String() != "Error from server (Unavailable): the node agent of n1 is stopping\n" {
			t.Fatalf("exit %d, stderr %q", code, b.err.String())
		}
	})

	t.Run("the agent goes silent", func(t *testing.T) {
		c := newCluster(t)
		f := c.startScheduler()
		p := logsPods[0]
		p.node = "n3"
		f.waitSeq(t, appendPod(c, p))
		// An agent that accepts the stream, then neither sends nor probes: as if it died.
		sub, err := c.nc.Subscribe(api.LogsSubject("n3"), func(m *nats.Msg) {
			_ = api.Reply(m, api.LogsResponse{HeartbeatMillis: 10})
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := c.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		r := c.run("logs", "-f", "web")
		if r.code != 1 || r.stderr != "error: the agent of node n3 stopped answering; the log may be incomplete\n" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}
