package events_test

import (
	"slices"
	"strings"
	"testing"

	"skiff.dev/events"
)

func TestNodeRanges(t *testing.T) {
	for _, tc := range []struct {
		positions []int
		want      string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1, 2, 5, 9, 10, 11}, "0-2,5,9-11"},
		{[]int{3, 5, 7}, "3,5,7"},
	} {
		got := events.NodePositions(tc.positions, 100)
		if got != tc.want {
			t.Errorf("NodePositions(%v, 100) = %q, want %q", tc.positions, got, tc.want)
		}
		back, err := events.ParseNodePositions(got, 100)
		if err != nil || !slices.Equal(back, tc.positions) {
			t.Errorf("ParseNodePositions(%q) = %v, %v; want %v", got, back, err, tc.positions)
		}
	}
	// Scattered positions among many nodes: a bitmap, shorter than the ranges.
	var every3rd []int
	for p := 0; p < 5000; p += 3 {
		every3rd = append(every3rd, p)
	}
	enc := events.NodePositions(every3rd, 5000)
	if !strings.HasPrefix(enc, "b:") || len(enc) > 2+834 {
		t.Errorf("every third of 5,000 nodes encodes as %d bytes (%.20q…), want a bitmap of at most 836", len(enc), enc)
	}
	if back, err := events.ParseNodePositions(enc, 5000); err != nil || !slices.Equal(back, every3rd) {
		t.Errorf("the bitmap decodes to %d positions (%v), want %d", len(back), err, len(every3rd))
	}
	for _, bad := range []string{"x", "1-", "2-1", "12", "3,1", "1,1", "-1", "0-12", "b:!!", "b:AAAA", "b:AP8"} {
		if got, err := events.ParseNodePositions(bad, 12); err == nil {
			t.Errorf("ParseNodePositions(%q, 12) = %v, want an error", bad, got)
		}
	}
	if a, b := events.NodeSetDigest([]string{"a", "b"}), events.NodeSetDigest([]string{"ab"}); a == b {
		t.Errorf("digests of different node lists are equal: %s", a)
	}
}
