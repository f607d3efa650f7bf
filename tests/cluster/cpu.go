package cluster

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// NodeCPU is CPU time (user + system) spent on a node, by whom. Exited children count towards
// the process that reaped them: the agent's are CNI plugins, containerd's the short-lived `shim
// start` processes, the shims' runc or crun (run for every create, start, kill and delete).
// Containers is what the containers' own processes (the shims' children that still run: pause
// and the apps) have used: mostly the OCI runtime's init, which sets the container up in the
// forked process that then becomes the container's (runc's `runc init`, a Go program, or crun's
// fork) and is counted nowhere else while the container runs.
type NodeCPU struct {
	Agent, CNI          time.Duration
	Containerd, ShimRun time.Duration
	Shims, Runc         time.Duration
	Containers          time.Duration
}

// Sub is the CPU time spent between two readings. Shims that exited in between are not in the
// later one: read it while the pods still run.
func (a NodeCPU) Sub(b NodeCPU) NodeCPU {
	return NodeCPU{
		Agent: a.Agent - b.Agent, CNI: a.CNI - b.CNI,
		Containerd: a.Containerd - b.Containerd, ShimRun: a.ShimRun - b.ShimRun,
		Shims: a.Shims - b.Shims, Runc: a.Runc - b.Runc,
		Containers: a.Containers - b.Containers,
	}
}

// Add sums two readings of differences.
func (a NodeCPU) Add(b NodeCPU) NodeCPU {
	return NodeCPU{
		Agent: a.Agent + b.Agent, CNI: a.CNI + b.CNI,
		Containerd: a.Containerd + b.Containerd, ShimRun: a.ShimRun + b.ShimRun,
		Shims: a.Shims + b.Shims, Runc: a.Runc + b.Runc,
		Containers: a.Containers + b.Containers,
	}
}

// Total is the sum of all parts.
func (a NodeCPU) Total() time.Duration {
	return a.Agent + a.CNI + a.Containerd + a.ShimRun + a.Shims + a.Runc + a.Containers
}

// Per divides every part by n (CPU per pod).
func (a NodeCPU) Per(n int) NodeCPU {
	d := time.Duration(max(n, 1))
	return NodeCPU{a.Agent / d, a.CNI / d, a.Containerd / d, a.ShimRun / d, a.Shims / d, a.Runc / d, a.Containers / d}
}

func (a NodeCPU) String() string {
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("agent %s + CNI plugins %s, containerd %s + shim start %s, shims %s + runc/crun %s, containers %s = %s",
		r(a.Agent), r(a.CNI), r(a.Containerd), r(a.ShimRun), r(a.Shims), r(a.Runc), r(a.Containers), r(a.Total()))
}

// CPU reads the CPU time the node's agent, containerd and shims have used so far.
func (n *Node) CPU() NodeCPU {
	var c NodeCPU
	c.Agent, c.CNI = processCPU(n.agent.pid())
	c.Containerd, c.ShimRun = processCPU(n.containerd.pid())
	for _, pid := range n.Shims() {
		self, children := processCPU(pid)
		c.Shims += self
		c.Runc += children
		for _, ctr := range childrenOf(pid) {
			self, children := processCPU(ctr)
			c.Containers += self + children
		}
	}
	return c
}

// ControlPlaneCPU is the CPU time the control plane processes (with their reaped children) have
// used so far.
func (c *Cluster) ControlPlaneCPU() time.Duration {
	var d time.Duration
	for _, p := range c.controlPlane {
		self, children := processCPU(p.pid())
		d += self + children
	}
	return d
}

// processCPU is utime + stime of pid, and cutime + cstime (its reaped children); 0 if it is gone.
func processCPU(pid int) (self, children time.Duration) {
	if pid == 0 {
		return 0, 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0
	}
	// After the command: state is field 3, utime..cstime are fields 14..17.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0, 0
	}
	ticks := func(s string) time.Duration {
		v, _ := strconv.ParseInt(s, 10, 64)
		return time.Duration(v) * clockTick
	}
	return ticks(f[11]) + ticks(f[12]), ticks(f[13]) + ticks(f[14])
}

// MachineCPU is the CPU time the whole machine has been busy and idle, summed over its CPUs,
// from /proc/stat: the benchmark's check of whether start-up is CPU-bound.
func MachineCPU() (busy, idle time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, s := range f[1:] {
		v, _ := strconv.ParseInt(s, 10, 64)
		d := time.Duration(v) * clockTick
		switch i {
		case 3, 4: // idle, iowait
			idle += d
		case 8, 9: // guest, guest_nice: already counted in user
		default:
			busy += d
		}
	}
	return busy, idle
}
