package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
)

const echoDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 3
  selector:
    matchLabels:
      app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: echo
          image: skiff.dev/echo:v1
          ports:
            - name: http
              containerPort: 8080
          resources:
            requests:
              cpu: 50m
              memory: 32Mi
`

// A Deployment's three replicas run with three distinct pod IPs, and each answers HTTP with its
// own pod name when fetched from the node it runs on.
func TestDeploymentPodsAnswerWithTheirOwnName(t *testing.T) {
	c := cluster.New(t, cluster.Options{Nodes: 2})
	c.Apply(echoDeployment)

	var pods []events.Pod
	c.WaitFor("3 echo pods running", func() bool {
		all, err := c.PodsErr()
		if err != nil {
			return false
		}
		pods = pods[:0]
		for _, p := range all {
			if strings.HasPrefix(p.Metadata.Name, "echo-") && running(p) {
				pods = append(pods, p)
			}
		}
		return len(pods) == 3
	})

	ips := map[string]string{}
	for _, p := range pods {
		if other, dup := ips[p.Status.PodIP]; dup {
			t.Errorf("pods %s and %s share IP %s", other, p.Metadata.Name, p.Status.PodIP)
		}
		ips[p.Status.PodIP] = p.Metadata.Name
	}
	nodes := map[string]int{}
	for _, p := range pods {
		nodes[p.Spec.NodeName]++
		path := "/from-" + p.Spec.NodeName
		out, err := untilListening(func() (string, error) {
			return c.ExecInNode(p.Spec.NodeName, "curl", "-sS", "--max-time", "5", "http://"+p.Status.PodIP+":8080"+path)
		})
		if err != nil {
			t.Errorf("curl pod %s at %s from %s: %v", p.Metadata.Name, p.Status.PodIP, p.Spec.NodeName, err)
			continue
		}
		if diff := cmp.Diff(p.Metadata.Name+" "+path+"\n", out); diff != "" {
			t.Errorf("pod %s at %s answered (-want +got):\n%s", p.Metadata.Name, p.Status.PodIP, diff)
		}
	}
	t.Logf("pods per node: %v; IPs: %v", nodes, ips)
}

// A container that exits 1 under restartPolicy Always is restarted with a growing restart count
// and, between restarts, waits in CrashLoopBackOff.
func TestCrashingContainerBacksOff(t *testing.T) {
	c := cluster.New(t, cluster.Options{BackoffBase: time.Second, BackoffCap: 4 * time.Second})
	c.Apply(podSpec{name: "crasher", args: []string{"exit", "1"}, restartPolicy: events.RestartAlways, grace: 1}.manifest())

	var counts []int32
	sawBackOff := false
	var last events.ContainerStatus
	c.WaitFor("restart count 3 and CrashLoopBackOff", func() bool {
		p, ok := c.Pod("crasher")
		if !ok || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		last = p.Status.ContainerStatuses[0]
		if n := len(counts); n == 0 || counts[n-1] != last.RestartCount {
			counts = append(counts, last.RestartCount)
		}
		if w := last.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			sawBackOff = true
		}
		return last.RestartCount >= 3 && sawBackOff
	})
	for i := 1; i < len(counts); i++ {
		if counts[i] < counts[i-1] {
			t.Errorf("restart count went down: %v", counts)
		}
	}
	if lt := last.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 1 || lt.Reason != "Error" {
		t.Errorf("last termination = %+v, want exit code 1, reason Error", lt)
	}

	// The log holds the same story: the reported restart counts never go down and back-off
	// delays grow (1s, 2s, 4s): restarts get further apart.
	var restarts []time.Time
	prev := int32(-1)
	for _, ev := range c.PodEvents("default", "crasher") {
		r, ok := ev.Data.(*events.PodStatusReported)
		if !ok || len(r.Status.ContainerStatuses) == 0 {
			continue
		}
		n := r.Status.ContainerStatuses[0].RestartCount
		if n < prev {
			t.Errorf("event seq %d reports restart count %d after %d", ev.Seq, n, prev)
		}
		if n > prev && n > 0 {
			restarts = append(restarts, ev.Time)
		}
		prev = n
	}
	var gaps []string
	for i := 1; i < len(restarts); i++ {
		gaps = append(gaps, ms(restarts[i].Sub(restarts[i-1])))
	}
	t.Logf("restart counts seen: %v; gaps between restarts: %v", counts, gaps)
	if len(restarts) >= 3 {
		first, later := restarts[1].Sub(restarts[0]), restarts[len(restarts)-1].Sub(restarts[len(restarts)-2])
		if later <= first {
			t.Errorf("back-off does not grow: first gap %v, last gap %v", first, later)
		}
	}
}

// Deleting a pod gives its container the grace period: one that exits on SIGTERM is gone long
// before the grace period ends; one that ignores SIGTERM is killed only once it has passed.
func TestGracefulDeletion(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	const trapGrace, ignoreGrace = 20, 3
	c.Apply(podSpec{name: "trapper", args: []string{"trap-term"}, grace: trapGrace}.manifest() +
		podSpec{name: "ignorer", args: []string{"ignore-term"}, grace: ignoreGrace}.manifest())
	waitRunning(t, c, "trapper")
	waitRunning(t, c, "ignorer")

	// stopTime deletes the pod and returns the time from the deletion request to the node
	// reporting the pod stopped and released, both read from the log (stamped by admission
	// and the agent), and the container's exit status as containerd reported it.
	stopTime := func(name string) (time.Duration, int) {
		t.Helper()
		pod, _ := c.Pod(name)
		id := strings.TrimPrefix(containerID(pod), "containerd://")
		stopEvents := c.ContainerdEvents("node1")
		if _, err := c.Skiff("delete", "pod", name); err != nil {
			t.Fatal(err)
		}
		var requested, terminated *events.Event
		c.WaitFor(name+" terminated", func() bool {
			evs := c.PodEvents("default", name)
			requested = firstEvent(evs, "PodDeletionRequested", nil)
			terminated = firstEvent(evs, "PodTerminated", nil)
			return requested != nil && terminated != nil
		})
		return terminated.Time.Sub(requested.Time), exitStatus(t, stopEvents(), id)
	}
	t.Run("trap-term exits quickly", func(t *testing.T) {
		d, status := stopTime("trapper")
		t.Logf("grace %ds, deletion to PodTerminated %v, exit status %d", trapGrace, ms(d), status)
		if d > trapGrace*time.Second/4 {
			t.Errorf("a container that exits on SIGTERM took %v to stop, want well under its grace period of %ds", d, trapGrace)
		}
		if status != 0 {
			t.Errorf("a container that exits on SIGTERM exited with status %d, want 0 (its handler ran)", status)
		}
	})
	t.Run("ignore-term is killed after the grace period", func(t *testing.T) {
		d, status := stopTime("ignorer")
		t.Logf("grace %ds, deletion to PodTerminated %v, exit status %d", ignoreGrace, ms(d), status)
		if status != 137 {
			t.Errorf("a container that ignores SIGTERM exited with status %d, want 137 (SIGKILL)", status)
		}
		if d < ignoreGrace*time.Second {
			t.Errorf("a container that ignores SIGTERM was stopped after %v, before its grace period of %ds", d, ignoreGrace)
		}
		if d > (ignoreGrace+10)*time.Second {
			t.Errorf("a container that ignores SIGTERM was stopped only after %v, long after its grace period of %ds", d, ignoreGrace)
		}
	})
	waitGone(t, c, "trapper")
	waitGone(t, c, "ignorer")
}

// A container that allocates beyond its memory limit is killed by the kernel, and the node
// reports it OOMKilled.
func TestMemoryLimitOOMKilled(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	c.Apply(podSpec{name: "hog", args: []string{"alloc", "256"}, memoryLimit: "64Mi", restartPolicy: events.RestartNever, grace: 1}.manifest())
	var p events.Pod
	c.WaitFor("hog terminated", func() bool {
		var ok bool
		p, ok = c.Pod("hog")
		return ok && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term.Reason != "OOMKilled" {
		t.Errorf("container terminated with reason %q (exit code %d), want OOMKilled", term.Reason, term.ExitCode)
	}
	if term.ExitCode != 137 {
		t.Errorf("exit code %d, want 137 (SIGKILL)", term.ExitCode)
	}
	if p.Status.Phase != events.PodFailed {
		t.Errorf("pod phase %q, want Failed", p.Status.Phase)
	}
}

// A pod whose image was never imported anywhere waits with ErrImageNotFound.
func TestImageNeverImported(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	c.Apply(podSpec{name: "ghost", image: "skiff.dev/never-imported:v1", grace: 1}.manifest())
	var w *events.ContainerStateWaiting
	var p events.Pod
	c.WaitFor("ghost waiting with ErrImageNotFound", func() bool {
		var ok bool
		p, ok = c.Pod("ghost")
		if !ok || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		w = p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == "ErrImageNotFound"
	})
	t.Logf("waiting: %s: %s", w.Reason, w.Message)
	if p.Status.Phase != events.PodPending {
		t.Errorf("pod phase %q, want Pending", p.Status.Phase)
	}
	if !strings.Contains(w.Message, "never-imported") {
		t.Errorf("message %q does not name the image", w.Message)
	}
}

// Pull policies on a node that has no image yet, with both test images in the cluster's image
// store: Never runs nothing the node lacks (ErrImageNeverPull) though the store has it; Always
// imports the image from the store for the first pod and, the store's tarball unchanged, not
// again for the second.
func TestImagePullPolicy(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	c.Apply(podSpec{name: "never", args: []string{"sleep"}, pullPolicy: "Never", grace: 1}.manifest())
	var w *events.ContainerStateWaiting
	c.WaitFor("never waiting with ErrImageNeverPull", func() bool {
		p, ok := c.Pod("never")
		if !ok || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		w = p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == "ErrImageNeverPull"
	})
	if !strings.Contains(w.Message, "is not present with pull policy of Never") {
		t.Errorf("waiting message %q", w.Message)
	}

	for _, name := range []string{"always-1", "always-2"} {
		c.Apply(podSpec{name: name, image: echoImage, pullPolicy: "Always", grace: 1}.manifest())
		waitRunning(t, c, name)
	}
	n := 0
	for _, line := range strings.Split(c.Node("node1").AgentLog(), "\n") {
		if strings.Contains(line, `msg="importing image from the cluster's image store"`) && strings.HasSuffix(line, "image="+echoImage) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the agent imported %s %d times for two pods with pull policy Always, want once (the store's tarball did not change)", echoImage, n)
	}
}

// Killing the agent with SIGKILL and starting it again adopts the running container: same
// container ID, same process, restart count unchanged, and nothing reported about a new one.
// A pod deleted while the agent was down is stopped and its pinned namespaces removed; the
// adopted pod keeps its own.
func TestAgentRestartAdoptsRunningContainers(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	c.Apply(podSpec{name: "steady", args: []string{"sleep"}, restartPolicy: events.RestartAlways, grace: 1}.manifest())
	c.Apply(podSpec{name: "leaving", args: []string{"sleep"}, grace: 1}.manifest())
	before := waitRunning(t, c, "steady")
	leaving := waitRunning(t, c, "leaving")
	pidBefore, err := c.ContainerPID(before, 0)
	if err != nil {
		t.Fatal(err)
	}
	pins := c.Node("node1").PinDir()
	for _, p := range []events.Pod{before, leaving} {
		if _, err := os.Stat(filepath.Join(pins, p.Metadata.UID, "net")); err != nil {
			t.Fatalf("pod %s's network namespace is not pinned (the default sandbox): %v", p.Metadata.Name, err)
		}
	}
	head := c.Head()

	c.KillAgent("node1", syscall.SIGKILL)
	if _, err := c.Skiff("delete", "pod", "leaving"); err != nil {
		t.Fatal(err)
	}
	c.StartAgent("node1")
	waitGone(t, c, "leaving")
	if _, err := os.Stat(filepath.Join(pins, leaving.Metadata.UID)); !os.IsNotExist(err) {
		t.Errorf("pinned namespaces of the pod deleted while the agent was down: %v, want removed", err)
	}
	if _, err := os.Stat(filepath.Join(pins, before.Metadata.UID, "net")); err != nil {
		t.Errorf("pinned namespaces of the adopted pod: %v", err)
	}
	// A new pod running proves the restarted agent has caught up and its workers act; the
	// adopted pod's worker synced before that (workers start together, after reconciling).
	c.Apply(podSpec{name: "probe", args: []string{"sleep"}, grace: 1}.manifest())
	waitRunning(t, c, "probe")

	after := waitRunning(t, c, "steady")
	if diff := cmp.Diff(containerID(before), containerID(after)); diff != "" {
		t.Errorf("container ID changed across the agent restart (-before +after):\n%s", diff)
	}
	if b, a := before.Status.ContainerStatuses[0].RestartCount, after.Status.ContainerStatuses[0].RestartCount; a != b {
		t.Errorf("restart count %d before the agent restart, %d after", b, a)
	}
	pidAfter, err := c.ContainerPID(after, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pidAfter != pidBefore {
		t.Errorf("container process %d before the agent restart, %d after: it was restarted, not adopted", pidBefore, pidAfter)
	}
	for _, ev := range c.PodEvents("default", "steady") {
		if ev.Seq <= head {
			continue
		}
		switch d := ev.Data.(type) {
		case *events.PodStatusReported:
			for _, cs := range d.Status.ContainerStatuses {
				if cs.ContainerID != "" && cs.ContainerID != containerID(before) {
					t.Errorf("event seq %d reports container %s, want the adopted %s", ev.Seq, cs.ContainerID, containerID(before))
				}
			}
		case *events.PodTerminated:
			t.Errorf("event seq %d: the restarted agent terminated the pod", ev.Seq)
		}
	}
}

// A pod on node1 reaches a pod on node2 by its pod IP, and back: each node routes the other's pod
// CIDR to the other's address (host-gw), inside the nodes' own namespaces.
func TestPodReachesPodOnOtherNode(t *testing.T) {
	c := cluster.New(t, cluster.Options{Nodes: 2})
	for _, n := range []string{"node1", "node2"} {
		c.Apply(podSpec{name: "echo-" + n, image: echoImage, node: n, grace: 1}.manifest())
	}
	a := waitRunning(t, c, "echo-node1")
	b := waitRunning(t, c, "echo-node2")
	if a.Spec.NodeName != "node1" || b.Spec.NodeName != "node2" {
		t.Fatalf("pods on %s and %s, want node1 and node2", a.Spec.NodeName, b.Spec.NodeName)
	}
	for _, tc := range []struct{ from, to events.Pod }{{a, b}, {b, a}} {
		path := "/from-" + tc.from.Metadata.Name
		out, err := untilListening(func() (string, error) {
			return c.ExecInPod(tc.from, "curl", "-sS", "--max-time", "5", "http://"+tc.to.Status.PodIP+":8080"+path)
		})
		if err != nil {
			t.Errorf("from pod %s (%s) to pod %s (%s): %v", tc.from.Metadata.Name, tc.from.Status.PodIP, tc.to.Metadata.Name, tc.to.Status.PodIP, err)
			continue
		}
		if diff := cmp.Diff(tc.to.Metadata.Name+" "+path+"\n", out); diff != "" {
			t.Errorf("pod %s answered pod %s (-want +got):\n%s", tc.to.Metadata.Name, tc.from.Metadata.Name, diff)
		}
	}
	// The route is the agent's host-gw route, not something else that happens to work.
	routes, err := c.ExecInNode("node1", "ip", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	via := fmt.Sprintf("via %s", c.Node("node2").Address)
	found := false
	for _, line := range strings.Split(routes, "\n") {
		if strings.Contains(line, via) {
			found = true
		}
	}
	if !found {
		t.Errorf("node1 has no route via node2 (%s):\n%s", c.Node("node2").Address, routes)
	}
}

// exitStatus finds the exit of container id's init process in `ctr events` output:
//
//	2026-11-27 18:30:00.1 +0000 UTC skiff /tasks/exit {"container_id":"…","id":"…","pid":42,"exit_status":137,…}
//
// protobuf's JSON leaves out a zero exit_status.
func exitStatus(t *testing.T, evs, id string) int {
	t.Helper()
	for _, line := range strings.Split(evs, "\n") {
		if !strings.Contains(line, "/tasks/exit") || !strings.Contains(line, `"container_id":"`+id+`"`) {
			continue
		}
		m := exitStatusRE.FindStringSubmatch(line)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	t.Fatalf("no exit of container %s among containerd's events:\n%s", id, evs)
	return -1
}

var exitStatusRE = regexp.MustCompile(`"exit_status":(\d+)`)

// Init containers run on a real node one after the other, each to completion, before the app
// container starts; a failing one (restartPolicy Never) fails the pod, shown as kubectl shows it.
func TestInitContainers(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	initPod := func(name, restart, secondInit string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q},"spec":{"restartPolicy":%q,"terminationGracePeriodSeconds":1,`+
			`"initContainers":[{"name":"first","image":%q,"args":["exit","0"]},{"name":"second","image":%q,"args":%s}],`+
			`"containers":[{"name":"main","image":%q,"args":["sleep"]}]}}`+"\n", name, restart, testboxImage, testboxImage, secondInit, testboxImage)
	}
	c.Apply(initPod("inits", "Always", `["exit","0"]`))
	p := waitRunning(t, c, "inits")
	if len(p.Status.InitContainerStatuses) != 2 {
		t.Fatalf("init container statuses: %+v", p.Status.InitContainerStatuses)
	}
	first, second := p.Status.InitContainerStatuses[0].State.Terminated, p.Status.InitContainerStatuses[1].State.Terminated
	app := p.Status.ContainerStatuses[0].State.Running
	if first == nil || second == nil || app == nil || first.Reason != "Completed" || second.Reason != "Completed" {
		t.Fatalf("init containers %+v, app %+v: want both completed and the app running", p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
	}
	if second.StartedAt.Before(*first.FinishedAt) || app.StartedAt.Before(*second.FinishedAt) {
		t.Errorf("order: first %v–%v, second %v–%v, app from %v; want one after the other",
			first.StartedAt, first.FinishedAt, second.StartedAt, second.FinishedAt, app.StartedAt)
	}

	c.Apply(initPod("broken", "Never", `["exit","3"]`))
	c.WaitFor("broken failed", func() bool {
		p, ok := c.Pod("broken")
		return ok && p.Status.Phase == events.PodFailed
	})
	out, err := c.Skiff("get", "pod", "broken")
	if err != nil || !strings.Contains(out, "Init:Error") {
		t.Errorf("skiff get pod broken (%v):\n%s", err, out)
	}
	if p, _ := c.Pod("broken"); p.Status.ContainerStatuses[0].State.Waiting == nil {
		t.Errorf("the app container of a pod whose init failed: %+v, want waiting", p.Status.ContainerStatuses[0])
	}
}
