package runtime_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// A pod's container answers in the pod's network and shares the sandbox's net, IPC and UTS
// namespaces, with either kind of sandbox.
func TestEchoAnswersInPodNetwork(t *testing.T) {
	for _, kind := range []string{runtime.SandboxPinned, runtime.SandboxPause} {
		t.Run("sandbox="+kind, func(t *testing.T) { echoAnswersInPodNetwork(t, kind) })
	}
}

func echoAnswersInPodNetwork(t *testing.T, kind string) {
	e := newEnv(t, sandboxKind(kind))
	ctx := ctxT(t, time.Minute)
	if ok, err := e.rt.HasImage(ctx, runtimetest.EchoImage); err != nil || !ok {
		t.Fatalf("HasImage(%s) = %v, %v after import", runtimetest.EchoImage, ok, err)
	}
	if ok, err := e.rt.HasImage(ctx, "skiff.dev/nothing:v1"); err != nil || ok {
		t.Fatalf("HasImage(missing) = %v, %v", ok, err)
	}
	pod := newPod(t, "echo-7f9c4")
	sb, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "echo", Image: runtimetest.EchoImage})
	if (kind == runtime.SandboxPause) != (sb.PID != 0) || (kind == runtime.SandboxPinned) != (sb.NSDir != "") {
		t.Fatalf("%s sandbox %+v: want a PID for a pause container, a pin directory for pinned namespaces", kind, sb)
	}
	if err := loopbackUp(sb); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, sb, "/hello", "echo-7f9c4 /hello\n")

	st, err := e.rt.ContainerStatus(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateRunning || st.Kind != runtime.KindContainer || st.Pod != pod || st.Name != "echo" ||
		st.StartedAt.IsZero() || st.PID == 0 || st.Image != runtimetest.EchoImage {
		t.Errorf("status = %+v", st)
	}
	for k, want := range map[string]string{
		runtime.LabelPodUID: pod.UID, runtime.LabelPodName: pod.Name, runtime.LabelPodNamespace: pod.Namespace,
		runtime.LabelContainerName: "echo", runtime.LabelKind: "container", runtime.LabelRestartCount: "0",
	} {
		if st.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, st.Labels[k], want)
		}
	}
	// The container shares the sandbox's net, UTS and IPC namespaces, and only those.
	for _, ns := range []string{"net", "uts", "ipc"} {
		a, b := nsIno(t, sandboxNS(sb, ns)), nsIno(t, fmt.Sprintf("/proc/%d/ns/%s", st.PID, ns))
		if a != b {
			t.Errorf("%s namespace: sandbox %d, container %d", ns, a, b)
		}
	}
	other := "/proc/self/ns/pid" // a pinned sandbox has no PID namespace: not the agent's either
	if sb.PID != 0 {
		other = fmt.Sprintf("/proc/%d/ns/pid", sb.PID)
	}
	if a, b := nsIno(t, other), nsIno(t, fmt.Sprintf("/proc/%d/ns/pid", st.PID)); a == b {
		t.Errorf("container shares the PID namespace %d of %s", a, other)
	}
	waitLog(t, st.LogPath, "listening on :8080", 5*time.Second)
}

// sandboxNS is the file of the sandbox's namespace ns: a pin or the pause process's.
func sandboxNS(sb runtime.Sandbox, ns string) string {
	if sb.NSDir != "" {
		return filepath.Join(sb.NSDir, ns)
	}
	return fmt.Sprintf("/proc/%d/ns/%s", sb.PID, ns)
}

// nsIno is the inode of the namespace the file at path refers to.
func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("namespace %s: %v", path, err)
	}
	return st.Ino
}
