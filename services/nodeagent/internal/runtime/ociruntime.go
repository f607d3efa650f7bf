package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path"
	"strings"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/contrib/seccomp"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/errdefs"
)

// The OCI runtimes the runc shim can run: both take runc's command line.
const (
	// OCIRuntimeCrun is crun, a C program: about a quarter of runc's CPU per container
	// (docs/bench/e2e.md). It refuses hybrid cgroups (a cgroup2 mount beside the v1
	// hierarchies), which a containerd started by skiff up or the end-to-end harness hides
	// (see package skiff.dev/services/nodeagent/containerd).
	OCIRuntimeCrun = "crun"
	// OCIRuntimeRunc is runc, containerd's default, a Go program.
	OCIRuntimeRunc = "runc"
)

// probeID is the container the runtime creates once at start to see whether crun works
// under this containerd; it is removed at once.
const probeID = "skiff-oci-runtime-probe"

// probeCgroup is the probe's cgroup: of this start alone, since cgroups are the host's and
// agents of other nodes (tests, simulated machines) may probe at the same moment under the
// same parent.
func (r *Runtime) probeCgroup() string {
	b := make([]byte, 6)
	rand.Read(b)
	return path.Join(r.cfg.CgroupParent, probeID+"-"+hex.EncodeToString(b))
}

// pickOCIRuntime settles r.ociRuntime: the configured one, or, when none is, crun when it
// is installed and creates a container under this containerd, else runc. A configured crun
// that does not work is an error, so that a node never starts pods it cannot run.
func (r *Runtime) pickOCIRuntime(ctx context.Context) error {
	switch r.cfg.OCIRuntime {
	case OCIRuntimeRunc:
		r.ociRuntime = OCIRuntimeRunc
		return nil
	case OCIRuntimeCrun, "":
	default:
		return fmt.Errorf("OCI runtime %q: must be %s or %s: %w", r.cfg.OCIRuntime, OCIRuntimeCrun, OCIRuntimeRunc, errdefs.ErrInvalidArgument)
	}
	err := r.probe(ctx, OCIRuntimeCrun)
	if err == nil {
		r.ociRuntime = OCIRuntimeCrun
		return nil
	}
	if r.cfg.OCIRuntime == OCIRuntimeCrun {
		return err
	}
	r.log.Warn("using runc: crun does not work under this containerd", "err", err)
	r.ociRuntime = OCIRuntimeRunc
	return nil
}

// probe creates a container run by binary, shaped as an app container (the default
// capabilities and seccomp profile) around the sandbox's pause program, and removes it again.
// Creating it is where crun checks the cgroup layout. With crun it also starts it and keeps
// the seccomp filter crun compiled for it (see seccompCache); failing that is no error.
func (r *Runtime) probe(ctx context.Context, binary string) error {
	if _, err := exec.LookPath(binary); err != nil {
		// The shim looks it up in containerd's PATH, which is usually the same.
		return fmt.Errorf("%s is not installed (Debian: apt-get install %s): %w", binary, binary, errdefs.ErrFailedPrecondition)
	}
	if err := r.remove(ctx, probeID); err != nil {
		return fmt.Errorf("remove the %s probe left by an earlier start: %w", binary, err)
	}
	c, err := r.client.NewContainer(ctx, probeID,
		containerd.WithRuntime(runcShim, r.runtimeOptions(binary)),
		containerd.WithNewSpec(
			oci.WithRootFSPath(r.sandboxRoot),
			oci.WithRootFSReadonly(),
			oci.WithProcessArgs("/pause"),
			oci.WithNoNewPrivileges,
			seccomp.WithDefaultProfile(),
			withCgroupsPath(r.probeCgroup()),
		))
	if err != nil {
		return fmt.Errorf("probe %s: create container: %w", binary, err)
	}
	defer func() {
		if derr := c.Delete(context.WithoutCancel(ctx)); derr != nil && !errdefs.IsNotFound(derr) {
			r.log.Error("remove the OCI runtime probe", "binary", binary, "err", derr)
		}
	}()
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		if strings.Contains(err.Error(), "hybrid mode") {
			return fmt.Errorf("probe %s: create a container: %w (%s refuses hybrid cgroups: run containerd as skiff up does, in a mount namespace without %s, or choose runc)",
				binary, err, binary, "/sys/fs/cgroup/unified")
		}
		return fmt.Errorf("probe %s: create a container: %w", binary, err)
	}
	defer func() {
		if _, err := task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill); err != nil && !isGone(err) {
			r.log.Error("remove the OCI runtime probe's task", "binary", binary, "err", err)
		}
	}()
	if binary == OCIRuntimeCrun {
		if err := r.keepSeccomp(ctx, c, task); err != nil {
			r.log.Warn("crun will compile every app container's seccomp profile", "err", err)
		}
	}
	return nil
}

// keepSeccomp starts the probe and keeps the seccomp filter crun installed in it for its
// profile.
func (r *Runtime) keepSeccomp(ctx context.Context, c containerd.Container, task containerd.Task) error {
	spec, err := c.Spec(ctx)
	if err != nil {
		return fmt.Errorf("read the probe's spec: %w", err)
	}
	h, ok := profileHash(spec)
	if !ok {
		return fmt.Errorf("the probe has no seccomp profile")
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start the probe: %w", err)
	}
	// `crun start` returns once it has told the container's process to go on, which
	// installs the filter just before it executes the program: wait until it has.
	pid := int(task.Pid())
	if err := waitSeccomp(ctx, pid, 2*time.Second); err != nil {
		return err
	}
	bpf, err := seccompFilter(pid)
	if err != nil {
		return err
	}
	r.seccomp = &seccompCache{profile: h, bpf: encodeBPF(bpf)}
	r.log.Debug("kept the seccomp filter crun compiled for app containers", "instructions", len(bpf)/8)
	return nil
}
