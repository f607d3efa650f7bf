// Package podnet gives each pod of a node one IPv4 address in the node's pod CIDR, and routes
// the pod CIDRs of the other nodes.
//
// # Shape
//
// A pod is one network namespace, held by its sandbox process; Setup is handed its
// /proc/<pid>/ns/net. podnet brings the pod's lo up itself, with one netlink request in the
// pod's namespace, and renders a CNI conflist in code (bridge + host-local) that it runs
// through github.com/containerd/go-cni with the plugins of Debian's
// containernetworking-plugins:
//
//   - the bridge plugin puts one end of a veth pair into the pod as eth0 and the other on the
//     node's bridge (skiff0), which holds the gateway, the first address of the pod CIDR;
//     hairpin mode is on so that a pod can reach a Service whose endpoint is itself;
//   - host-local hands out the addresses and keeps them as one file per address under
//     Config.StateDir, which is what Allocations reads;
//   - podnet's own nftables table (MasqueradeTable) masquerades what pods send out of the
//     cluster CIDR, instead of the bridge plugin's ipMasq, which would also hide pod
//     addresses from pods on other nodes.
//
// The loopback CNI plugin did lo before, one process more per pod set up and torn down
// (BenchmarkSetupTeardown against BenchmarkSetupTeardownLoopbackPlugin: about 10 ms of CPU
// per pod on a 2-core VM); Config.LoopbackPlugin still selects it, to measure against.
//
// SyncRoutes is flannel's host-gw: a route "pod CIDR via node address" per other node, in
// the node's main table, marked with RouteProtocol so that it only ever changes its own.
//
// Everything happens in the network namespace of the calling process: the node's. CNI
// plugins are child processes and inherit the namespace of the process, not of a goroutine's
// thread, so a caller that wants another namespace must run the whole process in it (the
// tests re-execute themselves in a fresh namespace; see podnettest).
//
// # State and crashes
//
// host-local's files are the truth about which pod holds which address. After a crash of the
// agent, list Allocations and call Teardown(ctx, podID, "") for every pod that no longer
// exists: an empty namespace path releases the address without touching any namespace.
// Besides them podnet keeps one small record per pod, the identity of the namespace Setup
// was given, so that Teardown never removes eth0 from a namespace that is not the pod's:
// /proc/<pid>/ns/net names another process's namespace once the PID is reused.
// libcni caches ADD results under /var/lib/cni (go-cni offers no way to move it); Teardown
// removes a pod's entry.
//
// # Ordering and concurrency
//
// All methods are safe for concurrent use. Setup and Teardown of one pod are serialised and
// so happen in the order they are called in; different pods proceed in parallel (host-local
// takes its own file lock). Setup is idempotent and Teardown can be repeated, so a caller that
// is unsure whether a call took effect (a timeout, a crash) can simply call it again.
// SyncRoutes calls are serialised; each leaves the table matching its argument.
package podnet
