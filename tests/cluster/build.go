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
	buildOneMu.Lock()
	dir, err := ensureBuildDir()
	buildOneMu.Unlock()
	if err != nil {
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

// NATSServer returns the stock nats-server binary, built once per test process with `go build
// github.com/nats-io/nats-server/v2` in the events module, so it is the very version events/go.mod
// pins (the one Skiff embeds): no other download path. SKIFF_BIN/nats-server is taken when it
// exists.
func NATSServer(t testing.TB) string {
	t.Helper()
	return buildOne(t, "nats-server", filepath.Join(repoRoot(), "events"), "github.com/nats-io/nats-server/v2")
}

// SkiffCLI returns the skiff binary alone (Build also builds the services and images), built
// once per test process from this working tree, or SKIFF_BIN/skiff.
func SkiffCLI(t testing.TB) string {
	t.Helper()
	return buildOne(t, "skiff", repoRoot(), "./cmd/skiff")
}

var (
	buildOneMu   sync.Mutex
	buildOneDone = map[string]string{}
)

// buildOne builds pkg (in module directory dir) into the build directory as name, once.
func buildOne(t testing.TB, name, dir, pkg string) string {
	t.Helper()
	buildOneMu.Lock()
	defer buildOneMu.Unlock()
	if p, ok := buildOneDone[name]; ok {
		return p
	}
	if src := os.Getenv("SKIFF_BIN"); src != "" {
		if p, _ := filepath.Abs(filepath.Join(src, name)); exists(p) {
			buildOneDone[name] = p
			return p
		}
	}
	dir0, err := ensureBuildDir()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir0, name)
	cmd := exec.Command(goTool(), "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s (in %s): %v\n%s", pkg, dir, err, b)
	}
	buildOneDone[name] = out
	return out
}

// ensureBuildDir makes the build directory once (callers hold buildOneMu).
func ensureBuildDir() (string, error) {
	if buildDir != "" {
		return buildDir, nil
	}
	sweepStale(nil)
	d, err := os.MkdirTemp("", runPrefix+"bin-")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(processIdentity(os.Getpid())), 0o644); err != nil {
		return "", err
	}
	buildDir = d
	return d, nil
}
