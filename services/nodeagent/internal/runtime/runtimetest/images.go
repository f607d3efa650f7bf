package runtimetest

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"
)

// TestImages are the image tarballs the tests import.
type TestImages struct {
	Echo    string // skiff.dev/echo:v1
	Testbox string // skiff.dev/testbox:v1
}

const (
	EchoImage    = "skiff.dev/echo:v1"
	TestboxImage = "skiff.dev/testbox:v1"
)

var (
	imagesOnce sync.Once
	images     TestImages
	imagesErr  string
)

// Images builds the project's images with images/build, once per test
// binary, into a cache directory named after a hash of the images/ sources
// (so a rebuild happens exactly when they change). SKIFF_TEST_IMAGES names
// a directory of prebuilt tarballs instead.
func Images(t testing.TB) TestImages {
	t.Helper()
	imagesOnce.Do(func() { images, imagesErr = buildImages() })
	if imagesErr != "" {
		t.Fatal(imagesErr)
	}
	return images
}

func buildImages() (TestImages, string) {
	if dir := os.Getenv("SKIFF_TEST_IMAGES"); dir != "" {
		return TestImages{Echo: filepath.Join(dir, "echo.tar"), Testbox: filepath.Join(dir, "testbox.tar")}, ""
	}
	_, file, _, _ := goruntime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "..", "images")
	key, err := sourceHash(src)
	if err != nil {
		return TestImages{}, "hash images sources in " + src + ": " + err.Error()
	}
	out := filepath.Join(os.TempDir(), "skiff-test-images-"+key)
	imgs := TestImages{Echo: filepath.Join(out, "echo.tar"), Testbox: filepath.Join(out, "testbox.tar")}
	if exists(imgs.Echo) && exists(imgs.Testbox) {
		return imgs, ""
	}
	cmd := exec.Command(goTool(), "run", "./build", "-out", out)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return TestImages{}, "build test images (cd images && go run ./build): " + err.Error() + "\n" + string(b)
	}
	return imgs, ""
}

func sourceHash(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if filepath.Ext(p) != ".go" && d.Name() != "go.mod" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel + "\x00"))
		h.Write(b)
		return nil
	})
	h.Write([]byte(goruntime.Version() + goruntime.GOARCH))
	return hex.EncodeToString(h.Sum(nil))[:16], err
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(goruntime.GOROOT(), "bin", "go")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
