package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/store"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/datacenter"
)

// userWriter is a user running `skiff apply` of a new Namespace again and again, recording every
// namespace the CLI said it created: what a user was told is done.
type userWriter struct {
	c *datacenter.Cluster

	mu       sync.Mutex
	created  []string
	failures map[string]int // first line of the CLI's error → how many times
	n        int
}

func (w *userWriter) run(ctx context.Context) {
	for ctx.Err() == nil {
		w.mu.Lock()
		w.n++
		name := fmt.Sprintf("w-%04d", w.n)
		w.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := createNamespace(actx, w.c, name)
		cancel()
		w.mu.Lock()
		if err == nil && strings.Contains(out, "created") {
			w.created = append(w.created, name)
		} else if ctx.Err() == nil {
			w.failures[firstErrorLine(out)]++
		}
		w.mu.Unlock()
	}
}

// createNamespace applies Namespace name as alice: a small write the cluster ignores otherwise.
func createNamespace(ctx context.Context, c *datacenter.Cluster, name string) (string, error) {
	f := filepath.Join(c.Run.Dir, "ns-"+name+".yaml")
	if err := os.WriteFile(f, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+name+"\n"), 0o644); err != nil {
		return "", err
	}
	return c.AsAlice(ctx, "apply", "-f", f)
}

func (w *userWriter) acked() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.created...)
}

// firstErrorLine is the line of the CLI's output that starts with "error" or "Error", or its
// first line.
func firstErrorLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.ToLower(l), "error") {
			return l
		}
	}
	l, _, _ := strings.Cut(out, "\n")
	return l
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// streamLeader is the VM whose NATS server leads the log's stream.
func streamLeader(ctx context.Context, t *testing.T, c *datacenter.Cluster) *datacenter.VM {
	t.Helper()
	js, err := jetstream.New(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if !cluster.PollContext(ctx, func() bool {
		s, err := js.Stream(ctx, "SKIFF")
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		name = info.Cluster.Leader
		return name != ""
	}) {
		t.Fatal("the log's stream has no leader")
	}
	return c.VM(name)
}

// TestNATSServerLost: during a rollout of 30 pods, while a user creates namespaces one after
// the other, the NATS server that leads the log's stream is killed and restarted; then two of
// the three are killed, and one of them restarted.
//
// Invariant: with one server down the rollout and the user's writes go on; no namespace the CLI
// said it created is missing from the log; with two down a write fails with a clear error
// within its timeout, and writes resume once a second server is back; the rollout completes.
func TestNATSServerLost(t *testing.T) {
	c := up(t, datacenter.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const replicas = 30
	apply(ctx, t, c, deployment("web", replicas, "v1"))
	waitConverged(ctx, t, c, "web", replicas, "v1")

	w := &userWriter{c: c, failures: map[string]int{}}
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); w.run(wctx) }()
	defer func() { stopWriter(); <-writerDone }()
	waitAcked := func(what string, more int) time.Duration {
		t.Helper()
		start, from := time.Now(), len(w.acked())
		if !cluster.PollContext(ctx, func() bool { return len(w.acked()) >= from+more }) {
			t.Fatalf("%s: the user's writes did not go on: %d acknowledged since, failures %v", what, len(w.acked())-from, w.failures)
		}
		return time.Since(start)
	}
	waitAcked("before the faults", 3)

	apply(ctx, t, c, deployment("web", replicas, "v2"))
	first := streamLeader(ctx, t, c)
	killed := c.Signal(first, datacenter.NATS, syscall.SIGKILL)
	t.Logf("killed the NATS server of %s, the stream's leader, during the rollout", first.Name)
	stall := waitAcked("one server down", 3)
	t.Logf("RECOVERY: 3 more namespaces created %v after the kill", stall.Round(time.Millisecond))
	if stall > 10*time.Second {
		for _, vm := range c.VMs {
			if p := c.Task(vm, datacenter.Scheduler); p != nil {
				t.Logf("writes stalled %v; the scheduler on %s:\n%s", stall.Round(time.Millisecond), vm.Name, lastLines(p.Log(), 30))
			}
		}
		t.Logf("the writer's failures: %v", w.failures)
	}
	c.Restart(first, datacenter.NATS)
	waitConverged(ctx, t, c, "web", replicas, "v2")
	t.Logf("rollout of v2 complete %v after the kill", time.Since(killed).Round(time.Millisecond))

	// Two of three down: no quorum. The writer's failures must say so clearly.
	stopWriter()
	<-writerDone
	down := []*datacenter.VM{}
	for _, vm := range c.VMs {
		if vm != c.VMs[0] && len(down) < 2 {
			c.Signal(vm, datacenter.NATS, syscall.SIGKILL)
			down = append(down, vm)
		}
	}
	start := time.Now()
	out, err := createNamespace(ctx, c, "no-quorum")
	took := time.Since(start)
	if err == nil {
		t.Fatalf("create namespace with two of three NATS servers down succeeded: %s", out)
	}
	t.Logf("with two servers down, after %v: %s", took.Round(time.Millisecond), firstErrorLine(out))
	// Its outcome is unknown, not "not written": a leader that took the write may still commit
	// it once a follower returns.
	for _, want := range []string{"Unavailable", "whether the event was written is unknown", "majority of its servers"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error with two servers down does not say %q:\n%s", want, out)
		}
	}
	if _, err := c.AsAlice(ctx, "get", "pods"); err != nil {
		t.Logf("reads with two servers down fail too (the stream has no leader): %v", firstErrorLine(err.Error()))
	}

	c.Restart(down[0], datacenter.NATS)
	back := time.Now()
	var last error
	if !cluster.PollContext(ctx, func() bool {
		_, last = createNamespace(ctx, c, "quorum-again")
		return last == nil
	}) {
		t.Fatalf("writes did not resume with two servers up: %v", last)
	}
	t.Logf("RECOVERY: a write succeeded %v after the second server came back", time.Since(back).Round(time.Millisecond))
	c.Restart(down[1], datacenter.NATS)

	// Every namespace the user was told about is in the log.
	inLog := map[string]bool{}
	var readErr error
	if !cluster.PollContext(ctx, func() bool {
		clear(inLog)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		readErr = c.Store.Read(rctx, store.ReadOptions{}, func(ev *events.Event) error {
			if _, ok := ev.Data.(*events.NamespaceApplied); ok {
				inLog[ev.Object.Name] = true
			}
			return nil
		})
		return readErr == nil
	}) {
		t.Fatalf("could not read the log after the restarts: %v", readErr)
	}
	acked := w.acked()
	lost := 0
	for _, ns := range acked {
		if !inLog[ns] {
			lost++
			t.Errorf("namespace %s: the CLI said created, the log does not have it", ns)
		}
	}
	t.Logf("%d namespaces acknowledged, %d lost; the writer's failures: %v", len(acked), lost, w.failures)
	checkNodes(ctx, t, c)
	checkLog(ctx, t, c)
}
