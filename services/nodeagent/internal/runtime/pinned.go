package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Sandbox kinds: what holds a pod's shared namespaces.
const (
	// SandboxPause runs a pause container whose process holds the namespaces.
	SandboxPause = "pause"
	// SandboxPinned makes the namespaces without a process and pins them as bind-mounted
	// files, as CRI-O's drop_infra_ctr does with pinns: no container, task, shim start or OCI
	// runtime run for the sandbox. The pin directory must be a shared mount made before
	// containerd started when containerd runs in a mount namespace of its own (SharePinDir).
	SandboxPinned = "pinned"
)

// pinnedNamespaces are the namespaces a pod's containers share, pinned by name.
var pinnedNamespaces = []struct {
	name string
	flag int
}{{"net", unix.CLONE_NEWNET}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS}}

// podFile names a pinned sandbox's pod, for List and reconcile.
const podFile = "pod.json"

// SharePinDir makes dir a shared mount (a bind mount of itself, as `ip netns` does with
// /run/netns) unless it lies under one already. Call it before starting a containerd that runs
// in a mount namespace of its own as a slave of this one: the pins the runtime bind-mounts under
// dir later then propagate into containerd's namespace, where the OCI runtime opens them.
func SharePinDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("share pin dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("share pin dir: %w", err)
	}
	at, shared, err := enclosingMount(dir)
	if err != nil {
		return fmt.Errorf("share pin dir %s: %w", dir, err)
	}
	if shared {
		return nil
	}
	if at != dir {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("share pin dir %s: bind mount: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("share pin dir %s: make shared: %w", dir, err)
	}
	return nil
}

// enclosingMount returns the mount point of this mount namespace that holds dir (the longest
// that is dir or a parent of it; the topmost of those stacked there) and whether it is shared.
func enclosingMount(dir string) (at string, shared bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := unescapeMount(fields[4])
		if !(mp == "/" || mp == dir || strings.HasPrefix(dir, mp+"/")) || len(mp) < len(at) {
			continue
		}
		at, shared = mp, false
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			if strings.HasPrefix(opt, "shared:") {
				shared = true
			}
		}
	}
	return at, shared, sc.Err()
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func (r *Runtime) pinDir(podUID string) string { return filepath.Join(r.cfg.PinDir, podUID) }

type pinnedPod struct {
	Pod       PodRef    `json:"pod"`
	CreatedAt time.Time `json:"createdAt"`
}

// createPinned makes the pod's namespaces and pins them. A directory left of an earlier
// attempt is removed first; on failure nothing is left.
func (r *Runtime) createPinned(cfg PodSandboxConfig, hostname string) (Sandbox, error) {
	dir := r.pinDir(cfg.Pod.UID)
	if old, err := r.getPinned(cfg.Pod.UID); err == nil {
		if old.State == StateRunning {
			return Sandbox{}, fmt.Errorf("create sandbox of pod %s: %w", cfg.Pod, errdefs.ErrAlreadyExists)
		}
		r.log.Warn("removing pinned namespaces left half made to create the pod's again", "pod", cfg.Pod.String())
		if err := r.removePinned(cfg.Pod.UID); err != nil {
			return Sandbox{}, fmt.Errorf("create sandbox of pod %s: %w", cfg.Pod, err)
		}
	}
	sb := Sandbox{ID: SandboxID(cfg.Pod.UID), Pod: cfg.Pod, State: StateRunning, CreatedAt: time.Now(), NSDir: dir}
	err := func() error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		b, _ := json.Marshal(pinnedPod{Pod: cfg.Pod, CreatedAt: sb.CreatedAt})
		if err := os.WriteFile(filepath.Join(dir, podFile), b, 0o644); err != nil {
			return err
		}
		return pinNamespaces(dir, hostname)
	}()
	if err != nil {
		if rerr := r.removePinned(cfg.Pod.UID); rerr != nil {
			r.log.Error("clean up failed pinned sandbox", "pod", cfg.Pod.String(), "err", rerr)
		}
		return Sandbox{}, fmt.Errorf("pin namespaces of pod %s: %w", cfg.Pod, err)
	}
	return sb, nil
}

// pinNamespaces makes new net, IPC and UTS namespaces on one locked thread and bind-mounts them
// into dir, then puts the thread back into the namespaces it had. Going back matters more than
// it seems: the goroutine may run on the main thread, which Go never ends, and whose namespaces
// are what /proc/self/ns shows for the whole process (the pod network's "is this the node's own
// namespace" check reads it). A thread that cannot go back stays locked, so Go retires it rather
// than hand its namespaces to other goroutines.
func pinNamespaces(dir, hostname string) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		tid := unix.Gettid()
		self := func(name string) string { return fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), tid, name) }
		var orig []*os.File
		defer func() {
			for _, f := range orig {
				f.Close()
			}
		}()
		for _, ns := range pinnedNamespaces {
			f, err := os.Open(self(ns.name))
			if err != nil {
				goruntime.UnlockOSThread()
				errc <- err
				return
			}
			orig = append(orig, f)
		}
		err := func() error {
			flags := 0
			for _, ns := range pinnedNamespaces {
				flags |= ns.flag
			}
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set hostname: %w", err)
			}
			for _, ns := range pinnedNamespaces {
				pin := filepath.Join(dir, ns.name)
				f, err := os.OpenFile(pin, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
				if err != nil {
					return err
				}
				f.Close()
				if err := unix.Mount(self(ns.name), pin, "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("pin %s namespace: %w", ns.name, err)
				}
			}
			return nil
		}()
		back := true
		for i, ns := range pinnedNamespaces {
			if serr := unix.Setns(int(orig[i].Fd()), ns.flag); serr != nil {
				back = false
			}
		}
		if back {
			goruntime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// getPinned returns the pod's pinned sandbox: running when every namespace is pinned, exited
// when some are not (an agent killed while it made or removed them). errdefs.ErrNotFound when
// the pod has no pin directory.
func (r *Runtime) getPinned(podUID string) (Sandbox, error) {
	dir := r.pinDir(podUID)
	b, err := os.ReadFile(filepath.Join(dir, podFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return Sandbox{}, fmt.Errorf("pinned sandbox of pod uid %s: %w", podUID, errdefs.ErrNotFound)
		}
	} else if err != nil {
		return Sandbox{}, fmt.Errorf("pinned sandbox of pod uid %s: %w", podUID, err)
	}
	var p pinnedPod
	if len(b) > 0 {
		if err := json.Unmarshal(b, &p); err != nil {
			return Sandbox{}, fmt.Errorf("pinned sandbox of pod uid %s: %w", podUID, err)
		}
	}
	if p.Pod.UID == "" {
		// Left before its pod file was written: named so that RemoveSandbox accepts it.
		p.Pod = PodRef{UID: podUID, Name: podUID, Namespace: "unknown"}
	}
	sb := Sandbox{ID: SandboxID(podUID), Pod: p.Pod, State: StateRunning, CreatedAt: p.CreatedAt, NSDir: dir}
	for _, ns := range pinnedNamespaces {
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(dir, ns.name), &st); err != nil || st.Type != unix.NSFS_MAGIC {
			sb.State = StateExited
		}
	}
	return sb, nil
}

// removePinned unmounts the pod's pins, which frees its namespaces once no container is in
// them, and removes the directory. Nothing to remove is not an error.
func (r *Runtime) removePinned(podUID string) error {
	dir := r.pinDir(podUID)
	var errs []error
	for _, ns := range pinnedNamespaces {
		pin := filepath.Join(dir, ns.name)
		var st unix.Statfs_t
		if unix.Statfs(pin, &st) == nil && st.Type == unix.NSFS_MAGIC {
			if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unpin %s namespace: %w", ns.name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pinned namespaces: %w", err)
	}
	return nil
}

// listPinned returns the pinned sandboxes as List reports sandboxes.
func (r *Runtime) listPinned() ([]ContainerStatus, error) {
	entries, err := os.ReadDir(r.cfg.PinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pinned sandboxes: %w", err)
	}
	var out []ContainerStatus
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sb, err := r.getPinned(e.Name())
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ContainerStatus{ID: sb.ID, Kind: KindSandbox, Pod: sb.Pod, State: sb.State, CreatedAt: sb.CreatedAt})
	}
	return out, nil
}

// preparePins readies the pin directory and checks that containerd will see pins made in it:
// a containerd in a mount namespace of its own sees them only if the directory was a shared
// mount before that namespace was made, and crun, run by containerd's shim, must open them.
// It pins the agent's own network namespace under a name of its own as a probe, looks for it
// through /proc/<containerd's pid>/root, and removes it. An error says why pins cannot work.
func (r *Runtime) preparePins() error {
	if err := SharePinDir(r.cfg.PinDir); err != nil {
		return err
	}
	pid, err := socketPeerPID(r.cfg.Address)
	if err != nil {
		return fmt.Errorf("find containerd's process to check that it sees pinned namespaces: %w", err)
	}
	if same, err := sameMountNamespace(pid); err != nil || same {
		return err
	}
	dir, err := filepath.Abs(r.cfg.PinDir)
	if err != nil {
		return err
	}
	probe := filepath.Join(dir, fmt.Sprintf(".probe-%d-%d", os.Getpid(), time.Now().UnixNano()))
	f, err := os.OpenFile(probe, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("pin probe: %w", err)
	}
	f.Close()
	defer os.Remove(probe)
	if err := unix.Mount("/proc/self/ns/net", probe, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin probe: %w", err)
	}
	defer unix.Unmount(probe, unix.MNT_DETACH)
	var st unix.Statfs_t
	if err := unix.Statfs(fmt.Sprintf("/proc/%d/root%s", pid, probe), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("containerd (pid %d) runs in a mount namespace that does not see mounts made under %s "+
			"(start containerd after the directory is a shared mount, or use pause sandboxes): %w", pid, dir, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// socketPeerPID is the PID of the process listening on the unix socket at address, as the
// kernel recorded it (SO_PEERCRED), in this process's PID namespace.
func socketPeerPID(address string) (int, error) {
	conn, err := net.DialTimeout("unix", strings.TrimPrefix(address, "unix://"), 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("SO_PEERCRED of %s: %w", address, serr)
	}
	if cred.Pid <= 0 {
		return 0, fmt.Errorf("the process behind %s is not in this PID namespace", address)
	}
	return int(cred.Pid), nil
}

// sameMountNamespace says whether process pid shares this process's mount namespace.
func sameMountNamespace(pid int) (bool, error) {
	var self, other unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &self); err != nil {
		return false, err
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", pid), &other); err != nil {
		return false, fmt.Errorf("mount namespace of containerd (pid %d): %w", pid, err)
	}
	return self.Dev == other.Dev && self.Ino == other.Ino, nil
}
