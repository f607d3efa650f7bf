// Package register puts a node on the log and keeps its lease: what every node agent, real or
// simulated, does first and then forever.
//
// # Registration
//
// Register appends NodeRegistered to the node's subject only when the log does not already hold
// the same registration (labels, taints, address, capacity), so an agent that restarts with
// nothing changed writes nothing. The append is conditional on the node subject's sequence as the
// projection shows it; on a conflict (the control plane assigned a pod CIDR, the node lifecycle
// marked it NotReady) Register waits until the projection shows the newer event and decides
// again.
//
// # Leases
//
// A lease is a key per node in the KV bucket api.LeaseBucket (history 1): heartbeats are not
// events. The value is a small JSON document for people; the node lifecycle controller goes by the
// key's last update time, which the server stamps, so clocks of nodes do not matter.
//
// # Concurrency
//
// Functions are safe to call from many goroutines; RenewLoop runs until its context ends.
package register
