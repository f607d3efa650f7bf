package checker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

// A real log, written by the real services: two skiff-scheduler processes and three simulated
// nodes (the node agent's simulator, which reports pods Running and terminated without running
// them, so no root is needed) on an embedded JetStream. The Deployment is scaled five times, and
// after each scale the leading scheduler is killed with SIGKILL and started again, so leaders
// change in the middle of creations and graceful deletions. Once the cluster has converged the
// log must break no invariant, its facts must show exactly the desired pods, each bound once
// and Running on one node, and the fold must equal the surviving scheduler's view; a view
// changed by hand must not.
func TestRealLog(t *testing.T) {
	bin := buildBinaries(t)
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	ctx := context.Background()
	home := t.TempDir() // no client config file of this machine's user

	scheds := map[string]*process{}
	for _, id := range []string{"a", "b"} {
		scheds[id] = startProcess(t, home, filepath.Join(bin, "skiff-scheduler"), "--server", srv.URL(), "--id", id)
	}
	sim := startProcess(t, home, filepath.Join(bin, "simnodes"), "-nats", srv.URL(), "-nodes", "3", "-prefix", "n")
	sim.waitLine(t, "ready 3", 60*time.Second)

	deployment := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
	 "spec":{"replicas":30,"selector":{"matchLabels":{"app":"web"}},
	  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"terminationGracePeriodSeconds":1,
	   "containers":[{"name":"c","image":"skiff.dev/echo:v1"}]}}}}`
	service := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},
	 "spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}`
	command(t, nc, api.SubjectApply, api.ApplyRequest{Documents: []api.Document{
		{Source: "test", Object: json.RawMessage(deployment)}, {Source: "test", Index: 1, Object: json.RawMessage(service)}}})

	// Each scale goes to the log, then its leader dies at once, in the middle of acting on it;
	// the other replica takes over once the dead one's key expires, and the dead one comes back
	// as the standby.
	var r *Report
	var rev uint64
	final := 0
	for i, replicas := range []int32{12, 25, 5, 20, 15} {
		var leader string
		leader, rev = waitLeader(t, st, rev)
		command(t, nc, api.SubjectScale, api.ScaleRequest{Namespace: "default", Name: "web", Replicas: replicas})
		scheds[leader].kill(t)
		var next string
		next, rev = waitLeader(t, st, rev)
		scheds[leader] = startProcess(t, home, filepath.Join(bin, "skiff-scheduler"), "--server", srv.URL(), "--id", leader)
		final = int(replicas)
		r = waitConverged(t, st, final)
		t.Logf("scale %d: %d replicas, leader %s killed, %s took over, converged at seq %d", i+1, replicas, leader, next, r.Head)
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.Poison) != 0 {
		t.Errorf("poison in a log written by the services: %+v", r.Poison)
	}
	for key, nodes := range r.Running {
		if len(nodes) != 1 || !strings.HasPrefix(nodes[0], "n") {
			t.Errorf("pod %s Running on %v", key, nodes)
		}
		if uid := r.Live[key]; r.Bound[uid] != nodes[0] {
			t.Errorf("pod %s (uid %s) Running on %s but bound to %q", key, uid, nodes[0], r.Bound[uid])
		}
	}
	if r.Counts["PodCreated"] < 30 || r.Counts["PodDeleted"] != r.Counts["PodCreated"]-final {
		t.Errorf("PodCreated %d, PodDeleted %d, want at least 30 and %d fewer", r.Counts["PodCreated"], r.Counts["PodDeleted"], final)
	}
	t.Logf("%d events, %d pods created, counts %v", r.Events, r.Counts["PodCreated"], r.Counts)
	if r.Counts["ServiceApplied"] != 1 || r.Counts["EndpointsUpdated"] == 0 {
		t.Errorf("ServiceApplied %d, EndpointsUpdated %d: want the Service and its endpoints in the log", r.Counts["ServiceApplied"], r.Counts["EndpointsUpdated"])
	}

	// The fold equals the view of whichever replica answers (twice, to reach both most likely).
	for range 2 {
		views, err := GetViews(ctx, nc, r.Head)
		if err != nil {
			t.Fatal(err)
		}
		diffs, err := r.FoldMatches(ctx, st, views...)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) != 0 {
			t.Fatalf("the fold differs from the scheduler's view:\n%s", strings.Join(diffs, "\n"))
		}
		for _, v := range views {
			if len(v.Items) == 0 {
				t.Fatalf("the scheduler shows no %s: nothing was compared", v.Kind)
			}
		}
		// A view that lies about one pod's phase is caught.
		for i := range views {
			if views[i].Kind != KindPods {
				continue
			}
			views[i].Items[0] = json.RawMessage(strings.Replace(string(views[i].Items[0]), `"phase":"Running"`, `"phase":"Pending"`, 1))
		}
		diffs, err = r.FoldMatches(ctx, st, views...)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) != 1 || !strings.Contains(diffs[0], "phase=Running") || !strings.Contains(diffs[0], "phase=Pending") {
			t.Fatalf("a view with one pod Pending instead of Running: differences %q, want one naming both phases", diffs)
		}
	}
}

// waitConverged polls Check until exactly want pods are live, each Running on one node, and
// nothing is half done.
func waitConverged(t *testing.T, st *store.Store, want int) *Report {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r, err := Check(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if converged(r, want) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged to %d pods in 90s: live %d, running %d, unbound %v, unterminated %v, deleting %d\n%v",
				want, len(r.Live), len(r.Running), r.Unbound, r.Unterminated, deleting(r), r.Err())
		}
		time.Sleep(200 * time.Millisecond) // polling for convergence
	}
}

func converged(r *Report, want int) bool {
	return len(r.Live) == want && len(r.Running) == want && len(r.Unbound) == 0 && len(r.Unterminated) == 0 && deleting(r) == 0
}

// deleting counts pods whose deletion was requested and not finished.
func deleting(r *Report) int {
	n := 0
	for _, p := range r.Pods {
		if p.DeletionRequested != 0 && p.Deleted == 0 {
			n++
		}
	}
	return n
}

// command sends a command as user "test" until a scheduler answers it, and fails on a refusal.
func command(t *testing.T, nc *nats.Conn, prefix string, req any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var resp api.Response
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := api.Call(ctx, nc, api.CommandSubject(prefix, "test"), req, &resp)
		cancel()
		if err == nil && resp.Error == nil {
			return
		}
		if err == nil && !errors.Is(resp.Error, events.ErrUnavailable) {
			t.Fatalf("%s: %v", prefix, resp.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no scheduler answered in 30s: %v %v", prefix, err, resp.Error)
		}
		time.Sleep(100 * time.Millisecond) // polling for a replica to answer
	}
}

// waitLeader returns the id of the replica holding the leader key, and the key's revision,
// once that revision is newer than after (a dead leader's key stays until its TTL runs out).
func waitLeader(t *testing.T, st *store.Store, after uint64) (string, uint64) {
	t.Helper()
	ctx := context.Background()
	kv, err := st.JetStream().KeyValue(ctx, api.LeaderBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if e, err := kv.Get(ctx, "controllers"); err == nil && len(e.Value()) > 0 && e.Revision() > after {
			return string(e.Value()), e.Revision()
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduler leads after 30s")
		}
		time.Sleep(50 * time.Millisecond) // polling for an election
	}
}

// process is a child process this test started; it is killed by its own PID at cleanup.
type process struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func startProcess(t *testing.T, home, path string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "SKIFF_CONFIG=", "SKIFF_SERVER=", "SKIFF_CREDS=")
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(path)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			select {
			case p.lines <- s.Text():
			default:
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("%s %v stderr (last 4 KiB):\n%s", filepath.Base(path), args, tail(b, 4096))
			}
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("process %d did not exit 10s after SIGKILL", p.cmd.Process.Pid)
	}
}

func (p *process) waitLine(t *testing.T, want string, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case l := <-p.lines:
			if l == want {
				return
			}
		case <-p.done:
			t.Fatalf("%s exited before printing %q", p.cmd.Path, want)
		case <-timeout:
			t.Fatalf("%s did not print %q within %s", p.cmd.Path, want, within)
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// buildBinaries builds skiff-scheduler and the node simulator from this working tree, once per
// test process, into a directory removed when the process ends (see TestMain).
func buildBinaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "skiff-checker-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := goruntime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command(goTool(), "build", "-o", buildDir+"/",
			"./services/scheduler/cmd/skiff-scheduler", "./services/nodeagent/internal/simulate/simnodes")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return buildDir
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(goruntime.GOROOT(), "bin", "go")
}
