package runtime_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/events/eventstest"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// env is one test's containerd and runtime, with both test images imported.
type env struct {
	ctd *runtimetest.Containerd
	rt  *runtime.Runtime
}

// newEnv starts a containerd and a runtime on it with the default config, changed by opts.
func newEnv(t *testing.T, opts ...func(*runtime.Config)) *env {
	t.Helper()
	runtimetest.RequireRoot(t)
	imgs := runtimetest.Images(t)
	ctd := runtimetest.StartContainerd(t)
	cfg := ctd.RuntimeConfig()
	for _, o := range opts {
		o(&cfg)
	}
	rt, err := runtime.New(ctxT(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatalf("runtime.New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	for _, p := range []string{imgs.Echo, imgs.Testbox} {
		importImage(t, rt, p)
	}
	return &env{ctd: ctd, rt: rt}
}

// sandboxKind sets the kind of sandbox a runtime makes.
func sandboxKind(kind string) func(*runtime.Config) {
	return func(c *runtime.Config) { c.Sandbox = kind }
}

func importImage(t *testing.T, rt *runtime.Runtime, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := rt.ImportImage(context.Background(), f)
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	return names
}

func newPod(t *testing.T, name string) runtime.PodRef {
	b := make([]byte, 8)
	rand.Read(b)
	return runtime.PodRef{UID: hex.EncodeToString(b), Name: name, Namespace: "default"}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// runPod creates a sandbox and one started container in it.
func (e *env) runPod(t *testing.T, cfg runtime.ContainerConfig) (runtime.Sandbox, string) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	sb, err := e.rt.GetSandbox(ctx, cfg.Pod.UID)
	if err != nil {
		sb, err = e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: cfg.Pod})
		if err != nil {
			t.Fatalf("CreateSandbox: %v", err)
		}
	}
	id, err := e.rt.CreateContainer(ctx, cfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Name, err)
	}
	if err := e.rt.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Name, err)
	}
	return sb, id
}

func (e *env) waitState(t *testing.T, id string, want runtime.State, timeout time.Duration) runtime.ContainerStatus {
	t.Helper()
	var st runtime.ContainerStatus
	eventstest.EventuallyErr(t, timeout, fmt.Sprintf("container %s %s", id, want), func() error {
		var err error
		if st, err = e.rt.ContainerStatus(context.Background(), id); err == nil && st.State != want {
			err = fmt.Errorf("state %s", st.State)
		}
		return err
	})
	return st
}

func waitLog(t *testing.T, path, want string, timeout time.Duration) string {
	t.Helper()
	var data []byte
	eventstest.EventuallyErr(t, timeout, fmt.Sprintf("log %s contains %q", path, want), func() error {
		if data, _ = os.ReadFile(path); !strings.Contains(string(data), want) {
			return fmt.Errorf("log: %s", data)
		}
		return nil
	})
	return string(data)
}

// inNetNS runs fn on an OS thread that has joined the network namespace at
// path. Sockets fn opens stay in that namespace after it returns.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// No UnlockOSThread: if restoring the namespace failed, the thread
		// must die with the goroutine rather than serve others.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("restore netns: %w", err)
			return
		}
		goruntime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// hostnameOf reads the hostname of the UTS namespace of process pid.
func hostnameOf(pid uint32) (string, error) {
	errc := make(chan error, 1)
	var name string
	go func() {
		goruntime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/uts")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/uts", pid))
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWUTS); err != nil {
			errc <- err
			return
		}
		var u unix.Utsname
		err = unix.Uname(&u)
		name = unix.ByteSliceToString(u.Nodename[:])
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWUTS); rerr != nil {
			errc <- rerr
			return
		}
		goruntime.UnlockOSThread()
		errc <- err
	}()
	return name, <-errc
}

// loopbackUp brings up lo in the pod's namespace: without CNI a new
// network namespace has only lo, and it is down.
func loopbackUp(sb runtime.Sandbox) error {
	return inNetNS(sb.NetNSPath(), func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	})
}

// httpGetInPod asks addr (inside the pod's namespace) for path.
func httpGetInPod(sb runtime.Sandbox, addr, path string) (string, error) {
	var conn net.Conn
	if err := inNetNS(sb.NetNSPath(), func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func waitHTTP(t *testing.T, sb runtime.Sandbox, path, want string) {
	t.Helper()
	eventstest.EventuallyErr(t, 10*time.Second, "echo answers in the pod", func() error {
		body, err := httpGetInPod(sb, "127.0.0.1:8080", path)
		if err == nil && body != want {
			err = fmt.Errorf("answered %q", body)
		}
		return err
	})
}

// watchFor reads events until one matches.
func watchFor(t *testing.T, events <-chan runtime.Event, timeout time.Duration, match func(runtime.Event) bool) runtime.Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var seen []runtime.Event
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("event stream closed; saw %+v", seen)
			}
			if match(ev) {
				return ev
			}
			seen = append(seen, ev)
		case <-timer.C:
			t.Fatalf("no matching event within %v; saw %+v", timeout, seen)
		}
	}
}
