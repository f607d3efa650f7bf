package ocilayout

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

func testImage() Image {
	return Image{
		Name: "skiff.dev/x:v1", OS: "linux", Architecture: "amd64",
		Entrypoint: []string{"/bin/x"}, Cmd: []string{"serve"}, Env: []string{"A=1"},
		WorkingDir: "/", ExposedPorts: []string{"8080/tcp", "53/udp"},
		Files: []File{{Path: "/bin/x", Mode: 0o755, Data: []byte("binary")}},
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if _, err := Write(&a, testImage()); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, testImage()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same image differ")
	}
}

func TestWriteLayout(t *testing.T) {
	var buf bytes.Buffer
	desc, err := Write(&buf, testImage())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v, want the epoch", h.Name, h.ModTime)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", files["oci-layout"])
	}
	var idx index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != desc.Digest ||
		idx.Manifests[0].Annotations[AnnotationRefName] != "skiff.dev/x:v1" {
		t.Fatalf("index = %+v", idx)
	}
	var man manifest
	if err := json.Unmarshal(files[blobPath(desc.Digest)], &man); err != nil {
		t.Fatal(err)
	}
	var cfg configFile
	if err := json.Unmarshal(files[blobPath(man.Config.Digest)], &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.Entrypoint[0] != "/bin/x" || cfg.Config.Cmd[0] != "serve" || len(cfg.Config.ExposedPorts) != 2 {
		t.Errorf("config = %+v", cfg.Config)
	}
	for _, d := range append(man.Layers, man.Config) {
		if b, ok := files[blobPath(d.Digest)]; !ok || int64(len(b)) != d.Size || newBlob(b).digest != d.Digest {
			t.Errorf("blob %s missing or wrong", d.Digest)
		}
	}
}
