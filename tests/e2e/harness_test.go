package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/tests/cluster"
)

// hostState is what the host's root namespace shows of networking, and which cluster things
// exist on the machine.
type hostState struct {
	Links, Addrs, Routes, NftTables []string
}

func snapshotHost(t *testing.T) hostState {
	t.Helper()
	lines := func(name string, args ...string) []string {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		var ls []string
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				ls = append(ls, l)
			}
		}
		sort.Strings(ls)
		return ls
	}
	var h hostState
	for _, l := range lines("ip", "-o", "link", "show") {
		// "4: eth0: <...> ... state UP ...": the name, not counters or state.
		if f := strings.Fields(l); len(f) > 1 {
			h.Links = append(h.Links, f[1])
		}
	}
	for _, l := range lines("ip", "-o", "addr", "show") {
		if f := strings.Fields(l); len(f) > 3 {
			h.Addrs = append(h.Addrs, f[1]+" "+f[3])
		}
	}
	h.Routes = lines("ip", "route", "show", "table", "all")
	h.NftTables = lines("nft", "list", "tables")
	return h
}

// added lists what b has and a lacks, per field.
func added(a, b hostState) []string {
	var out []string
	diff := func(what string, x, y []string) {
		have := map[string]bool{}
		for _, s := range x {
			have[s] = true
		}
		for _, s := range y {
			if !have[s] {
				out = append(out, what+": "+s)
			}
		}
	}
	diff("link", a.Links, b.Links)
	diff("address", a.Addrs, b.Addrs)
	diff("route", a.Routes, b.Routes)
	diff("nftables table", a.NftTables, b.NftTables)
	return out
}

// processesMentioning lists the processes whose command line mentions s.
func processesMentioning(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 || e.Name() == fmt.Sprint(os.Getpid()) {
			continue
		}
		if bytes.Contains(cmdline, []byte(s)) {
			out = append(out, e.Name()+": "+string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// traces lists what of run runID is left on the machine.
func traces(runID string) []string {
	var out []string
	nss, _ := filepath.Glob("/run/netns/" + runID + "-*")
	for _, ns := range nss {
		out = append(out, "netns "+filepath.Base(ns))
	}
	dir := filepath.Join(os.TempDir(), runID)
	if _, err := os.Stat(dir); err == nil {
		out = append(out, "directory "+dir)
	}
	for _, m := range cluster.Mounts() {
		if strings.HasPrefix(m, dir+"/") {
			out = append(out, "mount "+m)
		}
	}
	for _, p := range processesMentioning(dir + "/") {
		out = append(out, "process "+p)
	}
	return out
}

// A cluster creates nothing in the host's root network namespace while it runs, and leaves
// nothing on the machine once its test is over.
func TestClusterLeavesNoTrace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: makes network namespaces (run the tests as root)")
	}
	before := snapshotHost(t)
	var runID string
	var cgroups []string
	t.Run("cluster", func(t *testing.T) {
		c := cluster.New(t, cluster.Options{Nodes: 2})
		runID = c.RunID
		for _, n := range []string{"node1", "node2"} {
			c.Apply(podSpec{name: "echo-" + n, image: echoImage, node: n, grace: 1}.manifest())
		}
		for _, n := range []string{"node1", "node2"} {
			p := waitRunning(t, c, "echo-"+n)
			id := strings.TrimPrefix(containerID(p), "containerd://")
			cgroups = append(cgroups, filepath.Join("/sys/fs/cgroup/memory", cluster.CgroupParent, id))
		}
		for _, cg := range cgroups {
			if _, err := os.Stat(cg); err != nil {
				t.Fatalf("running container's cgroup: %v", err)
			}
		}
		if got := traces(runID); len(got) == 0 {
			t.Fatal("a running cluster shows no trace: the checks below would prove nothing")
		}
		if a := added(before, snapshotHost(t)); len(a) > 0 {
			t.Errorf("while the cluster runs, the host's root namespace has new things:\n%s", strings.Join(a, "\n"))
		}
		// The test ends with both pods running: the cleanup has everything to do.
	})
	if runID == "" {
		t.Fatal("the cluster did not start")
	}
	if left := traces(runID); len(left) > 0 {
		t.Errorf("after the test, cluster %s left:\n%s", runID, strings.Join(left, "\n"))
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s is left", cg)
		}
	}
	if a := added(before, snapshotHost(t)); len(a) > 0 {
		t.Errorf("after the test, the host's root namespace has new things:\n%s", strings.Join(a, "\n"))
	}
}

const crashChildEnv = "SKIFF_E2E_CRASH_CHILD"

// A test process that is killed outright (no cleanup runs) takes its agents, containerds and
// control plane with it; what survives by design (shims and their containers, mounts,
// namespaces, files) is swept by the next test process before it starts a cluster.
func TestKilledTestIsSweptByTheNext(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		// The child: a cluster with a running pod, then death without cleanup.
		c := cluster.New(t, cluster.Options{})
		c.Apply(podSpec{name: "orphan", args: []string{"sleep"}, grace: 30}.manifest())
		waitRunning(t, c, "orphan")
		fmt.Printf("RUNID=%s\n", c.RunID)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root: makes network namespaces, runs containerd (run the tests as root)")
	}
	bin := cluster.Build(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.v=true", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", "SKIFF_BIN="+bin.Dir())
	out, err := cmd.CombinedOutput()
	var ws syscall.WaitStatus
	if ee, ok := err.(*exec.ExitError); ok {
		ws, _ = ee.Sys().(syscall.WaitStatus)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child test did not die of SIGKILL (%v):\n%s", err, out)
	}
	m := regexp.MustCompile(`RUNID=(\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("child test printed no run ID:\n%s", out)
	}
	runID := string(m[1])
	dir := filepath.Join(os.TempDir(), runID)

	// Pdeathsig: agents, containerd and skiff up die with the test process; only shims (and
	// their containers) are left running.
	var others []string
	ok := cluster.Poll(10*time.Second, func() bool {
		others = others[:0]
		for _, p := range processesMentioning(dir + "/") {
			if !strings.Contains(p, "containerd-shim") {
				others = append(others, p)
			}
		}
		return len(others) == 0
	})
	if !ok {
		t.Errorf("processes of the killed test still run:\n%s", strings.Join(others, "\n"))
	}
	before := traces(runID)
	shims := 0
	for _, tr := range before {
		if strings.Contains(tr, "containerd-shim") {
			shims++
		}
	}
	if shims == 0 || len(before) < 3 {
		t.Fatalf("the killed test left too little for the sweep to prove anything:\n%s", strings.Join(before, "\n"))
	}
	t.Logf("the killed test left %d things, %d of them shims", len(before), shims)

	cluster.SweepStale(t.Logf)
	if left := traces(runID); len(left) > 0 {
		t.Errorf("after the sweep, the killed test's cluster %s left:\n%s", runID, strings.Join(left, "\n"))
	}
	// And the next cluster works.
	c := cluster.New(t, cluster.Options{})
	c.Apply(podSpec{name: "next", args: []string{"sleep"}, grace: 1}.manifest())
	waitRunning(t, c, "next")
}
