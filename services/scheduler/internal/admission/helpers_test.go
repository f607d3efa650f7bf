package admission

import (
	"testing"

	"sigs.k8s.io/yaml"

	"skiff.dev/events/api"
)

// docs converts YAML manifests to request documents, the way the CLI does.
func docs(t testing.TB, manifests ...string) []api.Document {
	t.Helper()
	out := make([]api.Document, len(manifests))
	for i, m := range manifests {
		j, err := yaml.YAMLToJSON([]byte(m))
		if err != nil {
			t.Fatalf("manifest %d: %v", i, err)
		}
		out[i] = api.Document{Source: "test.yaml", Index: i, Object: j}
	}
	return out
}
