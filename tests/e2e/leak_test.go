package e2e_test

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
)

const churnDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: churn
spec:
  replicas: 0
  selector:
    matchLabels:
      app: churn
  template:
    metadata:
      labels:
        app: churn
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: skiff.dev/testbox:v1
          args: ["sleep"]
`

// nodeLeftovers is everything a pod holds on a node while it exists; after the pod is gone, all
// of it must be back where it was.
type nodeLeftovers struct {
	Containers []string // containerd containers (app containers; pause sandboxes where pods have them)
	Tasks      []string
	Snapshots  []string // snapshot keys (the image's committed layers stay)
	IPs        []string // host-local allocations
	Mounts     []string // under the node's directory
	Pins       []string // pinned sandboxes' directories and mounts (the default sandbox)
	Shims      []string // IDs the long-lived shims were started with
	Veths      []string // node ends of the pods' veth pairs
	PodRecords []string // podnet's per-pod records
	LogDirs    []string // pod log directories
}

func leftovers(t *testing.T, c *cluster.Cluster, node string) nodeLeftovers {
	t.Helper()
	n := c.Node(node)
	ctrList := func(args ...string) []string {
		out, err := c.Ctr(node, args...)
		if err != nil {
			t.Fatal(err)
		}
		return sortedFields(out)
	}
	var l nodeLeftovers
	l.Containers = ctrList("containers", "ls", "-q")
	l.Tasks = ctrList("tasks", "ls", "-q")
	out, err := c.Ctr(node, "snapshots", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 0 {
			l.Snapshots = append(l.Snapshots, f[0]+" "+f[len(f)-1])
		}
	}
	sort.Strings(l.Snapshots)
	l.IPs = n.IPAllocations()
	l.Mounts = n.Mounts()
	l.Pins = append(globBase(filepath.Join(n.PinDir(), "*")), n.PinMounts()...)
	l.Shims = n.ShimIDs()
	links, err := c.ExecInNode(node, "ip", "-o", "link", "show", "type", "veth")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(links), "\n") {
		// The node's own eth0 is a veth too: its port on the cluster's LAN.
		if f := strings.Fields(line); len(f) > 1 && !strings.HasPrefix(f[1], "eth0@") {
			l.Veths = append(l.Veths, f[1])
		}
	}
	l.PodRecords = globBase(filepath.Join(n.StateDir, "podnet", "pods", "*"))
	l.LogDirs = globBase(filepath.Join(n.LogDir, "*"))
	return l
}

// 100 pods created and deleted (ten rounds of a Deployment scaled 0 → 10 → 0) leave no
// container, task, snapshot, IP allocation, mount, shim, veth, pod record, log directory, CNI
// cache entry or cgroup behind.
func TestCreateDeleteCyclesLeakNothing(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	// One pod first, so that the image is imported and unpacked: its layers' snapshots are
	// meant to stay.
	c.Apply(podSpec{name: "warmup", args: []string{"sleep"}, grace: 1}.manifest())
	waitRunning(t, c, "warmup")
	if _, err := c.Skiff("delete", "pod", "warmup"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, "warmup")
	baseline := leftovers(t, c, "node1")
	if len(baseline.Containers)+len(baseline.IPs)+len(baseline.Shims) > 0 {
		t.Fatalf("after the warm-up pod is gone, the node still holds %+v", baseline)
	}

	c.Apply(churnDeployment)
	const rounds, replicas = 10, 10
	uids := map[string]bool{}
	containers := map[string]bool{}
	for r := 0; r < rounds; r++ {
		if _, err := c.Skiff("scale", "deployment", "churn", "--replicas", strconv.Itoa(replicas)); err != nil {
			t.Fatal(err)
		}
		c.WaitFor("round "+strconv.Itoa(r)+": 10 churn pods running", func() bool {
			pods, err := c.PodsErr()
			if err != nil {
				return false
			}
			n := 0
			for _, p := range pods {
				if strings.HasPrefix(p.Metadata.Name, "churn-") && running(p) {
					n++
					uids[p.Metadata.UID] = true
					containers[strings.TrimPrefix(containerID(p), "containerd://")] = true
				}
			}
			return n == replicas
		})
		if r == 0 {
			// The checks below must be able to see leaks: while the pods run, they see
			// everything the pods hold.
			l := leftovers(t, c, "node1")
			// A pod is one container (its sandbox is pinned namespaces: a directory and three
			// mounts, net, ipc and uts) with its own shim.
			got := []int{len(l.Containers), len(l.Tasks), len(l.IPs), len(l.Shims), len(l.Veths), len(l.PodRecords), len(l.LogDirs), len(l.Pins)}
			want := []int{replicas, replicas, replicas, replicas, replicas, replicas, replicas, 4 * replicas}
			if diff := cmp.Diff(want, got); diff != "" || len(l.Mounts) < replicas {
				t.Fatalf("with %d pods running, containers, tasks, IPs, shims, veths, pod records, log dirs, pins (-want +got):\n%s\nmounts: %d\n%+v", replicas, diff, len(l.Mounts), l)
			}
		}
		if _, err := c.Skiff("scale", "deployment", "churn", "--replicas", "0"); err != nil {
			t.Fatal(err)
		}
		waitGone(t, c, "churn-")
	}
	if len(uids) != rounds*replicas {
		t.Fatalf("saw %d distinct pods, want %d", len(uids), rounds*replicas)
	}
	// Every pod ended with PodTerminated from the node before PodDeleted.
	terminated := map[string]bool{}
	for _, ev := range c.Events(events.KindFilter(events.KindStatus)) {
		if d, ok := ev.Data.(*events.PodTerminated); ok {
			terminated[d.UID] = true
		}
	}
	for uid := range uids {
		if !terminated[uid] {
			t.Errorf("pod %s was deleted without its node reporting PodTerminated", uid)
		}
	}

	after := leftovers(t, c, "node1")
	if diff := cmp.Diff(baseline, after); diff != "" {
		t.Errorf("after %d pods came and went, the node holds more than before (-before +after):\n%s", len(uids), diff)
	}
	// Outside the node's directory: libcni's result cache and the containers' cgroups.
	for uid := range uids {
		if _, err := os.Stat(filepath.Join("/var/lib/cni/results", "skiff-"+uid+"-eth0")); err == nil {
			t.Errorf("libcni still caches a result for pod %s", uid)
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + cluster.CgroupParent + "/*")
	for _, cg := range cgroups {
		if containers[filepath.Base(cg)] {
			t.Errorf("cgroup %s of a deleted container is still there", cg)
		}
	}
	for _, m := range cluster.Mounts() {
		for id := range containers {
			if strings.Contains(m, id) {
				t.Errorf("mount %s of a deleted container is still there", m)
			}
		}
	}
	t.Logf("%d pods created and deleted; the node holds %d snapshots (the image's layers), %d mounts",
		len(uids), len(after.Snapshots), len(after.Mounts))
}

func sortedFields(s string) []string {
	f := strings.Fields(s)
	sort.Strings(f)
	return f
}

func globBase(pattern string) []string {
	ms, _ := filepath.Glob(pattern)
	var out []string
	for _, m := range ms {
		out = append(out, filepath.Base(m))
	}
	sort.Strings(out)
	return out
}
