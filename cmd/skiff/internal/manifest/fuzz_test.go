package manifest

import (
	"encoding/json"
	"testing"
)

// Any file given to `skiff apply -f` is split into documents or refused with an error; never a
// panic, and every document it yields is a JSON object.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
		"---\napiVersion: v1\nkind: Service\n---\n# only a comment\n",
		`{"apiVersion":"v1","kind":"List","items":[{"kind":"Namespace","metadata":{"name":"a"}}]}`,
		"key: [unclosed\n",
		"\t- tab",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		docs, err := Parse("fuzz.yaml", []byte(data))
		if err != nil {
			return
		}
		for i, d := range docs {
			var obj map[string]any
			if err := json.Unmarshal(d.Object, &obj); err != nil {
				t.Fatalf("document %d is not a JSON object: %s", i, d.Object)
			}
		}
	})
}
