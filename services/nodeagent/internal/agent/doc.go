// Package agent is the node agent's core, the kubelet's job: it follows its node's work on the
// log, runs each bound pod on containerd with a network from CNI, and reports status events.
//
// # Shape
//
// Like the kubelet's pod workers: one worker goroutine per pod, which always works from the
// latest desired state (a burst of updates coalesces into one pass) and is the only code that
// touches that pod's containers. The follow loop only records what changed and wakes workers;
// container exits from containerd wake the pod's worker too.
//
// # Ordering
//
// Nothing runs before the agent has caught up with its work on the log and reconciled
// containerd against it: containers of pods still bound here are adopted (same container, same
// restart count), those of pods that are gone are killed and removed, and their IPs released.
// Status is appended conditionally on the last sequence of the pod's status subject, which only
// this node writes.
package agent
