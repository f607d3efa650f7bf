// Package datacenter runs the Nomad jobspecs in deploy/nomad without Nomad: three network
// namespaces play three VMs, and each runs exactly the command lines tests/nomad renders from
// the jobspecs, with the files their templates write, as deploy/nomad/README.md walks an
// operator through it.
//
// # What a VM is
//
// A VM is a network namespace on one LAN bridge (tests/cluster's SetupLAN) plus a mount
// namespace of its own, held open by a long-lived holder process (unshare --mount
// --propagation private). In it, per-VM directories are bind-mounted over the absolute host
// paths the jobspecs and the programs use: /var/lib/nats (the NATS host volume), /var/lib/skiff,
// /var/log/skiff, /run/containerd, /run/skiff, and the freshly built binaries over
// /usr/local/bin. Every task, and the VM's own containerd, runs with nsenter into both
// namespaces, so "/usr/local/bin/skiff-nodeagent --state-dir /var/lib/skiff" means that VM's
// binary and that VM's state, as on a real machine. Mount propagation is private: nothing
// mounted in a VM, by the harness or by containerd, shows on the host (the test checks).
//
// # Order
//
// As the README: NATS (until every server's /healthz is ok and all agree on a JetStream meta
// leader), the bootstrap batch job (it must exit 0), the scheduler job, containerd on every VM
// (the README's prerequisite), the node system job. The operator's commands (skiff cluster init,
// node creds, user creds, image import, apply) run with the built skiff binary, from vm1's
// network namespace, since the LAN is reachable only from inside the run's namespaces.
//
// # What is not Nomad
//
// Placement is nomad.Place, rendering nomad.Render: Nomad's scheduler, template runner,
// restarts and the exec driver's chroot and user are not simulated. A task runs with raw_exec's
// paths (its task directory as working directory); an exec task's host volume is honoured only
// where the VM's host volume path equals the mount's destination, which is how the NATS job and
// the README set it up.
//
// # Cleanup
//
// Everything the run makes is named after its cluster.Run: its directory and namespaces, which
// the run's sweep removes, also after a test process that died. On the way out the harness stops
// its processes by PID, then kills whatever is left in each VM's mount namespace (containerd's
// shims and their containers, which outlive containerd by design), then sweeps the run. The mount
// points it had to create on the host (such as /var/lib/nats) stay as empty directories: removing
// one would detach a concurrent run's mounts in its own namespace.
package datacenter
