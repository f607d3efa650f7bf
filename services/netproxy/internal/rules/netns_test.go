package rules

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// netNS is a network namespace that lives as long as a dedicated, locked OS thread. Everything
// that must happen inside it (opening sockets, listening, dialing) runs on that thread through
// Do. The thread never returns to the root namespace: when the test ends, its goroutine exits
// while still locked, so the Go runtime destroys the thread, and the namespace goes away with
// the last socket opened in it. Nothing a test does can therefore touch the host's namespace.
type netNS struct {
	name string
	tid  int
	path string // /proc/<pid>/task/<tid>/ns/net, for nsenter
	fns  chan func()
	done chan struct{}
}

// requireRoot skips a real-kernel test when the test cannot create namespaces and nftables
// tables; it is the only reason a real-kernel test may skip.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("real-kernel test: needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces")
	}
}

// newNetNS creates a network namespace with lo up and registers its teardown with tb.
func newNetNS(tb testing.TB, name string) *netNS {
	tb.Helper()
	requireRoot(tb)
	ns := &netNS{name: name, fns: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(ns.done)
		runtime.LockOSThread() // never unlocked: see the type's comment
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		ns.tid = unix.Gettid()
		ns.path = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), ns.tid)
		ready <- nil
		for fn := range ns.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		tb.Fatalf("netns %s: %v", name, err)
	}
	tb.Cleanup(func() {
		close(ns.fns)
		<-ns.done
	})
	ns.mustRun(tb, "ip", "link", "set", "lo", "up")
	return ns
}

// Do runs fn on the namespace's thread and returns its error. fn must not call t.Fatal (it runs
// on another goroutine); it returns an error instead.
func (ns *netNS) Do(fn func() error) error {
	errc := make(chan error, 1)
	ns.fns <- func() { errc <- fn() }
	return <-errc
}

// run runs a command inside the namespace (nsenter does not touch the caller's namespace).
func (ns *netNS) run(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + ns.path}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("netns %s: %s: %w: %s", ns.name, strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func (ns *netNS) mustRun(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := ns.run(args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// newSyncerIn creates a Syncer inside ns and closes it when the test ends.
func newSyncerIn(tb testing.TB, ns *netNS, cfg Config) *Syncer {
	tb.Helper()
	var s *Syncer
	if err := ns.Do(func() (err error) {
		s, err = NewSyncer(cfg)
		return err
	}); err != nil {
		tb.Fatalf("NewSyncer in netns %s: %v", ns.name, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
