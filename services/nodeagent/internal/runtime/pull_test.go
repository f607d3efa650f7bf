package runtime_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"

	"skiff.dev/events/eventstest"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// An image pushed to a registry on loopback and deleted from the node comes
// back with PullImage, unpacked; a name the registry lacks is NotFound.
func TestPullImageFromLocalRegistry(t *testing.T) {
	runtimetest.RequireRoot(t)
	registry := startRegistry(t)
	imgs := runtimetest.Images(t)
	ctd := runtimetest.StartContainerd(t)
	rt := ctd.NewRuntime(t)
	importImage(t, rt, imgs.Echo)

	// Tag the imported image with the registry's name and push it there.
	client := ctd.Client(t)
	ctx := namespaces.WithNamespace(ctxT(t, 2*time.Minute), rt.Namespace())
	is := client.ImageService()
	src, err := is.Get(ctx, runtimetest.EchoImage)
	if err != nil {
		t.Fatal(err)
	}
	ref := registry + "/echo:v1"
	if _, err := is.Create(ctx, images.Image{Name: ref, Target: src.Target}); err != nil {
		t.Fatalf("tag %s as %s: %v", runtimetest.EchoImage, ref, err)
	}
	if err := client.Push(ctx, ref, src.Target,
		containerd.WithResolver(runtime.Resolver()),
		containerd.WithPlatformMatcher(platforms.Default())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}

	// Delete both names, synchronously so that the content and snapshots
	// are collected and the pull has to fetch every blob.
	for _, name := range []string{ref, runtimetest.EchoImage} {
		if err := is.Delete(ctx, name, images.SynchronousDelete()); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	if ok, err := rt.HasImage(ctx, ref); ok || err != nil {
		t.Fatalf("HasImage(%s) after delete = %v, %v; want false", ref, ok, err)
	}
	if _, err := client.ContentStore().Info(ctx, src.Target.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("manifest %s still in the content store after delete (%v): the pull would not fetch it", src.Target.Digest, err)
	}

	start := time.Now()
	if err := rt.PullImage(ctx, ref); err != nil {
		t.Fatalf("PullImage(%s): %v", ref, err)
	}
	t.Logf("pulled %s in %v", ref, time.Since(start).Round(time.Millisecond))
	if ok, err := rt.HasImage(ctx, ref); !ok || err != nil {
		t.Fatalf("HasImage(%s) after pull = %v, %v; want true", ref, ok, err)
	}
	img, err := client.GetImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Target().Digest != src.Target.Digest {
		t.Errorf("pulled digest %s, pushed %s", img.Target().Digest, src.Target.Digest)
	}
	if unpacked, err := img.IsUnpacked(ctx, rt.Snapshotter()); !unpacked || err != nil {
		t.Errorf("pulled image unpacked into %s = %v, %v; want true", rt.Snapshotter(), unpacked, err)
	}

	t.Run("missing name is NotFound", func(t *testing.T) {
		err := rt.PullImage(ctx, registry+"/nope:v1")
		if !errdefs.IsNotFound(err) {
			t.Fatalf("PullImage(nope) = %v, want NotFound", err)
		}
		t.Logf("error: %v", err)
	})
	t.Run("missing tag is NotFound", func(t *testing.T) {
		err := rt.PullImage(ctx, registry+"/echo:v2")
		if !errdefs.IsNotFound(err) {
			t.Fatalf("PullImage(echo:v2) = %v, want NotFound", err)
		}
	})
}

// A registry address where nothing listens fails fast, as Unavailable.
func TestPullImageUnreachable(t *testing.T) {
	runtimetest.RequireRoot(t)
	ctd := runtimetest.StartContainerd(t)
	rt := ctd.NewRuntime(t)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			ref := fmt.Sprintf("%s:%d/echo:v1", host, closedPort(t))
			start := time.Now()
			err := rt.PullImage(ctxT(t, 30*time.Second), ref)
			took := time.Since(start)
			if !errdefs.IsUnavailable(err) {
				t.Fatalf("PullImage(%s) = %v, want Unavailable", ref, err)
			}
			if took > 5*time.Second {
				t.Errorf("PullImage(%s) took %v to fail, want well under 5s", ref, took)
			}
			t.Logf("error after %v: %v", took.Round(time.Millisecond), err)
		})
	}
	t.Run("bad name", func(t *testing.T) {
		if err := rt.PullImage(ctxT(t, 5*time.Second), "Not A/Name"); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("PullImage(bad name) = %v, want InvalidArgument", err)
		}
	})
}

// startRegistry runs Debian's docker-registry on a free loopback port with
// its storage in a temporary directory and returns its host:port. It is
// killed by its PID when the test ends.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry not found in PATH (Debian package docker-registry; scripts/setup.sh installs it): %v", err)
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "storage"), addr)
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", readLog())
		}
	})

	err = eventstest.Poll(20*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("docker-registry exited at start; log:\n%s", readLog())
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("docker-registry does not serve http://%s/v2/: %v; log:\n%s", addr, err, readLog())
	}
	return addr
}

// closedPort returns a loopback TCP port that was free a moment ago.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
