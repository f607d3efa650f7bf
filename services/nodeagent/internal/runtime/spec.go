package runtime

import (
	"context"
	"strconv"
	"strings"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cpuPeriod is the CFS period of every container: 100ms, as the kubelet.
const cpuPeriod = 100_000 // µs

// ProcessArgs computes a container's argv the way Kubernetes does: command
// replaces the image's Entrypoint and drops its Cmd; args replace the Cmd.
//
//	command  args   argv
//	-        -      Entrypoint + Cmd
//	set      -      command
//	-        set    Entrypoint + args
//	set      set    command + args
func ProcessArgs(entrypoint, cmd, command, args []string) []string {
	var argv []string
	if len(command) > 0 {
		argv = append(argv, command...)
	} else {
		argv = append(argv, entrypoint...)
	}
	switch {
	case len(args) > 0:
		argv = append(argv, args...)
	case len(command) == 0:
		argv = append(argv, cmd...)
	}
	return argv
}

// MergeEnv builds a container's environment as containerd's CRI plugin does:
// HOSTNAME first, then the image's variables, then the container's; a later
// KEY=value replaces an earlier one of the same KEY in place, so the order
// of first appearance is kept.
func MergeEnv(hostname string, image, container []string) []string {
	var out []string
	index := map[string]int{}
	add := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			return
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	if hostname != "" {
		add("HOSTNAME=" + hostname)
	}
	for _, kv := range image {
		add(kv)
	}
	for _, kv := range container {
		add(kv)
	}
	return out
}

// cpuQuota converts a limit in millicores to a CFS quota for cpuPeriod;
// 0 means no limit. The kernel refuses quotas under 1ms.
func cpuQuota(millis int64) int64 {
	if millis <= 0 {
		return 0
	}
	q := millis * cpuPeriod / 1000
	if q < 1000 {
		q = 1000
	}
	return q
}

// cpuShares converts a request in millicores to cgroup v1 shares (v2
// weights are derived by runc); the kubelet's formula, minimum 2.
func cpuShares(millis int64) uint64 {
	if millis <= 0 {
		return 2
	}
	s := uint64(millis) * 1024 / 1000
	if s < 2 {
		s = 2
	}
	return s
}

// withResources sets the cgroup limits of a container.
func withResources(cpuLimitMillis, cpuRequestMillis, memoryLimit int64, swapAccounting bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		res := s.Linux.Resources
		if res.CPU == nil {
			res.CPU = &specs.LinuxCPU{}
		}
		shares := cpuShares(cpuRequestMillis)
		res.CPU.Shares = &shares
		if q := cpuQuota(cpuLimitMillis); q > 0 {
			period := uint64(cpuPeriod)
			res.CPU.Quota = &q
			res.CPU.Period = &period
		}
		if memoryLimit > 0 {
			if res.Memory == nil {
				res.Memory = &specs.LinuxMemory{}
			}
			limit := memoryLimit
			res.Memory.Limit = &limit
			// Memory+swap equal to memory: a container never swaps past
			// its limit (it is OOM-killed instead, as the kubelet has it).
			if swapAccounting {
				swap := memoryLimit
				res.Memory.Swap = &swap
			}
		}
		return nil
	}
}

// withJoinedNamespaces makes the container share the sandbox's network, IPC
// and UTS namespaces; its PID and mount namespaces stay its own.
func withJoinedNamespaces(sb Sandbox) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		for _, ns := range []struct {
			typ  specs.LinuxNamespaceType
			name string
		}{{specs.NetworkNamespace, "net"}, {specs.IPCNamespace, "ipc"}, {specs.UTSNamespace, "uts"}} {
			path := sb.nsPath(ns.name)
			if err := oci.WithLinuxNamespace(specs.LinuxNamespace{Type: ns.typ, Path: path})(ctx, c, ctr, s); err != nil {
				return err
			}
		}
		// The hostname belongs to the sandbox's UTS namespace; runc refuses
		// to set one in a namespace it joins.
		s.Hostname = ""
		return nil
	}
}

// withUser applies the image's USER when it is numeric ("1000",
// "1000:1000"); names need the image's /etc/passwd, which oci.WithUser reads
// by mounting the root filesystem.
func withUser(user string) oci.SpecOpts {
	if user == "" {
		return oci.WithUIDGID(0, 0)
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, uerr := strconv.ParseUint(u, 10, 32)
	gid, gerr := strconv.ParseUint(g, 10, 32)
	switch {
	case uerr == nil && !hasGroup:
		return oci.WithUIDGID(uint32(uid), 0) // no /etc/passwd lookup: group 0, as docker without an entry
	case uerr == nil && gerr == nil:
		return oci.WithUIDGID(uint32(uid), uint32(gid))
	default:
		return oci.WithUser(user)
	}
}

// withProcess sets argv, environment and working directory outright.
func withProcess(argv, env []string, cwd string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Args = argv
		s.Process.Env = env
		s.Process.Cwd = cwd
		return nil
	}
}

func withCgroupsPath(path string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.CgroupsPath = path
		return nil
	}
}
