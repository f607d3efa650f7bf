package eventstest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// update is the one -update flag of every test binary that imports the kit.
var update = flag.Bool("update", false, "rewrite the golden files (eventstest.Golden) with what the tests produce")

// Golden compares got with the golden file at path (testdata/..., relative to the test's
// package). With -update it writes got there instead, creating the directories it needs. A
// missing file is fatal; a different one fails t with the diff and the command that rewrites it.
func Golden[T ~string | ~[]byte](t testing.TB, path string, got T) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatalf("update golden file: %v", err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("update golden file: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file: %v\ncreate it with: %s", err, updateCommand(t))
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s\nif the new output is right, rewrite the file with: %s", path, diff, updateCommand(t))
	}
}

// updateCommand is the go test command that reruns t's top-level test with -update, given from
// the workspace's root (where go.work is) so that it can be pasted there for any module.
func updateCommand(t testing.TB) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	return fmt.Sprintf("go test %s -run '^%s$' -update", packageDir(), regexp.QuoteMeta(top))
}

// packageDir is the test's package directory (go test runs a test binary there) relative to
// the nearest directory above it that holds go.work, or else go.mod; "." if there is neither.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	root := ""
	for _, marker := range []string{"go.work", "go.mod"} {
		for dir := wd; root == ""; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
				root = dir
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	rel, err := filepath.Rel(root, wd)
	if root == "" || err != nil || rel == "." {
		return "."
	}
	return "./" + filepath.ToSlash(rel)
}
