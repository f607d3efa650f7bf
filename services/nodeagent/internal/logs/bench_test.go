package logs

import (
	"strings"
	"testing"

	"skiff.dev/events/api"
)

// BenchmarkStream reads a 16 MiB log through the protocol on a real NATS server, one
// acknowledged chunk at a time, as `skiff logs` does: flow control costs a round trip per
// chunk.
func BenchmarkStream(b *testing.B) {
	h := newHarness(b, nil)
	content := strings.Repeat(strings.Repeat("x", 99)+"\n", 16<<20/100)
	h.write("app", 0, "", content)
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, resp := h.open(api.LogsRequest{Container: "app"})
		if resp.Error != nil {
			b.Fatal(resp.Error)
		}
		if got := c.readAll(); len(got) != len(content) {
			b.Fatalf("got %d bytes, want %d", len(got), len(content))
		}
		c.leave()
	}
}
