package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// topology is how a run's control plane is laid out in processes. Everything else (the nodes,
// the watch, the apply, the report) is the same for each.
type topology interface {
	// binaries are the programs of -bin it runs, besides skiff-nodeagent.
	binaries() []string
	// measured names the processes whose peak RSS the table reports, one column each, in the
	// order start returns them in controlPlane.measured.
	measured() []string
	// start starts the control plane's processes with c.start (so they are stopped with the
	// run's), up to the point where the scheduler is starting: the run then waits until
	// queries are answered.
	start(ctx context.Context, c *cluster, o options) (controlPlane, error)
}

// topologies are the values of -topology.
var topologies = map[string]topology{"up": upTopology{}, "split": splitTopology{}}

// controlPlane is a started control plane: the client configs to reach it and the processes
// whose peak RSS counts.
type controlPlane struct {
	// admin may do everything (the nodes use it too); user is the CLI user's.
	admin, user string
	measured    []*proc
}

// The names of the processes, as the log files, progress lines and the table show them.
const (
	nameUp         = "skiff up"
	nameNATS       = "nats-server"
	nameScheduler  = "skiff-scheduler"
	nameNodeAgent  = "skiff-nodeagent"
	schedulerID    = "applybench"
	benchUser      = "bench"
	natsServerName = "n1"
)

// upTopology is `skiff up --control-plane-only`: embedded NATS (plain text on loopback, writes
// synced at the server's interval) and the scheduler in one process, so its peak RSS is theirs
// together.
type upTopology struct{}

func (upTopology) binaries() []string { return []string{"skiff"} }
func (upTopology) measured() []string { return []string{nameUp} }

func (upTopology) start(ctx context.Context, c *cluster, o options) (controlPlane, error) {
	addr, err := freeAddr()
	if err != nil {
		return controlPlane{}, err
	}
	up, err := c.start(nameUp, "up", "", c.skiff(), "up", "--control-plane-only", "--data-dir", c.dir,
		"--listen", addr, "--client-config", "", "--log-level", "warn")
	if err != nil {
		return controlPlane{}, err
	}
	c.status("skiff up pid %d on %s, data %s, log %s", up.pid(), addr, c.dir, up.logPath)
	config := filepath.Join(c.dir, "auth", "config")
	return controlPlane{admin: filepath.Join(config, "admin.yaml"), user: filepath.Join(config, "user.yaml"), measured: []*proc{up}}, nil
}

// splitTopology is the control plane as on real machines, each part its own process: a stock
// nats-server configured by `skiff cluster init` for one server (TLS, the operator's JWTs,
// sync_interval: always, so every write is on disk before it is acknowledged, which skiff up
// does not do), the log made by `skiff cluster bootstrap --replicas 1`, and skiff-scheduler with
// the scheduler's creds. The scheduler's and the server's peak RSS are apart.
type splitTopology struct{}

func (splitTopology) binaries() []string { return []string{"skiff", nameNATS, nameScheduler} }
func (splitTopology) measured() []string { return []string{nameScheduler, nameNATS} }

func (splitTopology) start(ctx context.Context, c *cluster, o options) (controlPlane, error) {
	addr, err := freeAddr()
	if err != nil {
		return controlPlane{}, err
	}
	monitor, err := freePort()
	if err != nil {
		return controlPlane{}, err
	}
	dir := filepath.Join(c.dir, "cluster")
	// Relative store and resolver directories: nats-server resolves them, as its TLS files,
	// from its working directory, servers/n1, so everything stays below the run's directory.
	if out, err := run(ctx, time.Minute, c.skiff(), "cluster", "init", "--dir", dir, "--server", natsServerName+"="+addr,
		"--monitor-port", strconv.Itoa(monitor), "--store-dir", "jetstream", "--resolver-dir", "jwt"); err != nil {
		return controlPlane{}, fmt.Errorf("skiff cluster init: %w: %s", err, out)
	}
	cp := controlPlane{admin: filepath.Join(dir, "config", "admin.yaml"), user: filepath.Join(dir, "config", "user-"+benchUser+".yaml")}
	serverDir := filepath.Join(dir, "servers", natsServerName)
	nats, err := c.start(nameNATS, "nats", serverDir, filepath.Join(c.bin, nameNATS), "-c", "nats.conf")
	if err != nil {
		return cp, err
	}
	c.status("nats-server pid %d on %s, dir %s, log %s", nats.pid(), addr, serverDir, nats.logPath)

	// The first bootstrap that reaches the server makes the log; one that failed half way is
	// finished by the next, as bootstrap brings what exists to the settings.
	var bootstrapped string
	err = poll(ctx, "skiff cluster bootstrap", o.setup, 100*time.Millisecond, func() (string, error) {
		if err := c.running(); err != nil {
			return "", err
		}
		out, err := run(ctx, 30*time.Second, c.skiff(), "--config", cp.admin, "cluster", "bootstrap", "--replicas", "1")
		if err != nil {
			return firstLine(fmt.Errorf("%w: %s", err, out)), errNotYet
		}
		bootstrapped = out
		return "", nil
	})
	if err != nil {
		return cp, err
	}
	c.status("bootstrapped: %s", oneLine(bootstrapped))
	if out, err := run(ctx, time.Minute, c.skiff(), "user", "creds", benchUser, "--dir", dir); err != nil {
		return cp, fmt.Errorf("skiff user creds: %w: %s", err, out)
	}

	sched, err := c.start(nameScheduler, "scheduler", "", filepath.Join(c.bin, nameScheduler),
		"--config", filepath.Join(dir, "config", "scheduler.yaml"), "--id", schedulerID, "--log-level", "warn")
	if err != nil {
		return cp, err
	}
	c.status("skiff-scheduler pid %d, log %s", sched.pid(), sched.logPath)
	cp.measured = []*proc{sched, nats}
	return cp, nil
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}
