package runtime_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	ctrd "skiff.dev/services/nodeagent/containerd"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// newRuntime is a runtime on e's containerd with the given OCI runtime choice and sandbox kind.
func (e *env) newRuntime(t *testing.T, oci, sandbox string) (*runtime.Runtime, error) {
	t.Helper()
	cfg := e.ctd.RuntimeConfig()
	cfg.OCIRuntime = oci
	cfg.Sandbox = sandbox
	r, err := runtime.New(ctxT(t, 30*time.Second), cfg)
	if err == nil {
		t.Cleanup(func() { r.Close() })
	}
	return r, err
}

// binaryOf is the OCI runtime containerd runs the container with.
func (e *env) binaryOf(t *testing.T, id string) string {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	c, err := e.ctd.Client(t).LoadContainer(namespacesCtx(ctx, e.rt), id)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(namespacesCtx(ctx, e.rt))
	if err != nil {
		t.Fatal(err)
	}
	if info.Runtime.Options == nil {
		return runtime.OCIRuntimeRunc // the shim's default
	}
	v, err := typeurl.UnmarshalAny(info.Runtime.Options)
	if err != nil {
		t.Fatal(err)
	}
	opts, ok := v.(*runcoptions.Options)
	if !ok {
		t.Fatalf("container %s has runtime options %T", id, v)
	}
	if opts.BinaryName == "" {
		return runtime.OCIRuntimeRunc
	}
	return opts.BinaryName
}

// Both OCI runtimes run pods, with either kind of sandbox, the default is crun (containerd runs
// as skiff up runs it), and a pod keeps working when the agent comes back with the other choice.
func TestOCIRuntimes(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		choice, sandbox, want string
	}{
		{"", "", runtime.OCIRuntimeCrun},
		{runtime.OCIRuntimeCrun, runtime.SandboxPause, runtime.OCIRuntimeCrun},
		{runtime.OCIRuntimeRunc, runtime.SandboxPause, runtime.OCIRuntimeRunc},
		{runtime.OCIRuntimeRunc, runtime.SandboxPinned, runtime.OCIRuntimeRunc},
	} {
		t.Run("choice="+tt.choice+",sandbox="+tt.sandbox, func(t *testing.T) {
			rt, err := e.newRuntime(t, tt.choice, tt.sandbox)
			if err != nil {
				t.Fatal(err)
			}
			if got := rt.OCIRuntime(); got != tt.want {
				t.Fatalf("OCIRuntime() = %s, want %s", got, tt.want)
			}
			pe := &env{ctd: e.ctd, rt: rt}
			pod := newPod(t, "oci")
			sb, id := pe.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "exit3", Image: runtimetest.TestboxImage,
				Args: []string{"exit", "3"}, MemoryLimitBytes: 64 << 20})
			st := pe.waitState(t, id, runtime.StateExited, 10*time.Second)
			if st.ExitCode != 3 || st.OOMKilled {
				t.Errorf("status = exit %d oomKilled %v, want exit 3", st.ExitCode, st.OOMKilled)
			}
			runs := []string{id}
			if sb.NSDir == "" {
				runs = append(runs, sb.ID) // a pause container
			}
			for _, c := range runs {
				if got := pe.binaryOf(t, c); got != tt.want {
					t.Errorf("container %s runs with %s, want %s", c, got, tt.want)
				}
			}

			// The agent restarts with the other runtime: a pause sandbox keeps its own, and a
			// restarted container in the sandbox runs with the new one.
			other := runtime.OCIRuntimeRunc
			if tt.want == other {
				other = runtime.OCIRuntimeCrun
			}
			rt2, err := e.newRuntime(t, other, tt.sandbox)
			if err != nil {
				t.Fatal(err)
			}
			pe2 := &env{ctd: e.ctd, rt: rt2}
			if err := rt2.RemoveContainer(ctxT(t, 10*time.Second), id); err != nil {
				t.Fatal(err)
			}
			_, id = pe2.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "exit3", Image: runtimetest.TestboxImage,
				Args: []string{"exit", "4"}, RestartCount: 1})
			if st := pe2.waitState(t, id, runtime.StateExited, 10*time.Second); st.ExitCode != 4 {
				t.Errorf("restarted container: exit %d, want 4", st.ExitCode)
			}
			if got := pe2.binaryOf(t, id); got != other {
				t.Errorf("restarted container runs with %s, want %s", got, other)
			}
			if err := rt2.RemoveSandbox(ctxT(t, 30*time.Second), pod); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := e.newRuntime(t, "youki", ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("runtime.New with OCI runtime youki: %v, want InvalidArgument", err)
	}
}

// Under a containerd that sees the host's hybrid cgroups, crun cannot work: chosen, the
// runtime refuses to start; by default it falls back to runc.
func TestOCIRuntimeUnderHybridCgroups(t *testing.T) {
	runtimetest.RequireRoot(t)
	ctd := runtimetest.StartContainerd(t, runtimetest.InHostMountNamespace())
	e := &env{ctd: ctd}
	hybrid := ctrd.HybridCgroups()
	rt, err := e.newRuntime(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	want := runtime.OCIRuntimeCrun
	if hybrid {
		want = runtime.OCIRuntimeRunc
	}
	if got := rt.OCIRuntime(); got != want {
		t.Errorf("hybrid cgroups %v: default OCI runtime %s, want %s", hybrid, got, want)
	}
	_, err = e.newRuntime(t, runtime.OCIRuntimeCrun, "")
	if hybrid != (err != nil) {
		t.Errorf("hybrid cgroups %v: runtime.New with crun: %v", hybrid, err)
	}
	t.Logf("runtime.New with crun: %v", err)
	if err != nil && !strings.Contains(err.Error(), "hybrid cgroups") {
		t.Errorf("the error does not say why crun fails: %v", err)
	}
}

func namespacesCtx(ctx context.Context, rt *runtime.Runtime) context.Context {
	return namespaces.WithNamespace(ctx, rt.Namespace())
}

// With crun, an app container gets the seccomp filter crun compiled for the probe at start
// (crun's run.oci.seccomp_bpf_data) rather than compiling its profile again, and the filter
// it runs under is byte for byte the one crun compiles for that profile itself.
func TestCrunSeccompCompiledOnce(t *testing.T) {
	e := newEnv(t)
	rt, err := e.newRuntime(t, runtime.OCIRuntimeCrun, "")
	if err != nil {
		t.Fatal(err)
	}
	pe := &env{ctd: e.ctd, rt: rt}
	start := func(name string) (pid int, annotated bool) {
		t.Helper()
		pod := newPod(t, name)
		_, id := pe.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "app", Image: runtimetest.TestboxImage, Args: []string{"sleep"}})
		st := pe.waitState(t, id, runtime.StateRunning, 10*time.Second)
		ctx := namespacesCtx(ctxT(t, 10*time.Second), rt)
		c, err := e.ctd.Client(t).LoadContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, annotated = spec.Annotations["run.oci.seccomp_bpf_data"]
		if err := runtime.WaitSeccomp(ctx, int(st.PID), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if spec.Linux == nil || spec.Linux.Seccomp == nil {
			t.Errorf("%s: the spec has no seccomp profile", name)
		}
		return int(st.PID), annotated
	}
	cached, annotated := start("cached")
	if !annotated {
		t.Fatal("an app container under crun is not handed the compiled filter")
	}
	runtime.ForgetCompiledSeccomp(rt)
	compiled, annotated := start("compiled")
	if annotated {
		t.Fatal("the compiled filter is handed over after the runtime forgot it")
	}
	want, err := runtime.SeccompFilter(compiled)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runtime.SeccompFilter(cached)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 8*50 {
		t.Fatalf("crun's own filter has %d bytes: not containerd's default profile", len(want))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the container runs under a filter of %d bytes that differs from the %d bytes crun compiles for its profile", len(got), len(want))
	}
}

// Agents of several nodes on one host share the cgroup parent and may start at the same moment
// (the end-to-end harness starts two): their probes must not collide (a probe's removal kills
// what is in its cgroup), or one of them falls back to runc.
func TestConcurrentProbesPickCrun(t *testing.T) {
	runtimetest.RequireRoot(t)
	ctds := []*runtimetest.Containerd{runtimetest.StartContainerd(t), runtimetest.StartContainerd(t), runtimetest.StartContainerd(t)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, ctd := range ctds {
		cfg := ctd.RuntimeConfig()
		cfg.CgroupParent = ctds[0].CgroupParent // one parent, as for agents with the default
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 8 {
				r, err := runtime.New(ctxT(t, 30*time.Second), cfg)
				got := ""
				if err == nil {
					got = r.OCIRuntime()
					r.Close()
				}
				if err != nil || got != runtime.OCIRuntimeCrun {
					mu.Lock()
					t.Errorf("runtime %d, round %d: OCI runtime %q, %v; want crun", i, round, got, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
}
