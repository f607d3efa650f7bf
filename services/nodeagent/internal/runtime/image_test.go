package runtime_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/images"
	"github.com/containerd/errdefs"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// TestImportDockerSave imports the testbox image repackaged the way
// `docker save` writes images (manifest.json, RepoTags, layer tars) and
// runs it.
func TestImportDockerSave(t *testing.T) {
	runtimetest.RequireRoot(t)
	imgs := runtimetest.Images(t)
	ctd := runtimetest.StartContainerd(t)
	rt := ctd.NewRuntime(t)

	archive := dockerSaveFromOCI(t, imgs.Testbox, "skiff.dev/testbox:docker")
	names, err := rt.ImportImage(ctxT(t, time.Minute), bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "skiff.dev/testbox:docker" {
		t.Fatalf("imported %q, want [skiff.dev/testbox:docker]", names)
	}
	e := &env{ctd: ctd, rt: rt}
	_, id := e.runPod(t, runtime.ContainerConfig{Pod: newPod(t, "docker"), Name: "c", Image: "skiff.dev/testbox:docker", Args: []string{"exit", "7"}})
	if st := e.waitState(t, id, runtime.StateExited, 10*time.Second); st.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", st.ExitCode)
	}
}

// dockerSaveFromOCI rewrites a one-image OCI layout tarball as a docker
// save archive: the same config and (still gzipped) layer, under
// manifest.json.
func dockerSaveFromOCI(t *testing.T, ociTar, tag string) []byte {
	t.Helper()
	f, err := os.Open(ociTar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	blob := func(digest string) []byte {
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
		if !ok {
			t.Fatalf("blob %s missing", digest)
		}
		return b
	}
	var index struct{ Manifests []struct{ Digest string } }
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	cfgName := strings.TrimPrefix(manifest.Config.Digest, "sha256:") + ".json"
	out := map[string][]byte{cfgName: blob(manifest.Config.Digest)}
	var layers []string
	for _, l := range manifest.Layers {
		name := strings.TrimPrefix(l.Digest, "sha256:") + "/layer.tar"
		out[name] = blob(l.Digest)
		layers = append(layers, name)
	}
	out["manifest.json"], _ = json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": layers}})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range out {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

// TestNativeSnapshotterFallback runs a container on a containerd without
// the overlayfs snapshotter: the runtime picks native.
func TestNativeSnapshotterFallback(t *testing.T) {
	runtimetest.RequireRoot(t)
	imgs := runtimetest.Images(t)
	ctd := runtimetest.StartContainerd(t, runtimetest.DisablePlugins("io.containerd.snapshotter.v1.overlayfs"))
	rt := ctd.NewRuntime(t)
	if rt.Snapshotter() != "native" {
		t.Fatalf("snapshotter %q, want native", rt.Snapshotter())
	}
	importImage(t, rt, imgs.Testbox)
	e := &env{ctd: ctd, rt: rt}
	_, id := e.runPod(t, runtime.ContainerConfig{Pod: newPod(t, "native"), Name: "c", Image: runtimetest.TestboxImage, Args: []string{"exit", "5"}})
	if st := e.waitState(t, id, runtime.StateExited, 10*time.Second); st.ExitCode != 5 {
		t.Errorf("exit code %d, want 5", st.ExitCode)
	}
}

// The runtime remembers what it read of an image per name and target: a name that now points
// at another image is read afresh, and a snapshot left under a container's ID by a crash is
// replaced while a container's own is not.
func TestImageFactsFollowTheImage(t *testing.T) {
	e := newEnv(t)
	client := e.ctd.Client(t)
	ctx := namespacesCtx(ctxT(t, time.Minute), e.rt)
	argvOf := func(id string) []string {
		t.Helper()
		c, err := client.LoadContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return spec.Process.Args
	}
	sbOf := func(pod runtime.PodRef) {
		t.Helper()
		if _, err := e.rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: pod}); err != nil {
			t.Fatal(err)
		}
	}

	// The echo image's name, then the same name moved to testbox's content.
	const name = "skiff.dev/moving:v1"
	is := client.ImageService()
	echo, err := is.Get(ctx, runtimetest.EchoImage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Create(ctx, images.Image{Name: name, Target: echo.Target}); err != nil {
		t.Fatal(err)
	}
	first := newPod(t, "first")
	sbOf(first)
	id, err := e.rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: first, Name: "c", Image: name})
	if err != nil {
		t.Fatal(err)
	}
	if got := argvOf(id); !slices.Equal(got, []string{"/echo"}) {
		t.Fatalf("container of %s (echo) runs %v", name, got)
	}
	testbox, err := is.Get(ctx, runtimetest.TestboxImage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Update(ctx, images.Image{Name: name, Target: testbox.Target}, "target"); err != nil {
		t.Fatal(err)
	}
	second := newPod(t, "second")
	sbOf(second)
	id, err = e.rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: second, Name: "c", Image: name})
	if err != nil {
		t.Fatal(err)
	}
	if got := argvOf(id); !slices.Equal(got, []string{"/testbox", "sleep"}) {
		t.Errorf("after %s moved to testbox, a container of it runs %v", name, got)
	}
	if _, err := e.rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: second, Name: "c", Image: name}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("CreateContainer of an existing container: %v, want AlreadyExists", err)
	}
	if err := e.rt.StartContainer(ctx, id); err != nil {
		t.Errorf("the container whose second create was refused does not start: %v", err)
	}

	// A snapshot under a new container's ID, as a crash after preparing it leaves.
	third := newPod(t, "third")
	sbOf(third)
	orphan := runtime.ContainerID(third.UID, "c")
	if _, err := client.SnapshotService(e.rt.Snapshotter()).Prepare(ctx, orphan, ""); err != nil {
		t.Fatal(err)
	}
	id, err = e.rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: third, Name: "c", Image: runtimetest.TestboxImage})
	if err != nil {
		t.Fatalf("CreateContainer over an orphaned snapshot: %v", err)
	}
	if err := e.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, runtime.StateRunning, 10*time.Second)
}

// An image's labels are read and set by its exact or its short name (the agent records there
// which image store tarball it was imported from); a missing image is NotFound.
func TestImageLabels(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 30*time.Second)
	const key = "skiff.dev/store-digest"
	if v, err := e.rt.ImageLabel(ctx, runtimetest.TestboxImage, key); err != nil || v != "" {
		t.Fatalf("label of an imported image = %q, %v; want none", v, err)
	}
	if err := e.rt.SetImageLabel(ctx, runtimetest.TestboxImage, key, "SHA-256=abc"); err != nil {
		t.Fatal(err)
	}
	if v, err := e.rt.ImageLabel(ctx, runtimetest.TestboxImage, key); err != nil || v != "SHA-256=abc" {
		t.Errorf("label after setting it = %q, %v", v, err)
	}
	if err := e.rt.SetImageLabel(ctx, runtimetest.TestboxImage, key, "SHA-256=def"); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.rt.ImageLabel(ctx, runtimetest.TestboxImage, key); v != "SHA-256=def" {
		t.Errorf("label after changing it = %q", v)
	}
	if _, err := e.rt.ImageLabel(ctx, "skiff.dev/nothing:v1", key); !errdefs.IsNotFound(err) {
		t.Errorf("label of a missing image: %v, want NotFound", err)
	}
}
