// Package runtime is the node agent's front door to containerd: it imports
// images, runs one sandbox per pod to hold the pod's namespaces, runs the
// pod's containers inside them, stops them with a grace period, reports how
// they ended, lists what is running after the agent restarts, and streams
// task exits. It does what the kubelet asks of a CRI runtime, but speaks
// containerd's Go client directly and knows nothing of pod specs or the
// event log: the pod worker maps a bound pod onto [PodSandboxConfig] and
// [ContainerConfig].
//
// # Identity
//
// Everything lives in one containerd namespace ("skiff" by default) and
// carries the labels skiff.dev/kind (sandbox or container),
// skiff.dev/pod-uid, skiff.dev/pod-name, skiff.dev/pod-namespace and, for
// containers, skiff.dev/container-name and skiff.dev/restart-count.
// Container IDs are a hash of the pod UID and the container name
// ([ContainerID], [SandboxID]), so a retried create finds the container it
// made before (errdefs.ErrAlreadyExists) instead of making a second one, and
// an agent that restarts adopts running containers under the same IDs. A
// restart of a container is RemoveContainer followed by CreateContainer with
// RestartCount+1: containerd holds at most one container per pod and name.
//
// # Sandbox
//
// A pod's sandbox holds its network, IPC and UTS namespaces (hostname = pod
// name); app containers join them, each in a PID namespace of its own, and
// the agent hands CNI the network namespace ([Sandbox.NetNSPath]). By
// default the sandbox is no process at all: the runtime makes the
// namespaces on a locked thread and pins them as bind mounts under
// PinDir/<pod uid>/ (see pinned.go), as CRI-O does without an infra
// container. The pins outlive the agent and containerd; they go when the
// sandbox is removed. The other kind, a pause container, is a containerd
// container whose only process, /pause, owns the namespaces
// (/proc/<pause pid>/ns/*) and is kept alive by its shim; pods get it where
// containerd cannot see the pins (New checks, see SharePinDir) or when
// Config.Sandbox asks for it. A pod keeps the kind it was made with.
//
// The pause program needs no image: at start the runtime writes a static
// ELF executable of under 150 bytes (see pause.go) into
// StateDir/sandbox-rootfs, and every pause sandbox uses that directory,
// read-only, as its root. There is nothing to import or unpack, no snapshot
// per sandbox, and no image that an operator could delete or forget to ship.
//
// All containers of a pod with a pause sandbox share one containerd shim
// process (the runc shim's io.containerd.runc.v2.group annotation names the
// sandbox). A pinned sandbox has no process to keep a shared shim alive, so
// there each container has its own shim; a pod of one container, the usual
// case, costs one shim either way.
//
// # OCI runtime
//
// The runc shim runs containers with crun or runc (Config.OCIRuntime; the shim's
// options.BinaryName). crun, a C program, costs about a quarter of runc's CPU per
// container, and start-up is CPU-bound on small nodes, so it is the default when it works:
// New creates (and removes) one probe container with it and falls back to runc, with a
// warning, when that fails. crun refuses hybrid cgroups (cgroup v1 with a cgroup2 mount at
// /sys/fs/cgroup/unified, as on Debian hosts booted so); a containerd started by skiff up or
// the tests runs in a mount namespace without that mount (package
// skiff.dev/services/nodeagent/containerd, Argv) and so runs crun. Each container keeps the
// runtime it was created with, so an agent that restarts with the other choice still stops
// and lists what runs.
//
// Most of crun's work for a container is compiling containerd's default seccomp profile
// with libseccomp. A pause process gets no filter (see CreateSandbox), and every app
// container of a node has the same profile, so with crun the probe container runs under it,
// the runtime reads back the program crun compiled (ptrace) and hands it to crun for every
// app container with that profile (crun's run.oci.seccomp_bpf_data annotation; seccomp.go).
//
// # Logs
//
// A container's stdout and stderr go, interleaved, to
// LogDir/<namespace>_<pod>_<uid>/<container>/<restart>.log. The containerd
// shim opens that file itself (a file:// log URI, [cio.LogFile]), so output
// keeps flowing while the agent is down or restarting: no pipe or FIFO
// leads through the agent. The shim opens the file with O_APPEND, which is
// what makes copy-truncate rotation safe: [Runtime.RotateLogs] copies a file
// over the size limit to <restart>.log.1 (shifting older copies) and
// truncates it, and the shim's next write lands at the new end. Output
// written between the copy and the truncate is lost, and while the agent is
// down nothing rotates; both are the price of not being in the data path.
// The agent runs [Runtime.RunLogRotation] (a RotateLogs pass per interval).
// A restarted container writes a new file and keeps the previous run's for
// "logs --previous"; older runs' files are deleted. The lines carry no
// timestamps or stream tags (this is not the CRI log format).
//
// # Ordering and concurrency
//
// A [Runtime] is safe for concurrent use. Operations on different pods are
// independent; operations on the same container must be serialised by the
// caller (one pod worker per pod), as the kubelet does. Exit and OOM events
// from [Runtime.Watch] arrive in containerd's order for one container; after
// containerd restarts the stream re-subscribes and sends an [EventResync],
// because exits that happened meanwhile were not delivered: the caller then
// lists. Status never depends on having seen an event: exit code, finish
// time and OOM kills are read from containerd and the container's cgroup.
//
// # Errors
//
// Errors wrap containerd's error classes (github.com/containerd/errdefs):
// ErrNotFound for a missing image, pod sandbox or container,
// ErrAlreadyExists for a create that finds the container already there,
// ErrFailedPrecondition when the pod's sandbox is not running, and
// ErrUnavailable while containerd is unreachable.
package runtime
