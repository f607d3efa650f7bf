package printer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events/eventstest"
)

func TestTable(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		rows   [][]string
		later  [][]string // printed one by one after the table, as `get -w` does
		want   string
	}{
		{
			name:   "aligned with three spaces, last column unpadded",
			header: []string{"NAME", "READY", "STATUS"},
			rows:   [][]string{{"web-1", "1/1", "Running"}, {"a-much-longer-name", "0/1", "Pending"}},
			want: "NAME                 READY   STATUS\n" +
				"web-1                1/1     Running\n" +
				"a-much-longer-name   0/1     Pending\n",
		},
		{
			name:   "header only",
			header: []string{"NAME", "AGE"},
			want:   "NAME   AGE\n",
		},
		{
			name:   "later rows keep the widths, a wider cell pushes only its row",
			header: []string{"NAME", "STATUS", "AGE"},
			rows:   [][]string{{"web", "Pending", "1s"}},
			later:  [][]string{{"web", "Running", "2s"}, {"web-with-long-name", "Running", "3s"}},
			want: "NAME   STATUS    AGE\n" +
				"web    Pending   1s\n" +
				"web    Running   2s\n" +
				"web-with-long-name   Running   3s\n",
		},
		{
			name:   "widths count characters, not bytes",
			header: []string{"NAME", "X"},
			rows:   [][]string{{"café", "1"}, {"ab", "2"}},
			want:   "NAME   X\ncafé   1\nab     2\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tab := NewTable(tt.header, tt.rows)
			if err := tab.Write(&b, tt.header, tt.rows); err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.later {
				if err := tab.WriteRow(&b, r); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

var items = []json.RawMessage{
	json.RawMessage(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"i"}]}}`),
	json.RawMessage(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[]}}`),
}

func TestObjects(t *testing.T) {
	tests := []struct {
		name  string
		write func(w io.Writer) error
	}{
		{"list.json", func(w io.Writer) error { return WriteList(w, JSON, items) }},
		{"list.yaml", func(w io.Writer) error { return WriteList(w, YAML, items) }},
		{"empty-list.json", func(w io.Writer) error { return WriteList(w, JSON, nil) }},
		{"empty-list.yaml", func(w io.Writer) error { return WriteList(w, YAML, nil) }},
		{"object.json", func(w io.Writer) error { return WriteObject(w, JSON, items[0]) }},
		{"object.yaml", func(w io.Writer) error { return WriteObject(w, YAML, items[0]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(tt.name, ".json") && !json.Valid(b.Bytes()) {
				t.Errorf("output is not valid JSON:\n%s", b.String())
			}
			eventstest.Golden(t, "testdata/"+tt.name, b.String())
		})
	}
}

func TestObjectsRejectBadInput(t *testing.T) {
	bad := []json.RawMessage{json.RawMessage(`{"a":`)}
	if err := WriteList(io.Discard, JSON, bad); err == nil {
		t.Error("WriteList accepted broken JSON")
	}
	if err := WriteObject(io.Discard, "xml", items[0]); err == nil {
		t.Error("WriteObject accepted an unknown format")
	}
}

// BenchmarkTable30k prints 30,000 pod rows, what `skiff get pods` does with a big cluster's
// answer once it has arrived.
func BenchmarkTable30k(b *testing.B) {
	header := []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"}
	rows := make([][]string, 30000)
	for i := range rows {
		rows[i] = []string{fmt.Sprintf("web-7d4b9c6f5-%05d", i), "1/1", "Running", "0", "3h12m", fmt.Sprintf("10.88.%d.%d", i/250, i%250), fmt.Sprintf("node-%03d", i%100)}
	}
	for b.Loop() {
		if err := NewTable(header, rows).Write(io.Discard, header, rows); err != nil {
			b.Fatal(err)
		}
	}
}
