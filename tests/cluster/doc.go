// Package cluster runs a whole Skiff cluster of real processes for end-to-end tests, with every
// machine a network namespace, and takes it all down again when the test ends.
//
//	c := cluster.New(t, cluster.Options{Nodes: 2})
//	c.Apply(manifest)
//	c.WaitFor("3 pods running", func() bool { ... c.Pods() ... })
//	out, err := c.ExecInNode("node1", "curl", "-s", "http://"+podIP+":8080/")
//
// # Layout
//
// New creates, with `ip netns add`, one namespace for the control plane and one per node, each
// with one address on a bridge (10.211.0.0/24; the control plane .1, node i .1i). The bridge
// itself lives in a further "lan" namespace, and both ends of every veth are made there, so
// nothing is created in the host's root namespace: no bridge, no route, no nftables rule. The
// control plane namespace runs `skiff up --control-plane-only` (NATS and the scheduler in one
// process) or, with Options.Schedulers, a NATS server and that many skiff-scheduler processes.
// Each node namespace runs its own containerd (own root, state and socket under the cluster's
// directory) and skiff-nodeagent; the agent makes its pod bridge, routes and masquerade table
// inside the node's namespace. Processes are started with `nsenter --net`, which enters the
// network namespace only: `ip netns exec` would also make a private mount namespace, hiding
// containerd's mounts from the agent and from the cleanup.
//
// The test process stays in the host's namespace. It reaches NATS through a dialer that makes
// its socket inside the control plane's namespace (Conn, Store), and runs the CLI, curl or ctr
// in the right namespace with nsenter (Skiff, ExecInNode, ExecInPod).
//
// # Binaries
//
// Build compiles skiff, skiff-scheduler and skiff-nodeagent from the working tree, and the
// images with images/build, once per test process; SKIFF_BIN=bin takes the output of `make
// build` instead. Call Main from TestMain to remove them at the end.
//
// # Cleanup
//
// Teardown is registered with t.Cleanup and runs even when the test fails: agents are stopped,
// every container is removed through containerd (so runc removes cgroups and the snapshotter
// unmounts), containerd and the control plane are stopped by PID, shims still serving a socket
// of the cluster are killed with their containers, container cgroups and mounts left under the
// cluster's directory are removed, libcni's cache entries of its pods deleted, the namespaces
// deleted and the directory removed. Every process is started with Pdeathsig, so a test process
// that is killed takes its agents and containerds with it; shims survive by design, and the next
// test process sweeps them, with everything else of runs whose owner process is gone, before it
// starts its first cluster.
//
// # Concurrency
//
// A Cluster is meant for the one test that made it; its methods may be called from several
// goroutines of that test. Clusters of parallel tests are independent.
package cluster
