package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/store"
	"skiff.dev/tests/cluster"
)

// TestStorageStreamLimitReached: the log's size limit (`skiff cluster bootstrap --max-bytes`,
// set a little above what it holds) is reached by a multi-object apply half-way, then filled up
// by single applies.
//
// Invariant: the apply that does not fit exits 1 with a clear error (the log is full, its limit,
// how to raise it) naming what was written and what was not, and the log holds exactly that;
// nothing old is dropped; `skiff get` works and the running pod keeps running while the log is
// full; after `skiff cluster bootstrap --max-bytes` raises the limit, the same apply succeeds
// (written objects unchanged, the rest created) and its pod runs.
func TestStorageStreamLimitReached(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c.Apply(storageDeployment("before", 1, 0))
	c.WaitFor("the pod of before running", func() bool { return len(runningPods(c, "before")) == 1 })

	// The limit: what the log holds now and 32 KiB; the Deployment "big" takes 64 KiB alone.
	used := streamBytes(ctx, t, c)
	limit := used + 32<<10
	out, err := c.SkiffAs("admin", "cluster", "bootstrap", "--max-bytes", fmt.Sprint(limit))
	if err != nil {
		t.Fatalf("bootstrap --max-bytes: %v", err)
	}
	t.Logf("bootstrap: %s", strings.TrimSpace(out))
	firstOld := c.Events()

	manifest := storageService("a") + "---\n" + storageDeployment("big", 1, 64<<10) + "---\n" + storageService("b")
	r, err := runCLI(ctx, c, manifest, "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("apply that does not fit: %v", r)
	if r.code != 1 || r.results["service/a"] != "created" || len(r.results) != 1 {
		t.Errorf("apply of a, big, b: %v; want exit 1 with service/a created and nothing else", r)
	}
	for _, want := range []string{"Error from server (FailedPrecondition)", `wrote Service "a" (created)`, `writing Deployment "big" failed`,
		"the event log is full", "skiff cluster bootstrap --max-bytes", `not written: Deployment "big", Service "b"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error does not say %q: %s", want, r.stderr)
		}
	}
	assertApplied(t, c, events.KindService, "a", 1)
	assertApplied(t, c, events.KindDeployment, "big", 0)
	assertApplied(t, c, events.KindService, "b", 0)

	// Fill it up with small applies until one does not fit either.
	var full cliRun
	var fill string
	for i := 0; ; i++ {
		fill = fmt.Sprintf("fill-%d", i)
		if full, err = runCLI(ctx, c, storageService(fill), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		if full.code != 0 {
			break
		}
		if i == 200 {
			t.Fatalf("200 Services fit into 32 KiB")
		}
	}
	t.Logf("the log is full after %s: %s", fill, strings.TrimSpace(full.stderr))
	if full.code != 1 || !strings.Contains(full.stderr, "the event log is full") || !strings.Contains(full.stderr, `writing Service "`+fill+`" failed`) {
		t.Errorf("apply to a full log: %v; want exit 1 saying the log is full", full)
	}
	assertApplied(t, c, events.KindService, fill, 0)
	fullAt := time.Now()

	// Reads work, the workload runs, nothing old was dropped.
	got, err := c.Skiff("get", "services")
	if err != nil {
		t.Fatalf("skiff get services while the log is full: %v", err)
	}
	if !strings.Contains(got, "a ") || strings.Contains(got, "b ") || strings.Contains(got, fill+" ") {
		t.Errorf("skiff get services while full lists:\n%s\nwant a and the fill Services before %s, not b nor %s", got, fill, fill)
	}
	if n := len(runningPods(c, "before")); n != 1 {
		t.Errorf("%d pods of before running while the log is full, want 1", n)
	}
	now := c.Events()
	for i, ev := range firstOld {
		if now[i].ID != ev.ID {
			t.Fatalf("event %d (seq %d) changed while the log filled up: the log dropped history", i, ev.Seq)
		}
	}

	// Room again: the operator raises the limit, the same apply goes through.
	out, err = c.SkiffAs("admin", "cluster", "bootstrap", "--max-bytes", "64Mi")
	if err != nil {
		t.Fatalf("bootstrap --max-bytes 64Mi: %v", err)
	}
	raised := time.Now()
	t.Logf("bootstrap: %s", strings.TrimSpace(out))
	r, err = runCLI(ctx, c, manifest, "apply", "-f", "-")
	if err != nil || r.code != 0 {
		t.Fatalf("apply after raising the limit: %v %v", err, r)
	}
	if r.results["service/a"] != "unchanged" || r.results["deployment.apps/big"] != "created" || r.results["service/b"] != "created" {
		t.Errorf("apply after raising the limit: %v; want a unchanged, big and b created", r)
	}
	c.WaitFor("the pod of big running", func() bool { return len(runningPods(c, "big")) == 1 })
	t.Logf("RECOVERY: full %v; big's pod running %v after the limit was raised", roundMS(raised.Sub(fullAt)), roundMS(time.Since(raised)))
	assertApplied(t, c, events.KindService, "a", 1)
	assertApplied(t, c, events.KindDeployment, "big", 1)
	assertApplied(t, c, events.KindService, "b", 1)
}

// TestStorageDiskFull: the disk under the NATS server's data directory (a 32 MiB tmpfs) is filled
// by something else (a ballast file), as when logs or images fill a machine's disk; then
// manifests of a Deployment and a Service are applied until one fails.
//
// nats-server's part, read in its source (v2.15.2: filestore.go storeRawMsg and
// writeMsgRecordLocked, stream.go processJetStreamMsg) and seen here: writes still succeed while
// they fit in the last, partly used page of a block file; the first write that meets ENOSPC is
// logged as a critical write error, the store keeps that error and refuses every later write to
// the stream with it, and the publisher gets no answer at all (the apply ends when the
// scheduler's 20 s for the command run out); freeing space does not clear it, restarting the
// server does.
//
// Invariant: the apply that fails exits non-zero, says the log did not acknowledge the write and
// that a full disk is a cause, and prints what it wrote; `skiff get` works and the running pod
// keeps running; nothing is half-applied: after space is freed and NATS restarted, the log holds
// exactly the objects the applies reported written (each acknowledged write survived the
// restart, no failed one landed); the failed manifest applied again creates the rest, and a new
// Deployment's pod runs.
func TestStorageDiskFull(t *testing.T) {
	c := cluster.New(t, cluster.Options{Schedulers: 1, NATSDiskSize: 32 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c.Apply(storageDeployment("before", 1, 0))
	c.WaitFor("the pod of before running", func() bool { return len(runningPods(c, "before")) == 1 })

	ballast := filepath.Join(c.NATSDataDir(), "ballast")
	n := fillDisk(t, ballast)
	t.Logf("the disk under %s is full: a ballast of %s", c.NATSDataDir(), store.FormatBytes(n))
	fullAt := time.Now()

	// Apply until an apply fails; what each printed is what it says it wrote.
	reported := map[string]bool{} // "deployment.apps/fill-0" → reported written
	var failed cliRun
	var manifest string
	var last int
	for i := 0; ; i++ {
		name := fmt.Sprintf("fill-%d", i)
		manifest = storageDeployment(name, 0, 0) + "---\n" + storageService(name)
		r, err := runCLI(ctx, c, manifest, "apply", "-f", "-")
		if err != nil {
			t.Fatal(err)
		}
		for ref, action := range r.results {
			if action != "created" {
				t.Errorf("apply of %s on a full disk: %s %s, want created", name, ref, action)
			}
			reported[ref] = true
		}
		if r.code != 0 {
			failed, last = r, i
			break
		}
		if i == 100 {
			t.Fatalf("100 applies went through on a full disk")
		}
	}
	t.Logf("apply %d on a full disk failed: %v", last, failed)
	wants := []string{"Error from server (Unavailable)", "no acknowledgement", "disk is full", "whether the event was written is unknown"}
	if !reported[fmt.Sprintf("deployment.apps/fill-%d", last)] {
		// The Deployment's write failed: the Service after it was never tried.
		wants = append(wants, fmt.Sprintf(`not written: Service "fill-%d"`, last))
	}
	for _, want := range wants {
		if !strings.Contains(failed.stderr, want) {
			t.Errorf("the error does not say %q: %s", want, failed.stderr)
		}
	}

	// The fault was the disk's: nats-server met ENOSPC.
	for _, line := range strings.Split(c.NATSLog(), "\n") {
		if strings.Contains(line, "no space left on device") {
			t.Logf("nats-server: %s", line)
			break
		}
	}
	if !strings.Contains(c.NATSLog(), "no space left on device") {
		t.Errorf("nats-server logged no ENOSPC; the failure was something else:\n%s", c.NATSLog())
	}

	// Reads work and the workload runs.
	got, err := c.Skiff("get", "deployments")
	if err != nil {
		t.Fatalf("skiff get deployments on a full disk: %v", err)
	}
	if !strings.Contains(got, "before") {
		t.Errorf("skiff get deployments on a full disk lists:\n%s\nwant before", got)
	}
	if n := len(runningPods(c, "before")); n != 1 {
		t.Errorf("%d pods of before running on a full disk, want 1", n)
	}

	// Space returns. nats-server keeps refusing the stream's writes until it restarts: an append
	// straight to the log, with a short deadline, shows it.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	probe, err := events.New(time.Now(), events.Meta{Actor: "test"}, events.ObjectRef{Kind: events.KindNamespace, Name: "probe"}, "",
		&events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "probe"}}})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	_, perr := c.Store().Append(pctx, probe, 0)
	pcancel()
	if perr == nil {
		t.Logf("nats-server took a write again without a restart: docs/reliability.md says otherwise, update it")
	} else {
		t.Logf("an append after freeing space, before the restart: %v", perr)
	}
	restarted := time.Now()
	took := c.RestartNATS()
	t.Logf("NATS restarted; a scheduler answers %v after the signal", roundMS(took))

	// Nothing half-applied: the log holds exactly what was reported written.
	for i := 0; i <= last; i++ {
		name := fmt.Sprintf("fill-%d", i)
		for _, o := range []struct{ kind, ref string }{{events.KindDeployment, "deployment.apps/" + name}, {events.KindService, "service/" + name}} {
			want := 0
			if reported[o.ref] {
				want = 1
			}
			assertApplied(t, c, o.kind, name, want)
		}
	}
	if perr != nil {
		if evs := c.Events(events.ObjectSubject(events.KindNamespace, "", "probe")); len(evs) != 0 {
			t.Errorf("the probe's append failed (%v), yet the log holds it after the restart", perr)
		}
	}

	// Work resumes: the failed manifest goes through, and a new Deployment runs.
	r, err := runCLI(ctx, c, manifest, "apply", "-f", "-")
	if err != nil || r.code != 0 {
		t.Fatalf("the failed apply again after the restart: %v %v", err, r)
	}
	for ref, action := range r.results {
		if want := map[bool]string{true: "unchanged", false: "created"}[reported[ref]]; action != want {
			t.Errorf("the failed apply again after the restart: %s %s, want %s", ref, action, want)
		}
	}
	c.Apply(storageDeployment("after", 1, 0))
	c.WaitFor("the pod of after running", func() bool { return len(runningPods(c, "after")) == 1 })
	t.Logf("RECOVERY: full for %v; after freeing space and restarting NATS, the pod of a new Deployment running %v after the restart",
		roundMS(freed.Sub(fullAt)), roundMS(time.Since(restarted)))
	if n := len(runningPods(c, "before")); n != 1 {
		t.Errorf("%d pods of before running after the restart, want 1", n)
	}
}

// fillDisk writes file until the filesystem under it has no space left, and returns its size.
func fillDisk(t *testing.T, file string) int64 {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{1 << 20, 4 << 10, 64} {
		buf := make([]byte, chunk)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// streamBytes is how many bytes the log holds.
func streamBytes(ctx context.Context, t *testing.T, c *cluster.Cluster) int64 {
	t.Helper()
	s, err := c.Store().JetStream().Stream(ctx, c.Store().Name())
	if err != nil {
		t.Fatal(err)
	}
	return int64(s.CachedInfo().State.Bytes)
}

// assertApplied fails t unless the log holds want *Applied events of the object.
func assertApplied(t *testing.T, c *cluster.Cluster, kind, name string, want int) {
	t.Helper()
	n := 0
	for _, ev := range c.Events(events.ObjectSubject(kind, "default", name)) {
		if _, ok := appliedVariant(ev); ok {
			n++
		}
	}
	if n != want {
		t.Errorf("the log holds %d applied events of %s %s, want %d", n, kind, name, want)
	}
}

// runningPods lists the Running, ready pods of Deployment name.
func runningPods(c *cluster.Cluster, name string) []events.Pod {
	all, err := c.PodsErr()
	if err != nil {
		return nil
	}
	var out []events.Pod
	for _, p := range all {
		if p.Metadata.Labels["app"] == name && podReady(p) && p.Metadata.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// storageDeployment is a Deployment of the echo image, with an annotation of pad bytes when
// pad > 0 (to make its event that large).
func storageDeployment(name string, replicas, pad int) string {
	annotations := ""
	if pad > 0 {
		annotations = fmt.Sprintf("\n  annotations:\n    padding: %q", strings.Repeat("x", pad))
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s%[2]s
spec:
  replicas: %[3]d
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: skiff.dev/echo:v1
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
`, name, annotations, replicas)
}

// storageService is a Service selecting the pods of Deployment name.
func storageService(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector:
    app: %[1]s
  ports:
    - name: http
      port: 80
      targetPort: 8080
`, name)
}
