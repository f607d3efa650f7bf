package admission

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events/api"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// TestApplyErrorText pins what a person sees for a request with many problems at once: every
// problem of every document, with paths, and one summary line.
func TestApplyErrorText(t *testing.T) {
	raw, err := os.ReadFile("testdata/several-problems.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifests := strings.Split(string(raw), "\n---\n")
	c := newCluster(t)
	r := c.replica(Config{})
	resp := r.Apply(ctxT(t), &api.ApplyRequest{Documents: docs(t, manifests...)})
	if resp.Error == nil {
		t.Fatal("apply succeeded")
	}
	golden(t, "several-problems.golden", "code: "+resp.Error.Code+"\n"+resp.Error.Error()+"\n")
}
