package cluster

import "golang.org/x/sys/unix"

// unifiedMount is where a host with hybrid cgroups mounts its cgroup2 hierarchy.
const unifiedMount = "/sys/fs/cgroup/unified"

// hybridCgroups reports whether the host has cgroup v1 hierarchies under /sys/fs/cgroup and a
// cgroup2 mount at unifiedMount, which crun refuses.
func hybridCgroups() bool {
	var root, unified unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &root) != nil || unix.Statfs(unifiedMount, &unified) != nil {
		return false
	}
	return root.Type != unix.CGROUP2_SUPER_MAGIC && unified.Type == unix.CGROUP2_SUPER_MAGIC
}

// containerdArgv is the command line of a node's containerd with args, started as `skiff up`
// starts its own (skiff.dev/services/nodeagent/containerd.Argv, which this module does not
// import): on a host with hybrid cgroups, in a mount namespace of its own (a slave of the
// host's, so nothing propagates back) without the cgroup2 mount, so that crun works.
func containerdArgv(args ...string) []string {
	argv := append([]string{"containerd"}, args...)
	if !hybridCgroups() {
		return argv
	}
	return append([]string{"unshare", "--mount", "--propagation", "slave", "--",
		"sh", "-c", `umount ` + unifiedMount + ` && exec "$@"`, "sh"}, argv...)
}
