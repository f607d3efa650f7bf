package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

// doc is what a test expects of one document: where it came from and its JSON.
type doc struct {
	Source string
	Index  int
	JSON   string
}

func TestRead(t *testing.T) {
	const deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
	const svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
	tests := []struct {
		name    string
		files   map[string]string // relative to a temp dir
		paths   []string          // relative to the temp dir, or "-"
		stdin   string
		want    []doc
		wantErr string // substring; the whole message is checked where it matters
	}{
		{
			name:  "one yaml file",
			files: map[string]string{"web.yaml": deploy},
			paths: []string{"web.yaml"},
			want:  []doc{{"web.yaml", 0, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`}},
		},
		{
			name:  "multi-document yaml with empty and comment-only documents",
			files: map[string]string{"all.yaml": "# leading comment\n---\n" + deploy + "---\n# only a comment\n---\n\n--- \n" + svc + "...\n"},
			paths: []string{"all.yaml"},
			want: []doc{
				{"all.yaml", 0, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`},
				{"all.yaml", 1, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}}`},
			},
		},
		{
			name:  "json file with two objects",
			files: map[string]string{"objs.json": `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}` + "\n" + `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}`},
			paths: []string{"objs.json"},
			want: []doc{
				{"objs.json", 0, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}`},
				{"objs.json", 1, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}`},
			},
		},
		{
			name:  "json List",
			files: map[string]string{"list.json": `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}`},
			paths: []string{"list.json"},
			want: []doc{
				{"list.json", 0, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}`},
				{"list.json", 1, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`},
			},
		},
		{
			name:  "yaml List followed by another document",
			files: map[string]string{"list.yaml": "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(svc), "\n", "\n  ") + "\n---\n" + deploy},
			paths: []string{"list.yaml"},
			want: []doc{
				{"list.yaml", 0, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}}`},
				{"list.yaml", 1, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`},
			},
		},
		{
			name: "directory in name order, manifests only, not recursive",
			files: map[string]string{
				"dir/b.yml": svc, "dir/a.json": `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`,
				"dir/c.YAML": deploy, "dir/notes.txt": "not a manifest", "dir/sub/d.yaml": deploy,
			},
			paths: []string{"dir"},
			want: []doc{
				{"dir/a.json", 0, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`},
				{"dir/b.yml", 0, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}}`},
				{"dir/c.YAML", 0, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`},
			},
		},
		{
			name:  "stdin and a file, in the order given",
			files: map[string]string{"svc.yaml": svc},
			paths: []string{"-", "svc.yaml"},
			stdin: deploy,
			want: []doc{
				{"-", 0, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`},
				{"svc.yaml", 0, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}}`},
			},
		},
		{
			name:  "empty file",
			files: map[string]string{"empty.yaml": "\n# nothing\n"},
			paths: []string{"empty.yaml"},
		},
		{
			name:    "yaml syntax error names the file's line, not the document's",
			files:   map[string]string{"bad.yaml": deploy + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: app: web\n"},
			paths:   []string{"bad.yaml"},
			wantErr: "bad.yaml: line 10: mapping values are not allowed in this context",
		},
		{
			name:    "yaml error in the first document",
			files:   map[string]string{"bad.yaml": "\n\napiVersion: v1\nkind: [Service\n"},
			paths:   []string{"bad.yaml"},
			wantErr: "bad.yaml: line 4: did not find expected ',' or ']'",
		},
		{
			name:    "json syntax error with line",
			files:   map[string]string{"bad.json": "{\n  \"kind\": \"Pod\",\n  \"metadata\": {\"name\" \"p\"}\n}\n"},
			paths:   []string{"bad.json"},
			wantErr: "bad.json: line 3: invalid character '\"' after object key",
		},
		{
			name:    "truncated json",
			files:   map[string]string{"bad.json": "{\n  \"kind\": \"Pod\",\n"},
			paths:   []string{"bad.json"},
			wantErr: "bad.json: line 3: unexpected end of file",
		},
		{
			name:    "kind missing",
			files:   map[string]string{"nokind.yaml": deploy + "---\napiVersion: v1\nmetadata:\n  name: x\n"},
			paths:   []string{"nokind.yaml"},
			wantErr: `nokind.yaml: document 2 (line 6): "kind" is missing`,
		},
		{
			name:    "not an object",
			files:   map[string]string{"list.yaml": "- a\n- b\n"},
			paths:   []string{"list.yaml"},
			wantErr: "list.yaml: document 1 (line 1): want an object with apiVersion and kind, got a list",
		},
		{
			name:    "missing file",
			paths:   []string{"nope.yaml"},
			wantErr: "nope.yaml: no such file or directory",
		},
		{
			name:    "stdin twice",
			paths:   []string{"-", "-"},
			wantErr: "standard input can be read only once",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(dir)
			docs, err := Read(tt.paths, strings.NewReader(tt.stdin))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			var got []doc
			for _, d := range docs {
				got = append(got, doc{d.Source, d.Index, string(d.Object)})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("documents (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorsAreInvalidArgument(t *testing.T) {
	for _, content := range []string{"a: [b\n", "{\"kind\": ", "apiVersion: v1\n", "- a\n"} {
		_, err := Parse("x.yaml", []byte(content))
		if !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("Parse(%q) = %v, want an error wrapping ErrInvalidArgument", content, err)
		}
	}
}
