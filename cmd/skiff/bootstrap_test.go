package main

import (
	"strings"
	"testing"
)

// --max-bytes takes a size as people write it, sets the log's limit, and says how much the log
// holds; a size that does not parse is a usage error.
func TestClusterBootstrapMaxBytes(t *testing.T) {
	c := newCluster(t)
	r := c.run("cluster", "bootstrap", "--max-bytes", "64MiB")
	if r.code != 0 {
		t.Fatalf("bootstrap --max-bytes 64MiB: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "stream SKIFF: replicas 1, retention max 64 MiB, then writes fail, holds 0 B") {
		t.Errorf("bootstrap printed:\n%s\nwant the stream's limit and size", r.stdout)
	}
	info, err := c.st.JetStream().Stream(t.Context(), c.st.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().Config.MaxBytes; got != 64<<20 {
		t.Errorf("stream MaxBytes = %d, want %d", got, 64<<20)
	}
	if r := c.run("cluster", "bootstrap", "--max-bytes", "lots"); r.code != exitUsage || !strings.Contains(r.stderr, "64Mi") {
		t.Errorf("bootstrap --max-bytes lots: exit %d, stderr %q; want a usage error with an example", r.code, r.stderr)
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "67108864", want: 64 << 20},
		{in: "64Mi", want: 64 << 20},
		{in: "64MiB", want: 64 << 20},
		{in: "10Gi", want: 10 << 30},
		{in: "1G", want: 1e9},
		{in: "512Ki", want: 512 << 10},
		{in: "-1", bad: true},
		{in: "64MB", bad: true},
		{in: "", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var b byteSize
			err := b.Set(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("Set(%q) = %d, want an error", tc.in, b)
				}
				return
			}
			if err != nil || int64(b) != tc.want {
				t.Fatalf("Set(%q) = %d, %v; want %d", tc.in, b, err, tc.want)
			}
		})
	}
}
