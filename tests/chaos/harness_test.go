package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/store"
	"skiff.dev/tests/checker"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/datacenter"
)

// full reports whether the scenarios run at full length (`make chaos`: SKIFF_CHAOS=full)
// rather than the short form `make test` runs.
func full() bool { return os.Getenv("SKIFF_CHAOS") == "full" }

// pick returns long under `make chaos` and short otherwise.
func pick[T any](short, long T) T {
	if full() {
		return long
	}
	return short
}

// deployment is a Deployment of the echo image whose pods say version in $VERSION: changing it
// rolls the Deployment out.
func deployment(name string, replicas int, version string) string {
	return deploymentWith(name, replicas, version, "")
}

// deploymentWith is deployment with podSpec (YAML at the pod spec's indentation, six spaces)
// added to the pod template's spec.
func deploymentWith(name string, replicas int, version, podSpec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels:
      app: %[1]s
  strategy:
    rollingUpdate:
      maxSurge: 25%%
      maxUnavailable: 25%%
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      terminationGracePeriodSeconds: 1
%[4]s      containers:
        - name: echo
          image: skiff.dev/echo:v1
          env:
            - name: VERSION
              value: %[3]q
          ports:
            - name: http
              containerPort: 8080
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector:
    app: %[1]s
  ports:
    - name: http
      port: 80
      targetPort: http
`, name, replicas, version, podSpec)
}

// apply applies manifest as alice, through a file in the run's directory.
func apply(ctx context.Context, t *testing.T, c *datacenter.Cluster, manifest string) {
	t.Helper()
	f, err := os.CreateTemp(c.Run.Dir, "manifest-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(manifest); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A command can meet a replica that is being killed: the CLI says Unavailable, and a user
	// runs it again.
	var out string
	if !cluster.PollContext(ctx, func() bool {
		out, err = c.AsAlice(ctx, "apply", "-f", f.Name())
		return err == nil
	}) {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("apply: %s", strings.TrimSpace(out))
}

// pods lists every pod as `skiff get pods -A -o json` prints it.
func pods(ctx context.Context, c *datacenter.Cluster) ([]events.Pod, error) {
	out, err := c.AsAlice(ctx, "get", "pods", "-A", "-o", "json")
	if err != nil {
		if strings.Contains(err.Error(), "No resources found") {
			return nil, nil
		}
		return nil, err
	}
	var list struct {
		Items []events.Pod `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("decode skiff get pods -o json: %v\n%s", err, out)
	}
	return list.Items, nil
}

// converged reports whether Deployment name has exactly replicas pods, all of version, Running
// and ready, none being deleted, and says what is missing when not.
func converged(all []events.Pod, name string, replicas int, version string) (bool, string) {
	var mine, ready, old, deleting int
	for _, p := range all {
		if p.Metadata.Labels["app"] != name {
			continue
		}
		mine++
		switch {
		case p.Metadata.DeletionTimestamp != nil:
			deleting++
		case envOf(p, "VERSION") != version:
			old++
		case podReady(p):
			ready++
		}
	}
	if mine == replicas && ready == replicas {
		return true, ""
	}
	return false, fmt.Sprintf("%d pods: %d ready of %s, %d older, %d being deleted; want %d ready", mine, ready, version, old, deleting, replicas)
}

func podReady(p events.Pod) bool {
	if p.Status.Phase != events.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return true
}

func envOf(p events.Pod, name string) string {
	for _, c := range p.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

// waitConverged polls until Deployment name has converged (see converged) and returns when.
func waitConverged(ctx context.Context, t *testing.T, c *datacenter.Cluster, name string, replicas int, version string) time.Time {
	t.Helper()
	var why string
	if !cluster.PollContext(ctx, func() bool {
		all, err := pods(ctx, c)
		if err != nil {
			why = err.Error()
			return false
		}
		var ok bool
		ok, why = converged(all, name, replicas, version)
		return ok
	}) {
		t.Fatalf("deployment %s did not converge: %s", name, why)
	}
	return time.Now()
}

// checkNodes asserts that every VM runs exactly the pods the log places there: a running
// container and a sandbox (pinned namespaces, or a pause container's task) per pod and nothing
// else, and host-local holds exactly their
// addresses: no orphan container, no leaked IP. It polls, since a pod deleted a moment ago may
// still be stopping.
func checkNodes(ctx context.Context, t *testing.T, c *datacenter.Cluster) {
	t.Helper()
	var why string
	if !cluster.PollContext(ctx, func() bool {
		all, err := pods(ctx, c)
		if err != nil {
			why = err.Error()
			return false
		}
		why = ""
		for _, vm := range c.VMs {
			var ips []string
			for _, p := range all {
				if p.Spec.NodeName == vm.Name && p.Status.PodIP != "" {
					ips = append(ips, p.Status.PodIP)
				}
			}
			tasks, err := runningTasks(ctx, vm)
			if err != nil {
				why = err.Error()
				return false
			}
			pins := pinnedSandboxes(vm)
			held := ipAllocations(vm)
			sort.Strings(ips)
			// Each pod is its container and its sandbox: pinned namespaces (the default) or a
			// pause container's task.
			if tasks+pins != 2*len(ips) || (pins != 0 && pins != len(ips)) || strings.Join(held, ",") != strings.Join(ips, ",") {
				why += fmt.Sprintf("%s: %d running tasks and %d pinned sandboxes for %d pods; addresses held %v, pods' %v. ", vm.Name, tasks, pins, len(ips), held, ips)
			}
		}
		return why == ""
	}) {
		t.Errorf("nodes do not match the log: %s", why)
	}
}

// runningTasks counts the running tasks of vm's containerd in the agent's namespace.
func runningTasks(ctx context.Context, vm *datacenter.VM) (int, error) {
	out, err := vm.Exec(ctx, nil, "", "ctr", "--address", "/run/containerd/containerd.sock", "--namespace", "skiff", "tasks", "ls")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, task := range cluster.ParseTasks(out) {
		if task.Status == "RUNNING" {
			n++
		}
	}
	return n, nil
}

// pinnedSandboxes counts the pods whose namespaces vm's agent keeps pinned.
func pinnedSandboxes(vm *datacenter.VM) int {
	entries, _ := os.ReadDir(vm.Path(filepath.Join("/run/skiff", vm.Name, "ns")))
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	return n
}

// ipAllocations are the pod addresses host-local holds on vm, sorted.
func ipAllocations(vm *datacenter.VM) []string {
	out := cluster.IPAllocationsIn(vm.Path("/var/lib/skiff"))
	sort.Strings(out)
	return out
}

// leader polls until a scheduler holds the leader key and its process runs, and returns its VM.
func leader(ctx context.Context, t *testing.T, c *datacenter.Cluster) (*datacenter.VM, string) {
	t.Helper()
	var vm *datacenter.VM
	var id string
	var err error
	if !cluster.PollContext(ctx, func() bool {
		vm, id, err = c.Leader(ctx)
		return err == nil && c.Task(vm, datacenter.Scheduler).Running()
	}) {
		t.Fatalf("no running scheduler leads: %v", err)
	}
	return vm, id
}

// checkLog runs the independent checker over the whole log (package checker's invariants:
// bound once, one running copy, conditional sequences, pod lifecycle order, no unexpected
// poison) and compares the fold of the log with what a scheduler reports. Call it once the
// scenario has healed and converged.
func checkLog(ctx context.Context, t *testing.T, c *datacenter.Cluster) *checker.Report {
	t.Helper()
	return checkLogAllowing(ctx, t, c, nil)
}

// checkLogAllowing is checkLog where exactly the poison at sequences poison is expected.
func checkLogAllowing(ctx context.Context, t *testing.T, c *datacenter.Cluster, poison []uint64) *checker.Report {
	t.Helper()
	// Right after a heal the stream may answer 503 for a moment (a server rejoining): read again.
	var r *checker.Report
	var err error
	if !cluster.PollContext(ctx, func() bool {
		r, err = checker.Check(ctx, c.Store)
		return err == nil
	}) {
		t.Fatalf("checker: %v", err)
	}
	if err := r.Err(); err != nil {
		t.Errorf("checker: %v", err)
	}
	var found []uint64
	for _, p := range r.Poison {
		found = append(found, p.Seq)
		if !slices.Contains(poison, p.Seq) {
			t.Errorf("checker: poison at seq %d on %s: %s", p.Seq, p.Subject, p.Reason)
		}
	}
	for _, seq := range poison {
		if !slices.Contains(found, seq) {
			t.Errorf("checker: the poison at seq %d was not found (found %v)", seq, found)
		}
	}
	if len(r.Unbound) > 0 || len(r.Unterminated) > 0 {
		t.Errorf("checker: after convergence, pods scheduled and never bound %v, deleted and never terminated by their node %v", r.Unbound, r.Unterminated)
	}
	var views []checker.View
	if !cluster.PollContext(ctx, func() bool {
		views, err = checker.GetViews(ctx, c.Admin, r.Head)
		return err == nil
	}) {
		t.Fatalf("checker: the scheduler's views: %v", err)
	}
	diffs, err := r.FoldMatches(ctx, c.Store, views...)
	if err != nil {
		t.Fatalf("checker: %v", err)
	}
	for _, d := range diffs {
		t.Errorf("checker: the fold and the scheduler's view differ: %s", d)
	}
	t.Logf("checker: %d events to seq %d, %d pods bound, %d violations, %d view differences", r.Events, r.Head, len(r.Bound), len(r.Violations), len(diffs))
	return r
}

// timeline logs the log's events from since on, with their offset from since, the actor and
// the subject: what a reader of a failed (or slow) scenario wants first. Status reports, the
// bulk of the log, are counted rather than listed.
func timeline(ctx context.Context, t *testing.T, c *datacenter.Cluster, since time.Time) {
	t.Helper()
	var b strings.Builder
	statuses, before := 0, 0
	err := c.Store.Read(ctx, store.ReadOptions{}, func(ev *events.Event) error {
		if ev.Time.Before(since) {
			before++
			return nil
		}
		if ev.Type == "PodStatusReported" {
			statuses++
			return nil
		}
		fmt.Fprintf(&b, "\n  %+8.3fs %-22s %-28s %s", ev.Time.Sub(since).Seconds(), ev.Type, ev.Actor, ev.Subject)
		return nil
	})
	if err != nil {
		t.Logf("timeline: %v", err)
		return
	}
	t.Logf("timeline from %s (%d events before, %d status reports left out):%s", since.Format(time.TimeOnly), before, statuses, b.String())
}

// firstEvent is the first event at or after since that match accepts, or nil. A read that
// fails (the test's connection was to a server now cut off, until its pings notice) is tried
// again.
func firstEvent(ctx context.Context, t *testing.T, c *datacenter.Cluster, since time.Time, match func(*events.Event) bool) *events.Event {
	t.Helper()
	var found *events.Event
	errFound := fmt.Errorf("found")
	var err error
	if !cluster.PollContext(ctx, func() bool {
		found = nil
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = c.Store.Read(rctx, store.ReadOptions{}, func(ev *events.Event) error {
			if !ev.Time.Before(since) && match(ev) {
				found = ev
				return errFound
			}
			return nil
		})
		return err == nil || err == errFound
	}) {
		t.Fatalf("read the log: %v", err)
	}
	return found
}

// after is how long after since ev was written, or "never" for nil.
func after(ev *events.Event, since time.Time) string {
	if ev == nil {
		return "never"
	}
	return ev.Time.Sub(since).Round(time.Millisecond).String()
}

// up starts the datacenter and, should the test fail, logs every Skiff service's warnings and
// errors (the tails the datacenter prints are often all routine lines).
func up(t *testing.T, opts datacenter.Options) *datacenter.Cluster {
	t.Helper()
	c := datacenter.Up(t, opts)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, vm := range c.VMs {
			for _, name := range []string{datacenter.Scheduler, datacenter.NodeAgent, datacenter.NetProxy} {
				p := c.Task(vm, name)
				if p == nil {
					continue
				}
				var keep []string
				for _, l := range strings.Split(p.Log(), "\n") {
					if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "leader") || strings.Contains(l, "term") {
						keep = append(keep, l)
					}
				}
				t.Logf("%s %s: warnings and errors:\n%s", vm.Name, name, strings.Join(keep[max(0, len(keep)-60):], "\n"))
			}
		}
	})
	return c
}
