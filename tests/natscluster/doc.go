// Package natscluster runs a real three-server NATS cluster for tests: the stock nats-server
// binary (built from the version events/go.mod pins), each server in its own network namespace,
// configured by `skiff cluster init` exactly as an operator would, with TLS, operator/account
// JWTs and `sync_interval: always`.
//
//	c := natscluster.Start(t, natscluster.Options{})
//	c.Bootstrap(3)                          // skiff cluster bootstrap --replicas 3, admin config
//	nc := c.MustConnect(c.NodeCreds("a"))   // as node:a, through the namespaces, with the CA
//	c.Kill("n2"); c.Restart("n2")           // SIGKILL one server, start it again
//
// # Layout
//
// Start makes, with tests/cluster's pieces (Run, SetupLAN, Process), a LAN bridge in a "lan"
// namespace, one namespace per server (n1 10.212.0.11, n2 .12, n3 .13) and a client namespace
// (10.212.0.2). It runs the built skiff binary's `cluster init --dir DIR --server nI=ADDR ...
// --store-dir jetstream --resolver-dir jwt` and starts `nats-server -c nats.conf` in each
// servers/NAME directory: the relative store and resolver directories make each server's its
// own, on one machine. Start returns once every running server's https monitoring endpoint
// (/jsz) names the same running meta leader; Restart waits for that again.
//
// The test process stays in the host's namespace: Connect dials from the client namespace
// (nats.SetCustomDialer), trusts the cluster CA and uses a creds file with the inbox prefix of
// its identity, as every Skiff client does. Exec and Skiff run programs in the client namespace.
//
// # Cleanup
//
// t.Cleanup closes the connections, stops the servers (SIGTERM, then SIGKILL) and sweeps the
// run: recorded processes, namespaces, the directory. Servers die with the test process
// (Pdeathsig), and the next run's stale sweep removes what a killed test process left.
//
// Tests that need root fail without it.
package natscluster
