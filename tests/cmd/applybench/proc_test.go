package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTailOfLog(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		n         int
		want      string
	}{
		{"empty", "", 5, "    (empty)"},
		{"last n", "a\nb\nc\n", 2, "    b\n    c"},
		{"repeats folded", "Skiff is up\ntime=1 level=ERROR msg=full\ntime=2 level=ERROR msg=full\ntime=3 level=ERROR msg=full\nSkiff is stopping\n", 5,
			"    Skiff is up\n    time=3 level=ERROR msg=full  (×3, the last shown)\n    Skiff is stopping"},
		{"folded runs count as one line", "x\ntime=1 m\ntime=2 m\ny\n", 2, "    time=2 m  (×2, the last shown)\n    y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := tail(path, tc.n); got != tc.want {
				t.Errorf("tail =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
