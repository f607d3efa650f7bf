package admission

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestManifestDocsExamples applies every YAML example of docs/manifests.md, so the page never
// shows a manifest Skiff would reject.
func TestManifestDocsExamples(t *testing.T) {
	raw, err := os.ReadFile("../../../../docs/manifests.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d yaml examples, want at least 2", len(blocks))
	}
	c := newCluster(t)
	r := c.replica(Config{})
	for i, b := range blocks {
		resp := r.apply(t, strings.Split(b[1], "\n---\n")...)
		if resp.Error != nil {
			t.Errorf("example %d: %v", i+1, resp.Error)
		}
		for _, res := range resp.Results {
			if res.Action != "created" {
				t.Errorf("example %d: %s", i+1, res)
			}
		}
	}
}
