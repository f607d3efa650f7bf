// Package podnettest runs tests of the pod network against the real kernel without touching
// the machine's own network: each test runs in a fresh network namespace (the "node"), and
// pods are network namespaces held by a sleeping process.
//
// Because CNI plugins are child processes, which inherit the namespace of the process and
// not of a goroutine's thread, a test cannot just switch one thread into the node's namespace.
// InNodeNetns instead re-executes the test binary, running only the calling test, in a new
// network namespace; when that process ends, its namespace and everything in it (bridge,
// veths, routes, nftables) go with it, even when the test failed or crashed.
package podnettest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// envNode names the test that a re-executed test binary runs inside its fresh namespace.
const envNode = "SKIFF_PODNETTEST_NODE"

// InNodeNetns reports whether the calling top-level test runs in its own fresh network
// namespace. When it does not, InNodeNetns runs it there in a child test process, fails t
// with the child's output when the child fails, and returns false: the caller then returns.
//
//	func TestX(t *testing.T) {
//		if !podnettest.InNodeNetns(t) {
//			return
//		}
//		...
//	}
//
// It skips t when not root.
func InNodeNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envNode) == t.Name() {
		upLoopback(t)
		return true
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Truncate(time.Second).String())
	}
	out, err := reexec(t, args)
	if err != nil {
		t.Fatalf("%s in a fresh network namespace: %v\n%s", t.Name(), err, out)
	}
	t.Logf("%s in a fresh network namespace:\n%s", t.Name(), out)
	return false
}

// BenchInNodeNetns is InNodeNetns for benchmarks. The child runs the benchmark with
// -test.benchtime=benchtime (such as "100x"), and its metrics are reported as b's, so each
// run of the parent (use -benchtime=1x and -count) is one fresh node.
func BenchInNodeNetns(b *testing.B, benchtime string) bool {
	b.Helper()
	if os.Getenv(envNode) == b.Name() {
		upLoopback(b)
		return true
	}
	out, err := reexec(b, []string{"-test.run=^$", "-test.bench=^" + regexp.QuoteMeta(b.Name()) + "$", "-test.benchtime=" + benchtime})
	if err != nil {
		b.Fatalf("%s in a fresh network namespace: %v\n%s", b.Name(), err, out)
	}
	reported := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// BenchmarkName-2   100   123 ns/op   4.5 p50-ms ...
		if len(f) < 4 || !strings.HasPrefix(f[0], b.Name()) {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			b.ReportMetric(v, f[i+1])
			reported = true
		}
	}
	if !reported {
		b.Fatalf("%s in a fresh network namespace printed no result:\n%s", b.Name(), out)
	}
	return false
}

func reexec(tb testing.TB, args []string) ([]byte, error) {
	tb.Helper()
	if strings.Contains(tb.Name(), "/") {
		tb.Fatalf("podnettest: call InNodeNetns from a top-level test, not from %s", tb.Name())
	}
	if os.Geteuid() != 0 {
		tb.Skip("needs root: the test makes network namespaces, a bridge, veths, routes and nftables rules")
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatalf("podnettest: find test binary: %v", err)
	}
	cmd := exec.Command(exe, append([]string{"-test.v=true", "-test.count=1"}, args...)...)
	cmd.Env = append(os.Environ(), envNode+"="+tb.Name())
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// Pdeathsig follows the thread that started the child: keep that thread alive while
	// the child runs, so the child dies exactly when this test process does.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	return out.Bytes(), err
}

func upLoopback(tb testing.TB) {
	tb.Helper()
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		tb.Fatalf("podnettest: bring up lo of the node: %v", err)
	}
}

// Netns is a network namespace held by a sleeping process: a pod's sandbox, or any other
// machine a test needs.
type Netns struct {
	// Path is /proc/<pid>/ns/net of the holding process; it disappears when the process ends.
	Path string
	cmd  *exec.Cmd
}

// NewNetns starts a process in a new network namespace, with its lo up. It is ended in
// tb.Cleanup.
func NewNetns(tb testing.TB) *Netns {
	tb.Helper()
	n := NewPodNetns(tb)
	if err := n.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		tb.Fatalf("podnettest: bring up lo: %v", err)
	}
	return n
}

// NewPodNetns starts a process in a new network namespace left as the kernel makes it, lo
// down, as a pod's sandbox has it before its network is set up. It is ended in tb.Cleanup.
func NewPodNetns(tb testing.TB) *Netns {
	tb.Helper()
	cmd := exec.Command("sleep", "infinity")
	runtime.LockOSThread() // see reexec about Pdeathsig
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		tb.Fatalf("podnettest: start a process in a new network namespace: %v", err)
	}
	n := &Netns{Path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), cmd: cmd}
	tb.Cleanup(n.Close)
	return n
}

// Close ends the holding process and waits for it, so that Path no longer exists when
// Close returns. The namespace itself is freed by the kernel shortly after.
func (n *Netns) Close() {
	if n.cmd.ProcessState != nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
}

// Do runs fn on an OS thread inside the namespace. Sockets made by fn stay in the namespace
// and can be used afterwards from anywhere; goroutines started by fn do not run in it.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(n.Path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the runtime ends this thread with the goroutine, rather than
			// reusing a thread in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("return to original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ServePeer listens on addr (such as "10.88.1.2:0") inside the namespace (or, with n nil, in
// the node's) and answers every connection with the address the connection came from, so a
// test sees both that it got through and whether it was masqueraded. It stops in tb.Cleanup.
func ServePeer(tb testing.TB, n *Netns, addr string) netip.AddrPort {
	tb.Helper()
	var l net.Listener
	listen := func() (err error) {
		l, err = net.Listen("tcp4", addr)
		return err
	}
	var err error
	if n == nil {
		err = listen()
	} else {
		err = n.Do(listen)
	}
	if err != nil {
		tb.Fatalf("podnettest: listen on %s: %v", addr, err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write([]byte(peer.String() + "\n"))
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// AskPeer connects from inside the namespace (or, with n nil, from the node) to a ServePeer
// listener at to and returns the source address the listener saw.
func AskPeer(ctx context.Context, n *Netns, to netip.AddrPort) (netip.Addr, error) {
	var c net.Conn
	dial := func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp4", to.String())
		return err
	}
	var err error
	if n == nil {
		err = dial()
	} else {
		err = n.Do(dial)
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dial %s: %w", to, err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read from %s: %w", to, err)
	}
	return netip.ParseAddr(strings.TrimSpace(line))
}
