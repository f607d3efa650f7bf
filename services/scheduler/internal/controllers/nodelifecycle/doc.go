// Package nodelifecycle is the node lifecycle controller: it gives every node a pod CIDR, and
// turns the node agents' lease renewals into NodeNotReady and NodeReady events.
//
// # Pod CIDRs
//
// A registered node without a pod CIDR gets the lowest /24 of the cluster range
// (PodCIDRRange, default 10.88.0.0/16) that no node holds: NodePodCIDRAssigned, conditional on
// the node's subject. IPv4 only. Allocation reads the CIDRs of all nodes in the projection, so it
// is exact with one controller; two controllers running at once (a leader change) could give two
// new nodes the same block, since their subjects differ. The fold should refuse an assignment of
// a block another node holds (see the report on events/state); until then this is logged.
//
// # Leases
//
// Heartbeats are not events: each agent renews the key <node> in the KV bucket api.LeaseBucket
// every 10 s. The controller watches the bucket and notes, on its own clock, when it sees a new
// revision of a key. Using the observation time rather than the entry's server timestamp is what
// Kubernetes' node lifecycle controller does (probeTimestamp): it needs no agreement between the
// server's clock and ours, and an injected clock drives it in tests. Revisions already in the
// bucket when the controller starts watching say nothing about the node being alive now, so they
// are not renewals; a watch that starts over only counts revisions newer than those it saw.
//
// A Ready node with no renewal for LeaseTimeout (default 40 s) becomes NotReady with Kubernetes'
// words: reason NodeStatusUnknown, "Kubelet stopped posting node status.". A NotReady node whose
// lease is renewed within LeaseTimeout becomes Ready (reason KubeletReady).
//
// # A new leader
//
// A controller that just started has no history, so every node gets a full LeaseTimeout of grace
// from the moment the watch began (and a node that registers later, from when it was first seen),
// as Kubernetes' node lifecycle controller does after a restart: a new leader never marks every
// node NotReady at once.
//
// # Concurrency
//
// A watcher goroutine records renewals under a mutex and wakes the loop only for nodes that are
// NotReady (a Ready node's renewal changes nothing now; its expiry is a requeue time). Passes run
// one at a time on the loop.
package nodelifecycle
