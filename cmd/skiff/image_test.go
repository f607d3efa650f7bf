package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events/images"
)

// writeTar writes a tarball of the given files, in order, and returns its path.
func writeTar(t *testing.T, dir, name string, files ...[2]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ociIndex(names ...string) string {
	type m struct {
		Annotations map[string]string `json:"annotations"`
	}
	var ms []m
	for _, n := range names {
		ms = append(ms, m{map[string]string{"org.opencontainers.image.ref.name": n}})
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": ms})
	return string(b)
}

func TestImage(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	oci := writeTar(t, dir, "tiny.tar", [2]string{"oci-layout", `{"imageLayoutVersion":"1.0.0"}`},
		[2]string{"blobs/sha256/abc", strings.Repeat("x", 3000)}, [2]string{"index.json", ociIndex("skiff.dev/tiny:v1")})
	docker := writeTar(t, dir, "busybox.tar", [2]string{"layer.tar", strings.Repeat("y", 2000)},
		[2]string{"manifest.json", `[{"Config":"c.json","RepoTags":["busybox:1.36","busybox:latest"],"Layers":["layer.tar"]}]`})
	nameless := writeTar(t, dir, "nameless.tar", [2]string{"index.json", ociIndex("v1")})
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte(strings.Repeat("not a tarball\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	size := func(p string) string {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return humanSize(info.Size())
	}

	steps := []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{name: "nothing to list yet", args: []string{"image", "ls"},
			wantStderr: "No images found: import some with skiff image import FILE.tar\n"},
		{name: "not a tarball", args: []string{"image", "import", notes}, wantCode: 1,
			wantStderr: "error: " + notes + " is not a tar archive: archive/tar: invalid tar header\n"},
		{name: "a tarball without image names", args: []string{"image", "import", nameless}, wantCode: 1,
			wantStderr: "error: " + nameless + " names no image: an OCI layout needs an org.opencontainers.image.ref.name annotation with a full name, a docker save tarball RepoTags\n"},
		{name: "a missing file among good ones imports none", args: []string{"image", "import", oci, filepath.Join(dir, "nope.tar")}, wantCode: 1,
			wantStderr: "error: " + filepath.Join(dir, "nope.tar") + ": no such file or directory\n"},
		{name: "a directory", args: []string{"image", "import", dir}, wantCode: 1,
			wantStderr: "error: " + dir + " is a directory, not an image tarball\n"},
		{name: "still nothing", args: []string{"image", "ls"},
			wantStderr: "No images found: import some with skiff image import FILE.tar\n"},
		{name: "oci and docker save", args: []string{"image", "import", oci, docker},
			wantStdout: "image skiff.dev/tiny:v1 imported (" + size(oci) + ")\n" +
				"image docker.io/library/busybox:1.36 imported (" + size(docker) + ")\n" +
				"image docker.io/library/busybox:latest imported (" + size(docker) + ")\n"},
		{name: "again", args: []string{"image", "import", oci},
			wantStdout: "image skiff.dev/tiny:v1 imported (" + size(oci) + ")\n"},
		{name: "no file", args: []string{"image", "import"}, wantCode: 2,
			wantStderr: "error: skiff image import takes FILE.tar [FILE.tar...], got 0 arguments\nSee 'skiff image import --help' for usage.\n"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := c.run(s.args...)
			if r.code != s.wantCode || r.stdout != s.wantStdout || r.stderr != s.wantStderr {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q",
					r.code, r.stdout, r.stderr, s.wantCode, s.wantStdout, s.wantStderr)
			}
		})
	}

	t.Run("list", func(t *testing.T) {
		// Ages need a clock that agrees with the server's modification times.
		var out, errb bytes.Buffer
		env := c.env(strings.NewReader(""), &out, &errb)
		env.Now = time.Now
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if code := run(ctx, []string{"image", "ls"}, env); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, errb.String())
		}
		age := regexp.MustCompile(`\d+s ago`)
		got := age.ReplaceAllString(out.String(), "AGE")
		want := "NAME                               SIZE     MODIFIED\n" +
			"docker.io/library/busybox:1.36     " + size(docker) + "   AGE\n" +
			"docker.io/library/busybox:latest   " + size(docker) + "   AGE\n" +
			"skiff.dev/tiny:v1                  " + size(oci) + "   AGE\n"
		if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(got, "\n")); diff != "" {
			t.Errorf("image ls (-want +got):\n%s\n%s", diff, out.String())
		}
	})

	t.Run("what agents fetch is the file", func(t *testing.T) {
		ctx := context.Background()
		obs, err := images.OpenBucket(ctx, c.st.JetStream())
		if err != nil {
			t.Fatal(err)
		}
		for ref, file := range map[string]string{"skiff.dev/tiny:v1": oci, "busybox:1.36": docker, "busybox": docker} {
			r, err := images.Get(ctx, obs, ref)
			if err != nil {
				t.Fatalf("get %s: %v", ref, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(file)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: the store holds %d bytes that differ from %s (%d bytes)", ref, len(got), file, len(want))
			}
		}
	})
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 kB", 1536: "1.5 kB", 2498048: "2.4 MB",
		5 << 30: "5.0 GB", 3 << 40: "3.0 TB", 5000 << 40: "5000.0 TB",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
