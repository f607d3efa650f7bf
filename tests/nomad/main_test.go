package nomad_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
)

// The binaries are built here, not with cluster.Build: that builds the image tarballs too
// (slow, and nothing here runs a pod), and neither skiff-netproxy nor the stock nats-server,
// which the jobspecs run.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the repository's root: this file is tests/nomad/main_test.go.
func repoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func deployDir() string { return filepath.Join(repoRoot(), "deploy", "nomad") }

// binaries builds, once per test process, every program a jobspec runs, and returns them by the
// base name of the command the jobspecs give (/usr/local/bin/<name> on the VMs).
func binaries(t *testing.T) map[string]string {
	t.Helper()
	buildOnce.Do(func() { buildErr = build() })
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	bins := map[string]string{}
	for _, n := range []string{"skiff", "skiff-scheduler", "skiff-nodeagent", "skiff-netproxy", "nats-server"} {
		bins[n] = filepath.Join(binDir, n)
	}
	return bins
}

func build() error {
	dir, err := os.MkdirTemp("", "skiff-nomad-bin-")
	if err != nil {
		return err
	}
	binDir = dir
	root := repoRoot()
	steps := []struct {
		dir  string
		args []string
	}{
		{root, []string{"build", "-o", dir + "/", "./cmd/skiff", "./services/scheduler/cmd/skiff-scheduler",
			"./services/nodeagent/cmd/skiff-nodeagent", "./services/netproxy/cmd/skiff-netproxy"}},
		// The stock server, from the version the events module pins, as README.md tells
		// operators to build it.
		{filepath.Join(root, "events"), []string{"build", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2"}},
	}
	for _, s := range steps {
		cmd := exec.Command(goTool(), s.args...)
		cmd.Dir = s.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("(cd %s && go %s): %v\n%s", s.dir, strings.Join(s.args, " "), err, out)
		}
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(goruntime.GOROOT(), "bin", "go")
}
