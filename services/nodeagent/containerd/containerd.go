// Package containerd runs a private containerd daemon for a node agent that finds none, as
// `skiff up` does on a machine without a running containerd: its own root, state, socket and
// config under one directory, stopped when the agent stops. Containers keep running under their
// shims across a restart of this daemon, as with any containerd. On a host with hybrid cgroups
// the daemon runs in a mount namespace that hides the cgroup2 mount, so that crun works (see
// Argv).
package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"skiff.dev/services/nodeagent/internal/runtime"
)

// Answers reports whether a containerd serves the socket at address.
func Answers(address string) bool {
	c, err := net.DialTimeout("unix", address, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Daemon is a containerd process this program started.
type Daemon struct {
	// Address is the daemon's gRPC socket.
	Address string
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *slog.Logger
}

// Start starts containerd with everything under dir and waits until it serves (at most 30 s).
// Each of share is made a shared mount first (runtime.SharePinDir): mounts made under it later,
// such as pinned pod namespaces, then reach the daemon's mount namespace (see Argv).
func Start(ctx context.Context, dir string, log *slog.Logger, share ...string) (*Daemon, error) {
	if _, err := exec.LookPath("containerd"); err != nil {
		return nil, fmt.Errorf("containerd is not installed (Debian: apt-get install containerd runc): %w", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("containerd dir: %w", err)
	}
	// Unix socket paths are limited to 107 bytes: a deep data dir gets its socket under /run.
	address := filepath.Join(dir, "containerd.sock")
	if len(address) > 100 {
		sum := sha256.Sum256([]byte(dir))
		run := filepath.Join("/run/skiff", hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(run, 0o711); err != nil {
			return nil, fmt.Errorf("containerd socket dir: %w", err)
		}
		address = filepath.Join(run, "containerd.sock")
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
# Skiff's agent drives containerd through its Go client: no CRI plugin (it would want its own CNI
# config and pause image).
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), address)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("containerd config: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("containerd log: %w", err)
	}
	for _, d := range share {
		if err := runtime.SharePinDir(d); err != nil {
			logFile.Close()
			return nil, err
		}
	}
	argv := Argv("--config", cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
	// Its own process group: a terminal's Ctrl-C goes to us, and we stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	logFile.Close()
	d := &Daemon{Address: address, cmd: cmd, exited: make(chan struct{}), log: log}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	deadline := time.After(30 * time.Second)
	for !Answers(address) {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("containerd exited at start; see %s", filepath.Join(dir, "containerd.log"))
		case <-deadline:
			d.Stop()
			return nil, fmt.Errorf("containerd did not serve %s within 30s; see %s", address, filepath.Join(dir, "containerd.log"))
		case <-ctx.Done():
			d.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	log.Info("started containerd", "pid", cmd.Process.Pid, "address", address)
	return d, nil
}

// Stop stops the daemon (SIGTERM, then SIGKILL after 10 s) and waits for it. Containers keep
// running under their shims.
func (d *Daemon) Stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}
