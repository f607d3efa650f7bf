package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	"golang.org/x/sys/unix"
)

// crunSeccompBPF is crun's annotation for a seccomp filter compiled already: crun installs
// the base64-encoded classic BPF program it holds and ignores the spec's profile.
const crunSeccompBPF = "run.oci.seccomp_bpf_data"

// seccompCache is an app container's seccomp filter as crun compiled it, for the profile
// whose hash it holds.
//
// Compiling containerd's default profile with libseccomp is most of what creating a
// container costs crun (about 13 of 19 ms of CPU on a 2-core VM), and every app container of
// a node has the same profile: it depends only on the container's capabilities and the
// machine's architecture, and Skiff gives every app container the default capabilities. So
// the runtime lets crun compile it once, in the probe container at start, reads back the
// program crun installed (ptrace's PTRACE_SECCOMP_GET_FILTER), and hands it to crun for every
// app container whose profile hashes the same. The filter is byte for byte the one crun
// would compile; a container whose profile differs is compiled as before.
type seccompCache struct {
	profile [sha256.Size]byte // of the spec's linux.seccomp, as JSON
	bpf     string            // base64 of the program
}

// profileHash is the hash seccompCache keys on; ok is false when the spec has no profile.
func profileHash(s *oci.Spec) (h [sha256.Size]byte, ok bool) {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return h, false
	}
	b, err := json.Marshal(s.Linux.Seccomp)
	if err != nil {
		return h, false
	}
	return sha256.Sum256(b), true
}

// withCompiledSeccomp hands crun the compiled filter when the spec's profile is the one
// compiled. It must follow seccomp.WithDefaultProfile and everything that sets capabilities.
func (r *Runtime) withCompiledSeccomp() oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if r.seccomp == nil {
			return nil
		}
		if h, ok := profileHash(s); ok && h == r.seccomp.profile {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[crunSeccompBPF] = r.seccomp.bpf
		}
		return nil
	}
}

// seccompFilter reads the seccomp filter of process pid, which must have exactly one (as a
// container's init has, installed by its OCI runtime): the classic BPF program, as raw
// bytes. It attaches to the process with ptrace for the time it takes (the process is
// stopped meanwhile) and needs CAP_SYS_ADMIN.
func seccompFilter(pid int) ([]byte, error) {
	// ptrace's tracer is a thread: everything from seizing to detaching on this one.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		return nil, fmt.Errorf("ptrace seize %d: %w", pid, err)
	}
	defer unix.PtraceDetach(pid)
	if err := unix.PtraceInterrupt(pid); err != nil {
		return nil, fmt.Errorf("ptrace interrupt %d: %w", pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		return nil, fmt.Errorf("wait for %d to stop: %w", pid, err)
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("process %d did not stop (wait status %#x)", pid, ws)
	}
	get := func(index int, buf []unix.SockFilter) (int, error) {
		var p uintptr
		if len(buf) > 0 {
			p = uintptr(unsafe.Pointer(&buf[0]))
		}
		n, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), uintptr(index), p, 0, 0)
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
	n, err := get(0, nil)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter of %d: %w", pid, err)
	}
	if _, err := get(1, nil); !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("process %d has more than one seccomp filter (%v)", pid, err)
	}
	prog := make([]unix.SockFilter, n)
	if _, err := get(0, prog); err != nil {
		return nil, fmt.Errorf("seccomp filter of %d: %w", pid, err)
	}
	// struct sock_filter as the kernel and crun have it, in the machine's byte order.
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), n*int(unsafe.Sizeof(prog[0])))...), nil
}

func encodeBPF(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// waitSeccomp waits until process pid runs under a seccomp filter (the kernel's Seccomp
// field in /proc/<pid>/status is 2), checking every millisecond for at most timeout.
func waitSeccomp(ctx context.Context, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return fmt.Errorf("seccomp mode of %d: %w", pid, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Seccomp:"); ok && strings.TrimSpace(v) == "2" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d has no seccomp filter %v after it was started", pid, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
