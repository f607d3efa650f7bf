package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/plugin"
	"github.com/containerd/errdefs"
)

// Config configures a Runtime. The zero value works on a node with the
// system containerd.
type Config struct {
	// Address is containerd's socket; default /run/containerd/containerd.sock.
	Address string
	// Namespace is the containerd namespace; default "skiff".
	Namespace string
	// Snapshotter unpacks images and holds container root filesystems.
	// Default: "overlayfs" when containerd loaded it, else "native" (which
	// copies every layer but works on any filesystem).
	Snapshotter string
	// StateDir holds the runtime's own files (the sandbox root filesystem);
	// default /var/lib/skiff/runtime.
	StateDir string
	// LogDir holds container logs; default /var/log/skiff/pods.
	LogDir string
	// LogMaxBytes is the size at which RotateLogs rotates a log file;
	// default 10 MiB.
	LogMaxBytes int64
	// LogMaxFiles is how many files one container run keeps, the live one
	// included; default 3.
	LogMaxFiles int
	// CgroupParent is the cgroup under which every container gets its own,
	// named after its ID; default "/skiff".
	CgroupParent string
	// RuncRoot is where runc (or crun) keeps container state; default the
	// shim's (/run/containerd/runc). A second containerd on the node (tests, or
	// nodes simulated as network namespaces) must use its own: runc state
	// is keyed by namespace and container ID only.
	RuncRoot string
	// OCIRuntime is the program the runc shim runs containers with: OCIRuntimeCrun or
	// OCIRuntimeRunc. Empty: crun when it works under this containerd (New tries it
	// once), else runc. Containers keep the runtime they were created with.
	OCIRuntime string
	// SandboxSeccomp gives the pause process containerd's default seccomp
	// profile too, as before: the old way, to measure against (see
	// CreateSandbox).
	SandboxSeccomp bool
	// Sandbox is what holds a pod's namespaces: SandboxPinned or SandboxPause. Empty: pinned
	// when containerd sees the pins (New checks; see SharePinDir), else pause, with a warning.
	// Sandboxes keep the kind they were made with, so switching is safe with pods running.
	Sandbox string
	// PinDir holds pinned sandboxes' namespaces, a directory per pod; default StateDir/ns.
	// See SharePinDir.
	PinDir string
	// DialTimeout bounds the first connection to containerd; default 10s.
	DialTimeout time.Duration
	// Logger receives the runtime's logs; default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Address == "" {
		c.Address = "/run/containerd/containerd.sock"
	}
	if c.Namespace == "" {
		c.Namespace = "skiff"
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/skiff/runtime"
	}
	if c.PinDir == "" {
		c.PinDir = filepath.Join(c.StateDir, "ns")
	}
	if c.LogDir == "" {
		c.LogDir = "/var/log/skiff/pods"
	}
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = 10 << 20
	}
	if c.LogMaxFiles <= 0 {
		c.LogMaxFiles = 3
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "/skiff"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Runtime runs pods on one containerd. Create it with New; it is safe for
// concurrent use.
type Runtime struct {
	cfg         Config
	client      *containerd.Client
	log         *slog.Logger
	snapshotter string
	ociRuntime  string        // the binary the shim runs: runc or crun
	sandbox     string        // the kind of sandbox new pods get: SandboxPinned or SandboxPause
	seccomp     *seccompCache // app containers' filter compiled by crun; nil: none
	images      imageCache
	sandboxRoot string
	cgroups     cgroupReader
	closed      chan struct{} // closed by Close: ends Watch streams
	closeOnce   sync.Once
}

// New connects to containerd, picks the snapshotter and writes the sandbox
// root filesystem. It fails with an errdefs.ErrUnavailable error when
// containerd does not answer within cfg.DialTimeout.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg = cfg.withDefaults()
	client, err := containerd.New(cfg.Address,
		containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithTimeout(cfg.DialTimeout))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w: %w", cfg.Address, errdefs.ErrUnavailable, err)
	}
	r := &Runtime{
		cfg:         cfg,
		client:      client,
		log:         cfg.Logger,
		sandboxRoot: filepath.Join(cfg.StateDir, "sandbox-rootfs"),
		cgroups:     newCgroupReader(),
		closed:      make(chan struct{}),
	}
	if err := r.init(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return r, nil
}

func (r *Runtime) init(ctx context.Context) error {
	ctx = r.ns(ctx)
	if err := writeSandboxRootfs(r.sandboxRoot); err != nil {
		return err
	}
	switch r.cfg.Sandbox {
	case SandboxPause:
		r.sandbox = SandboxPause
	case SandboxPinned, "":
		err := r.preparePins()
		switch {
		case err == nil:
			r.sandbox = SandboxPinned
		case r.cfg.Sandbox == "":
			r.log.Warn("pods get pause containers: pinned namespaces would not reach containerd", "err", err)
			r.sandbox = SandboxPause
		default:
			return fmt.Errorf("sandbox %q: %w", SandboxPinned, err)
		}
	default:
		return fmt.Errorf("sandbox %q: want %q or %q: %w", r.cfg.Sandbox, SandboxPause, SandboxPinned, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(r.cfg.LogDir, 0o755); err != nil {
		return fmt.Errorf("create log dir: %w", err)
	}
	r.snapshotter = r.cfg.Snapshotter
	if r.snapshotter == "" {
		var err error
		if r.snapshotter, err = r.pickSnapshotter(ctx); err != nil {
			return err
		}
	}
	if err := r.pickOCIRuntime(ctx); err != nil {
		return err
	}
	r.log.Info("containerd runtime ready", "address", r.cfg.Address, "namespace", r.cfg.Namespace,
		"snapshotter", r.snapshotter, "ociRuntime", r.ociRuntime, "sandbox", r.sandbox)
	return nil
}

// pickSnapshotter prefers overlayfs. containerd's overlayfs plugin checks at
// start that the kernel and the filesystem under its root support overlay
// mounts, and reports an init error otherwise; native always works.
func (r *Runtime) pickSnapshotter(ctx context.Context) (string, error) {
	resp, err := r.client.IntrospectionService().Plugins(ctx, []string{`type=="io.containerd.snapshotter.v1"`})
	if err != nil {
		return "", fmt.Errorf("list containerd snapshotters: %w", err)
	}
	ok := map[string]bool{}
	for _, p := range resp.Plugins {
		ok[p.ID] = p.InitErr == nil
	}
	for _, name := range []string{"overlayfs", "native"} {
		if ok[name] {
			if name != "overlayfs" {
				r.log.Warn("overlayfs snapshotter unavailable, falling back", "snapshotter", name)
			}
			return name, nil
		}
	}
	return "", fmt.Errorf("containerd has neither the overlayfs nor the native snapshotter loaded: %w", errdefs.ErrFailedPrecondition)
}

// Snapshotter is the snapshotter the runtime unpacks images into.
func (r *Runtime) Snapshotter() string { return r.snapshotter }

// Namespace is the containerd namespace the runtime works in.
func (r *Runtime) Namespace() string { return r.cfg.Namespace }

// Close closes the connection to containerd and ends Watch streams.
// Containers keep running.
func (r *Runtime) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return r.client.Close()
}

// SandboxKind is the kind of sandbox new pods get: SandboxPinned or SandboxPause.
func (r *Runtime) SandboxKind() string { return r.sandbox }

// OCIRuntime is the program the runc shim runs new containers with: OCIRuntimeCrun or
// OCIRuntimeRunc.
func (r *Runtime) OCIRuntime() string { return r.ociRuntime }

// runcShim is containerd's runc shim, which runs crun as well (options.BinaryName).
const runcShim = plugin.RuntimeRuncV2

// withRuntime selects the runc shim with the runtime's OCI runtime and root.
func (r *Runtime) withRuntime() containerd.NewContainerOpts {
	return containerd.WithRuntime(runcShim, r.runtimeOptions(r.ociRuntime))
}

// runtimeOptions are the runc shim's options for binary. runc is the shim's default, so
// runc with the default root needs none (containers created before the choice existed
// carry none either).
func (r *Runtime) runtimeOptions(binary string) any {
	if binary == OCIRuntimeRunc && r.cfg.RuncRoot == "" {
		return nil
	}
	opts := &runcoptions.Options{Root: r.cfg.RuncRoot}
	if binary != OCIRuntimeRunc {
		opts.BinaryName = binary
	}
	return opts
}

func (r *Runtime) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

// validName rejects names that could escape the log directory or that no
// Kubernetes-style object could have.
func validName(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") || len(s) > 253 {
		return fmt.Errorf("%s %q: must be a non-empty name without '/': %w", what, s, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (p PodRef) check() error {
	for _, n := range []struct{ what, v string }{{"pod name", p.Name}, {"pod namespace", p.Namespace}, {"pod uid", p.UID}} {
		if err := validName(n.what, n.v); err != nil {
			return err
		}
	}
	return nil
}

// isGone reports whether err says the process or object was already gone
// (the shim answers "process already finished: not found" to a kill of an
// exited process), which stopping and removing treat as success.
func isGone(err error) bool {
	return errdefs.IsNotFound(err)
}
