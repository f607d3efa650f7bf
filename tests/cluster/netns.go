package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Network layout of one cluster. Every name is prefixed with the cluster's run ID, so clusters of
// concurrent test runs (or a stale one of a crashed run) never collide; the address ranges live
// inside the cluster's own namespaces, so they repeat from cluster to cluster without clashing.
const (
	// LANPrefix is the "machines' network": the bridge in the lan namespace.
	LANPrefix = "10.211.0.0/24"
	// ControlPlaneAddress is the control plane namespace's address; NATS listens there.
	ControlPlaneAddress = "10.211.0.1"
	// NATSPort is where NATS listens on ControlPlaneAddress.
	NATSPort   = 4222
	bridgeName = "br0"
)

// NodeAddress is the address of node i (1-based): 10.211.0.1i, clear of the control plane's .1.
func NodeAddress(i int) string { return fmt.Sprintf("10.211.0.%d", 10+i) }

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// ip runs one iproute2 command.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// member is one machine on the cluster's LAN: a network namespace with one address.
type member struct {
	netns   string // namespace name
	veth    string // its port's name on the bridge (in the lan namespace)
	address string
}

// setupLAN creates the lan namespace with its bridge, and one namespace per member wired to it
// by a veth pair. Both ends of every veth are created in the lan namespace and one is moved into
// the member's at once, so nothing ever appears in the host's root namespace.
func setupLAN(lan string, members []member) error {
	cmds := [][]string{
		{"netns", "add", lan},
		{"-n", lan, "link", "set", "lo", "up"},
		{"-n", lan, "link", "add", bridgeName, "type", "bridge"},
		{"-n", lan, "link", "set", bridgeName, "up"},
	}
	for _, m := range members {
		cmds = append(cmds,
			[]string{"netns", "add", m.netns},
			[]string{"-n", m.netns, "link", "set", "lo", "up"},
			[]string{"-n", lan, "link", "add", m.veth, "type", "veth", "peer", "name", "eth0", "netns", m.netns},
			[]string{"-n", lan, "link", "set", m.veth, "master", bridgeName, "up"},
			[]string{"-n", m.netns, "addr", "add", m.address + "/24", "dev", "eth0"},
			[]string{"-n", m.netns, "link", "set", "eth0", "up"},
		)
	}
	for _, c := range cmds {
		if err := ip(c...); err != nil {
			return err
		}
	}
	return nil
}

// deleteNetns removes a named network namespace. The namespace itself (and every interface,
// route and nftables table in it) is freed by the kernel once no process is left inside.
func deleteNetns(name string) error {
	if _, err := os.Stat(netnsPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return ip("netns", "delete", name)
}

// netnsDialer dials from inside a network namespace: the socket is made on an OS thread that has
// switched into it, and keeps belonging to that namespace afterwards, whatever thread uses it.
// It lets the test process talk to NATS in the control plane namespace while the process itself
// stays in the host's namespace.
type netnsDialer struct {
	path    string
	timeout time.Duration
}

// Dial implements nats.CustomDialer.
func (d netnsDialer) Dial(network, address string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		// This thread never returns to the pool in the wrong namespace: if switching back
		// fails, the goroutine exits still locked and the runtime ends the thread.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open(d.path)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("enter %s: %w", d.path, err)}
			return
		}
		conn, err := net.DialTimeout(network, address, d.timeout)
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			if conn != nil {
				conn.Close()
			}
			res <- result{err: fmt.Errorf("return to the host namespace: %w", serr)}
			return
		}
		runtime.UnlockOSThread()
		res <- result{conn, err}
	}()
	r := <-res
	return r.conn, r.err
}

// ListenControlPlane listens on address in the control plane's network namespace while the test
// process stays in the host's: for a server the cluster's processes reach (at
// ControlPlaneAddress), such as a test's trace receiver.
func (c *Cluster) ListenControlPlane(network, address string) (net.Listener, error) {
	return inNetns(netnsPath(c.ControlPlaneNetns), func() (net.Listener, error) { return net.Listen(network, address) })
}

// inNetns runs fn on a thread in the network namespace at path; a socket fn makes stays there.
func inNetns[T any](path string, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	res := make(chan result, 1)
	go func() {
		var zero T
		// As netnsDialer.Dial: a thread that cannot return to the host's namespace is ended.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{zero, err}
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{zero, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{zero, fmt.Errorf("enter %s: %w", path, err)}
			return
		}
		v, err := fn()
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			res <- result{zero, fmt.Errorf("return to the host namespace: %w", serr)}
			return
		}
		runtime.UnlockOSThread()
		res <- result{v, err}
	}()
	r := <-res
	return r.v, r.err
}
