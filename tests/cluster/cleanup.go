package cluster

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Everything a cluster makes on the machine is named after its run ID, runPrefix<pid>-<n>:
// its directory os.TempDir()/<run ID> and its network namespaces <run ID>-lan, -cp, -node1, ...
// The directory holds the owner file (the identity of the test process) and the pids file (the
// identity of every process started), which is all a later sweep needs to clean up after a test
// process that died without running its cleanup.
const (
	runPrefix = "skfe2e-"
	ownerFile = "owner"
	pidsFile  = "pids"
)

var runIDPattern = regexp.MustCompile(`^` + runPrefix + `(\d+)-(\d+)`)

// sweepRun removes what one cluster left on the machine once its processes are stopped or
// gone: surviving processes it recorded, containerd shims (and their containers) serving a
// socket under dir, container cgroups, mounts under dir, CNI result cache entries of its pods,
// its network namespaces and dir itself. Each step is best effort and the whole is idempotent.
func sweepRun(dir, runID string, logf func(string, ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	// Processes the run recorded that still run (a test killed between starting a process and
	// its Pdeathsig taking effect, or a process that escaped it).
	if b, err := os.ReadFile(filepath.Join(dir, pidsFile)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			if pid, ok := aliveIdentity(f[1] + " " + f[2]); ok {
				_ = unix.Kill(pid, unix.SIGKILL)
				logf("cluster: killed leftover %s (pid %d)", f[0], pid)
				Poll(10*time.Second, func() bool { _, ok := aliveIdentity(f[1] + " " + f[2]); return !ok })
			}
		}
	}
	if n := killMountUsers(dir); n > 0 {
		logf("cluster: killed %d leftover process(es) in mount namespaces that mount %s", n, dir)
	}
	if n := killShims(dir); n > 0 {
		logf("cluster: killed %d leftover containerd shim(s) and their containers", n)
	}
	ids, pods := containerIDs(dir), podIDs(dir)
	removeCgroups(ids)
	for _, m := range mountsUnder(dir) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			logf("cluster: unmount %s: %v", m, err)
		}
	}
	// Pinned pod namespaces live outside dir (pinRoot), in directories named after the run's
	// network namespaces.
	pins, _ := filepath.Glob(filepath.Join(pinRoot, runID+"-*"))
	for _, p := range pins {
		for _, m := range mountsUnder(p) {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				logf("cluster: unmount %s: %v", m, err)
			}
		}
		if err := os.RemoveAll(p); err != nil {
			logf("cluster: remove %s: %v", p, err)
		}
	}
	for _, p := range pods {
		// libcni caches every ADD result here, whatever the agent's state dir.
		_ = os.Remove(filepath.Join("/var/lib/cni/results", "skiff-"+p+"-eth0"))
		_ = os.Remove(filepath.Join("/var/lib/cni/results", "cni-loopback-"+p+"-lo"))
	}
	nss, _ := filepath.Glob(filepath.Join("/run/netns", runID+"-*"))
	for _, ns := range nss {
		if err := deleteNetns(filepath.Base(ns)); err != nil {
			logf("cluster: %v", err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		logf("cluster: remove %s: %v", dir, err)
	}
}

// killMountUsers kills the processes (and their children) whose mount namespace has a bind mount
// of something under dir: what runs inside a harness's private mount namespace (tests/datacenter's
// VMs), such as containerd's shims, which no pids file records and whose command lines name only
// paths inside that namespace. It returns how many it killed.
func killMountUsers(dir string) (killed int) {
	self := os.Getpid()
	// A process in this namespace is not inside a harness's private one, whatever it mounts:
	// never kill the host's processes (this one's parents among them) for a stray mount.
	ownNS, _ := os.Readlink("/proc/self/ns/mnt")
	find := func() []int {
		entries, _ := os.ReadDir("/proc")
		var out []int
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			if ns, _ := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "mnt")); ns == ownNS {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				// Field 4 is the mount's root within its filesystem, the source of a bind mount:
				// relative to that filesystem (a tmpfs /tmp drops the /tmp), so the run's
				// directory is recognised by its name, which is unique.
				if f := strings.Fields(line); len(f) > 4 && strings.Contains(unescapeMountPath(f[3])+"/", "/"+filepath.Base(dir)+"/") {
					if processIdentity(pid) != "" { // not a zombie
						out = append(out, pid)
					}
					break
				}
			}
		}
		return out
	}
	return KillAll(15*time.Second, find)
}

// KillAll sends SIGKILL to every process find lists, and to their children, until find lists
// none or timeout passes, and returns how many it killed.
func KillAll(timeout time.Duration, find func() []int) (killed int) {
	Poll(timeout, func() bool {
		pids := find()
		for _, pid := range pids {
			for _, c := range childrenOf(pid) {
				_ = unix.Kill(c, unix.SIGKILL)
			}
			if unix.Kill(pid, unix.SIGKILL) == nil {
				killed++
			}
		}
		return len(pids) == 0
	})
	return killed
}

// containerIDs are the IDs of containerd containers that ever had a task under dir: containerd
// keeps one directory per task, named after the container, in its state and root directories.
func containerIDs(dir string) []string {
	seen := map[string]bool{}
	for _, pattern := range []string{"*/containerd/state/io.containerd.runtime.v2.task/*/*", "*/containerd/root/io.containerd.runtime.v2.task/*/*"} {
		ms, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, m := range ms {
			seen[filepath.Base(m)] = true
		}
	}
	return sortedKeys(seen)
}

// podIDs are the UIDs of pods whose network the nodes under dir set up: podnet keeps one record
// per pod and host-local one file per address, holding the pod's ID.
func podIDs(dir string) []string {
	seen := map[string]bool{}
	recs, _ := filepath.Glob(filepath.Join(dir, "*", "state", "podnet", "pods", "*.json"))
	for _, r := range recs {
		seen[strings.TrimSuffix(filepath.Base(r), ".json")] = true
	}
	allocs, _ := filepath.Glob(filepath.Join(dir, "*", "state", "podnet", "ipam", "skiff", "*"))
	for _, a := range allocs {
		if b, err := os.ReadFile(a); err == nil && strings.Contains(filepath.Base(a), ".") && !strings.HasPrefix(filepath.Base(a), "last_reserved") {
			id, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\r\n")
			if id = strings.TrimSpace(id); id != "" {
				seen[id] = true
			}
		}
	}
	return sortedKeys(seen)
}

// CgroupParent is where the node agent's runtime puts every container's cgroup (its default;
// the agent has no flag for it, so all nodes of all clusters share it, each container under its
// own ID).
const CgroupParent = "skiff"

// removeCgroups removes the cgroups of the given containers in every hierarchy. A cgroup can only
// go once its processes are gone, which takes a moment after they were killed.
func removeCgroups(ids []string) {
	if len(ids) == 0 {
		return
	}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	var dirs []string
	for _, root := range roots {
		for _, id := range ids {
			d := filepath.Join(root, CgroupParent, id)
			if _, err := os.Stat(d); err == nil {
				dirs = append(dirs, d)
			}
		}
	}
	Poll(5*time.Second, func() bool {
		left := dirs[:0]
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && err != unix.ENOENT {
				left = append(left, d)
			}
		}
		dirs = left
		return len(dirs) == 0
	})
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	var out []string
	for _, m := range Mounts() {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// Mounts lists the mount points of this mount namespace (the host's, which containerd and the
// agents share: nsenter enters only the network namespace).
func Mounts() []string { return mountsOf(os.Getpid()) }

// mountsOf lists the mount points of pid's mount namespace.
func mountsOf(pid int) []string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 {
			out = append(out, unescapeMountPath(fields[4]))
		}
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var sweepOnce sync.Once

// sweepStale cleans up, once per test process, after earlier test processes that died without
// cleaning up: every run directory (and build directory) whose owner process is gone, and every
// namespace with the prefix whose run directory is gone.
func sweepStale(logf func(string, ...any)) {
	sweepOnce.Do(func() {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), runPrefix+"*"))
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, ownerFile))
			if err != nil {
				continue // not ours, or being set up right now
			}
			if _, alive := aliveIdentity(string(b)); alive {
				continue
			}
			if logf != nil {
				logf("cluster: cleaning up %s, left by a test process that died", dir)
			}
			sweepRun(dir, filepath.Base(dir), logf)
		}
		nss, _ := filepath.Glob(filepath.Join("/run/netns", runPrefix+"*"))
		for _, ns := range nss {
			m := runIDPattern.FindString(filepath.Base(ns))
			if m == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(os.TempDir(), m)); err == nil {
				continue // its run is alive (or was just swept and kept)
			}
			_ = deleteNetns(filepath.Base(ns))
		}
	})
}

// Poll calls cond until it holds or timeout passes, and reports whether it held.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
