package admission

import (
	"os"
	"strings"
	"testing"

	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
)

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
	eventstest.Golden(t, "testdata/several-problems.golden", "code: "+resp.Error.Code+"\n"+resp.Error.Error()+"\n")
}
