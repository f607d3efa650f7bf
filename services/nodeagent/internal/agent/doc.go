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
//
// # Dependencies
//
// Workers see containerd, the pod network, the cluster's image store and the log through small
// interfaces declared where they are used (podRuntime, imageRuntime, imageStore, podNetwork,
// statusWriter in worker.go; Runtime and Network in agent.go), which *runtime.Runtime,
// *podnet.Network and the agent itself satisfy. Time comes from one Clock: back-offs, image
// retries, error retries and the periodic resync are timers of that clock, so the tests run the
// workers and the reconcile loop against fakes and step a fake clock, without root or waiting.
package agent
