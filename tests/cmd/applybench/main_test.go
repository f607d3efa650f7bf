package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTableColumns checks that every row has as many cells as the header names, for each
// topology, the medians included.
func TestTableColumns(t *testing.T) {
	cells := func(line string) int { return strings.Count(line, "|") - 1 }
	for name, topo := range topologies {
		t.Run(name, func(t *testing.T) {
			h := strings.Split(header(topo.measured()), "\n")
			if len(h) != 2 {
				t.Fatalf("header has %d lines, want 2:\n%s", len(h), header(topo.measured()))
			}
			rss := make([]int64, len(topo.measured()))
			for i := range rss {
				rss[i] = int64(i+1) << 30
			}
			r := result{timings: timings{applyToLast: time.Second, podsPerSec: 3}, peakRSS: rss}
			rows := []string{r.row("1"), medians([]result{r, r}).row("median of 2")}
			for _, line := range append(h[1:], rows...) {
				if got, want := cells(line), cells(h[0]); got != want {
					t.Errorf("%d cells in %q, the header has %d", got, line, want)
				}
			}
			for _, m := range topo.measured() {
				if !strings.Contains(h[0], "| "+m+" peak RSS |") {
					t.Errorf("header %q has no peak RSS column for %s", h[0], m)
				}
			}
			if last := rss[len(rss)-1] >> 20; !strings.HasSuffix(rows[1], " "+strconv.FormatInt(last, 10)+" MiB |") {
				t.Errorf("median row %q does not end with the last process's %d MiB", rows[1], last)
			}
		})
	}
}

// TestLogNotes checks that warnings and errors of Skiff's programs and of nats-server are
// found, and nothing else.
func TestLogNotes(t *testing.T) {
	for _, tc := range []struct {
		name, log, want string
	}{
		{"quiet", "time=1 level=INFO msg=hello\n[7] 2026/01/02 03:04:05.000000 [INF] Server is ready\n", ""},
		{"slog", "time=1 level=INFO msg=a\ntime=2 level=WARN msg=b\ntime=3 level=ERROR msg=c\n",
			"    2 such lines; the first 2:\n    time=2 level=WARN msg=b\n    time=3 level=ERROR msg=c"},
		{"nats-server", "[7] 2026/01/02 03:04:05.000000 [INF] ready\n[7] 2026/01/02 03:04:06.000000 [WRN] slow consumer\n[7] 2026/01/02 03:04:07.000000 [ERR] write\n",
			"    2 such lines; the first 2:\n    [7] 2026/01/02 03:04:06.000000 [WRN] slow consumer\n    [7] 2026/01/02 03:04:07.000000 [ERR] write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := logNotes(path); got != tc.want {
				t.Errorf("logNotes =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
