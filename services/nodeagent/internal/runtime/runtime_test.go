package runtime_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

func TestEchoAnswersInPodNetwork(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)
	if ok, err := e.rt.HasImage(ctx, runtimetest.EchoImage); err != nil || !ok {
		t.Fatalf("HasImage(%s) = %v, %v after import", runtimetest.EchoImage, ok, err)
	}
	if ok, err := e.rt.HasImage(ctx, "skiff.dev/nothing:v1"); err != nil || ok {
		t.Fatalf("HasImage(missing) = %v, %v", ok, err)
	}
	pod := newPod(t, "echo-7f9c4")
	sb, id := e.runPod(t, runtime.ContainerConfig{Pod: pod, Name: "echo", Image: runtimetest.EchoImage})
	if sb.PID == 0 {
		t.Fatal("sandbox has no PID")
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
	// The container shares the sandbox's network namespace, and only that.
	for _, ns := range []string{"net", "uts", "ipc"} {
		a, b := nsOf(sb.PID, ns), nsOf(st.PID, ns)
		if a != b || a == "" {
			t.Errorf("%s namespace: sandbox %s, container %s", ns, a, b)
		}
	}
	if a, b := nsOf(sb.PID, "pid"), nsOf(st.PID, "pid"); a == b {
		t.Errorf("container shares the sandbox's PID namespace %s", a)
	}
	waitLog(t, st.LogPath, "listening on :8080", 5*time.Second)
}

func nsOf(pid uint32, ns string) string {
	link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	return link
}
