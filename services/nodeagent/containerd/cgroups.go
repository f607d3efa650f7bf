package containerd

import "golang.org/x/sys/unix"

// UnifiedMount is where a host with hybrid cgroups (v1 controllers, and cgroup2 for systemd's
// process tracking only) mounts its cgroup2 hierarchy.
const UnifiedMount = "/sys/fs/cgroup/unified"

// HybridCgroups reports whether this host's cgroups are hybrid: v1 hierarchies under
// /sys/fs/cgroup and a cgroup2 mount at UnifiedMount. crun refuses to run containers there
// ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"); runc uses the
// v1 hierarchies.
func HybridCgroups() bool {
	var root, unified unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &root) != nil || unix.Statfs(UnifiedMount, &unified) != nil {
		return false
	}
	return root.Type != unix.CGROUP2_SUPER_MAGIC && unified.Type == unix.CGROUP2_SUPER_MAGIC
}

// Argv is the command line that runs containerd with args. On a host with hybrid cgroups it
// runs containerd in a mount namespace of its own in which UnifiedMount is unmounted, so that
// containerd, its shims and the OCI runtimes they run see pure cgroup v1, which crun accepts
// as runc does. The host's own mounts stay as they are: the namespace is a slave of the
// host's, so the unmount does not propagate back (and host mounts made later still reach
// it). Nothing else changes for containerd: same filesystems, same cgroup v1 hierarchies.
func Argv(args ...string) []string {
	argv := append([]string{"containerd"}, args...)
	if !HybridCgroups() {
		return argv
	}
	return append([]string{"unshare", "--mount", "--propagation", "slave", "--",
		"sh", "-c", `umount ` + UnifiedMount + ` && exec "$@"`, "sh"}, argv...)
}
