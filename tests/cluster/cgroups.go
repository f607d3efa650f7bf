package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

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

// pinRoot holds every cluster's pinned pod namespaces (--sandbox pinned), a directory per node
// named after the node's network namespace. It is one shared mount (a bind mount of itself) made
// once and left in place, outside the runs' directories: containerds made later, in mount
// namespaces that are slaves of the host's, see the pins agents make under it, and no run's
// directory is ever the source of a mount in the host's namespace (sweepRun's killMountUsers
// takes a process with such a mount for one inside the run's private namespace).
const pinRoot = "/run/skiff-e2e-pins"

// PinDir is where the node's agent pins pods' namespaces (--pin-dir).
func (n *Node) PinDir() string { return filepath.Join(pinRoot, n.Netns) }

// sharePinRoot makes pinRoot a shared mount unless it is one already, as the agent's
// runtime.SharePinDir does (this module does not import it). Two test processes racing here may
// stack two such mounts: harmless, the top one is shared either way.
func sharePinRoot() error {
	if err := os.MkdirAll(pinRoot, 0o755); err != nil {
		return err
	}
	if !slices.Contains(Mounts(), pinRoot) {
		if err := unix.Mount(pinRoot, pinRoot, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", pinRoot, err)
		}
	}
	if err := unix.Mount("", pinRoot, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", pinRoot, err)
	}
	return nil
}
