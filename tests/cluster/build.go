package cluster

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

// Binaries are the programs a cluster runs and the image tarballs it imports.
type Binaries struct {
	Skiff     string // the CLI, and `skiff up`
	Scheduler string // skiff-scheduler
	NodeAgent string // skiff-nodeagent
	NATS      string // e2enats: a NATS server alone, for clusters with separate scheduler processes
	// Images holds echo.tar and testbox.tar.
	Images string
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
	buildDir  string // removed by Main
)

// repoRoot is the repository's root: this file is tests/cluster/build.go.
func repoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build returns the binaries, building them once per test process: with `go build` from this
// working tree into a temporary directory, or, when SKIFF_BIN names a directory (such as bin/
// after `make build`), taking skiff, skiff-scheduler, skiff-nodeagent and images/ from there.
// The NATS helper is always built: it belongs to this module.
func Build(t testing.TB) Binaries {
	t.Helper()
	buildOnce.Do(func() { built, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return built
}

func build() (Binaries, error) {
	sweepStale(nil)
	dir, err := os.MkdirTemp("", runPrefix+"bin-")
	if err != nil {
		return Binaries{}, err
	}
	buildDir = dir
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(processIdentity(os.Getpid())), 0o644); err != nil {
		return Binaries{}, err
	}
	root := repoRoot()
	var pkgs []string
	b := Binaries{NATS: filepath.Join(dir, "e2enats")}
	src := os.Getenv("SKIFF_BIN")
	if src != "" {
		src, _ = filepath.Abs(src)
	}
	if nats := filepath.Join(src, "e2enats"); src != "" && exists(nats) {
		// A directory Build made (handed to a child test process) has it already.
		b.NATS = nats
	} else {
		pkgs = append(pkgs, "./tests/cmd/e2enats")
	}
	if src != "" {
		b.Skiff = filepath.Join(src, "skiff")
		b.Scheduler = filepath.Join(src, "skiff-scheduler")
		b.NodeAgent = filepath.Join(src, "skiff-nodeagent")
		b.Images = filepath.Join(src, "images")
	} else {
		pkgs = append(pkgs, "./cmd/skiff", "./services/scheduler/cmd/skiff-scheduler", "./services/nodeagent/cmd/skiff-nodeagent")
		b.Skiff = filepath.Join(dir, "skiff")
		b.Scheduler = filepath.Join(dir, "skiff-scheduler")
		b.NodeAgent = filepath.Join(dir, "skiff-nodeagent")
		b.Images = filepath.Join(dir, "images")
	}
	// One go build for all of them links them in parallel.
	if len(pkgs) > 0 {
		cmd := exec.Command(goTool(), append([]string{"build", "-o", dir + "/"}, pkgs...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
		}
	}
	if src == "" {
		cmd := exec.Command(goTool(), "run", "./build", "-out", b.Images)
		cmd.Dir = filepath.Join(root, "images")
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("build images (cd images && go run ./build): %v\n%s", err, out)
		}
	}
	for _, f := range []string{b.Skiff, b.Scheduler, b.NodeAgent, b.NATS, filepath.Join(b.Images, "echo.tar"), filepath.Join(b.Images, "testbox.tar")} {
		if _, err := os.Stat(f); err != nil {
			return b, fmt.Errorf("%w (with SKIFF_BIN set, run make build first)", err)
		}
	}
	return b, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(goruntime.GOROOT(), "bin", "go")
}

// Main runs the tests of a package and then removes the binaries Build made. Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }
//
// Without it the binaries stay until the next test run's stale sweep removes them.
func Main(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	return code
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Dir is the directory holding the binaries Build made (or SKIFF_BIN's), for handing to a child
// test process as SKIFF_BIN.
func (b Binaries) Dir() string { return filepath.Dir(b.Skiff) }
