package containerd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// mountPoints lists the mount points process pid sees.
func mountPoints(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out = append(out, f[4])
		}
	}
	return out
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The daemon Start runs sees no cgroup2 mount on a host with hybrid cgroups, and the host keeps
// its own; elsewhere it runs in the host's mount namespace.
func TestStartHidesUnifiedCgroupMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: runs containerd")
	}
	hybrid := HybridCgroups()
	hostBefore := has(mountPoints(t, os.Getpid()), UnifiedMount)
	if hybrid && !hostBefore {
		t.Fatalf("HybridCgroups() but %s is not in this process's mounts", UnifiedMount)
	}
	dir, err := os.MkdirTemp("", "ctrd-start-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := Start(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	pid := d.cmd.Process.Pid
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "containerd" {
		t.Errorf("the started process is %q, want containerd itself (the wrapper execs it)", comm)
	}
	if got := has(mountPoints(t, pid), UnifiedMount); got != (hostBefore && !hybrid) {
		t.Errorf("hybrid cgroups %v: containerd sees %s: %v", hybrid, UnifiedMount, got)
	}
	if !has(mountPoints(t, pid), "/sys/fs/cgroup/memory") && has(mountPoints(t, os.Getpid()), "/sys/fs/cgroup/memory") {
		t.Error("containerd lost the cgroup v1 hierarchies")
	}
	if got := has(mountPoints(t, os.Getpid()), UnifiedMount); got != hostBefore {
		t.Errorf("the host's %s mount changed: %v before, %v after", UnifiedMount, hostBefore, got)
	}
}
