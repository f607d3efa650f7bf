package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/images"
)

var (
	echoOnce sync.Once
	echoTar  string
	echoErr  error
)

// echo returns the path of skiff.dev/echo:v1 as images/build makes it (built once per test
// binary), or of SKIFF_TEST_IMAGES/echo.tar when that names prebuilt images.
func echo(t *testing.T) string {
	t.Helper()
	echoOnce.Do(func() {
		if dir := os.Getenv("SKIFF_TEST_IMAGES"); dir != "" {
			echoTar = filepath.Join(dir, "echo.tar")
			return
		}
		_, file, _, _ := goruntime.Caller(0)
		out, err := os.MkdirTemp("", "skiff-images-test-")
		if err != nil {
			echoErr = err
			return
		}
		cmd := exec.Command(filepath.Join(goruntime.GOROOT(), "bin", "go"), "run", "./build", "-only", "echo", "-out", out)
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "images")
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			echoErr = errors.New("build the echo image (cd images && go run ./build -only echo): " + err.Error() + "\n" + string(b))
			return
		}
		echoTar = filepath.Join(out, "echo.tar")
	})
	if echoErr != nil {
		t.Fatal(echoErr)
	}
	return echoTar
}

func TestMain(m *testing.M) {
	code := m.Run()
	if echoTar != "" && os.Getenv("SKIFF_TEST_IMAGES") == "" {
		os.RemoveAll(filepath.Dir(echoTar))
	}
	os.Exit(code)
}

// entries reads a tarball into its files, in order.
func entries(t *testing.T, path string) []entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []entry
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{h.Name, b, h.Typeflag})
	}
}

type entry struct {
	name string
	data []byte
	kind byte // tar.TypeReg when zero
}

func writeTar(t *testing.T, files []entry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		if f.kind == tar.TypeDir {
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dockerSave rewrites the OCI layout tarball oci in the shape `docker save` writes: the same
// blobs, and a manifest.json naming the config, the layers and the tags. With keepIndex the
// index.json stays too, as Docker 25 and later write it.
func dockerSave(t *testing.T, oci string, keepIndex bool, tags ...string) string {
	t.Helper()
	files := entries(t, oci)
	blob := func(digest string) []byte {
		for _, f := range files {
			if f.name == "blobs/sha256/"+strings.TrimPrefix(digest, "sha256:") {
				return f.data
			}
		}
		t.Fatalf("%s has no blob %s", oci, digest)
		return nil
	}
	var index struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	var out []entry
	for _, f := range files {
		if f.name == "index.json" {
			if err := json.Unmarshal(f.data, &index); err != nil {
				t.Fatal(err)
			}
			if !keepIndex {
				continue
			}
		}
		out = append(out, f)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("%s: want one manifest, index has %d", oci, len(index.Manifests))
	}
	var manifest struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	path := func(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }
	save := map[string]any{"Config": path(manifest.Config.Digest), "RepoTags": tags}
	var layers []string
	for _, l := range manifest.Layers {
		layers = append(layers, path(l.Digest))
	}
	save["Layers"] = layers
	b, err := json.Marshal([]any{save})
	if err != nil {
		t.Fatal(err)
	}
	return writeTar(t, append(out, entry{name: "manifest.json", data: b}))
}

func TestNamesInTarball(t *testing.T) {
	oci := echo(t)
	notTar := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notTar, []byte(strings.Repeat("hello\n", 200)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		want    []string
		wantErr error
	}{
		{name: "OCI layout from images/build", path: oci, want: []string{"skiff.dev/echo:v1"}},
		{name: "docker save", path: dockerSave(t, oci, false, "echo:v1", "registry.local:5000/team/echo:v1"),
			want: []string{"docker.io/library/echo:v1", "registry.local:5000/team/echo:v1"}},
		{name: "docker save with an OCI index naming the same image", path: dockerSave(t, oci, true, "skiff.dev/echo:v1", "skiff.dev/echo:latest"),
			want: []string{"skiff.dev/echo:v1", "skiff.dev/echo:latest"}},
		{name: "a tag-only ref name is no name", path: writeTar(t, []entry{
			{name: "index.json", data: []byte(`{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"v1"}},` +
				`{"annotations":{"org.opencontainers.image.ref.name":"v2","io.containerd.image.name":"docker.io/x/y:v2"}}]}`)}}),
			want: []string{"docker.io/x/y:v2"}},
		{name: "no names", path: writeTar(t, []entry{{name: "index.json", data: []byte(`{"manifests":[{}]}`)}}), wantErr: events.ErrInvalidArgument},
		{name: "no index nor manifest", path: writeTar(t, []entry{{name: "hello.txt", data: []byte("hi")}}), wantErr: events.ErrInvalidArgument},
		{name: "malformed manifest.json", path: writeTar(t, []entry{{name: "manifest.json", data: []byte(`{`)}}), wantErr: events.ErrInvalidArgument},
		{name: "not a tarball", path: notTar, wantErr: events.ErrInvalidArgument},
		{name: "missing", path: filepath.Join(t.TempDir(), "nope.tar"), wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := images.NamesInTarball(tt.path)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStore puts real image tarballs into a real JetStream object store and gets them back as
// an agent does: byte for byte, under every name they hold, in normalized or short form.
func TestStore(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(eventstest.Connect(t, eventstest.NewServer(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.OpenBucket(ctx, js); !errors.Is(err, events.ErrNotFound) || !strings.Contains(err.Error(), "skiff cluster bootstrap") {
		t.Fatalf("open before the bootstrap: err = %v, want NotFound naming skiff cluster bootstrap", err)
	}
	st, _, _ := eventstest.NewStore(t)
	obs, err := images.OpenBucket(ctx, st.JetStream())
	if err != nil {
		t.Fatalf("open the bucket the bootstrap made: %v", err)
	}
	if _, err := images.Get(ctx, obs, "skiff.dev/echo:v1"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("get before any import: err = %v, want NotFound", err)
	}

	oci := echo(t)
	docker := dockerSave(t, oci, false, "echo:v2", "echo:latest")
	for _, tc := range []struct {
		file      string
		wantNames []string
		refs      []string // what pods may name it by
	}{
		{oci, []string{"skiff.dev/echo:v1"}, []string{"skiff.dev/echo:v1"}},
		{docker, []string{"docker.io/library/echo:v2", "docker.io/library/echo:latest"}, []string{"echo:v2", "echo", "docker.io/library/echo:latest"}},
	} {
		names, err := images.Put(ctx, obs, tc.file)
		if err != nil {
			t.Fatalf("put %s: %v", tc.file, err)
		}
		if diff := cmp.Diff(tc.wantNames, names); diff != "" {
			t.Errorf("names of %s (-want +got):\n%s", tc.file, diff)
		}
		want, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range tc.refs {
			r, err := images.Get(ctx, obs, ref)
			if err != nil {
				t.Fatalf("get %s: %v", ref, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("read %s: %v", ref, err)
			}
			if sha256.Sum256(got) != sha256.Sum256(want) {
				t.Errorf("%s: got %d bytes that differ from the %d of %s", ref, len(got), len(want), tc.file)
			}
			// The digest a node compares for imagePullPolicy Always is the tarball's.
			sum := sha256.Sum256(want)
			if d, err := images.Digest(ctx, obs, ref); err != nil || d != "SHA-256="+base64.URLEncoding.EncodeToString(sum[:]) {
				t.Errorf("digest of %s = %q, %v; want the tarball's SHA-256", ref, d, err)
			}
		}
	}
	if _, err := images.Digest(ctx, obs, "skiff.dev/echo:v9"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("digest of an image never imported: err = %v, want NotFound", err)
	}
	if _, err := images.Get(ctx, obs, "skiff.dev/echo:v9"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("get of an image never imported: err = %v, want NotFound", err)
	}
	if _, err := images.Put(ctx, obs, filepath.Join(t.TempDir(), "nope.tar")); err == nil {
		t.Errorf("put of a missing file succeeded")
	}
}
