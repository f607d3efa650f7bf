package events_test

import (
	"slices"
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
		got := events.NodeRanges(tc.positions)
		if got != tc.want {
			t.Errorf("NodeRanges(%v) = %q, want %q", tc.positions, got, tc.want)
		}
		back, err := events.ParseNodeRanges(got, 12)
		if err != nil || !slices.Equal(back, tc.positions) {
			t.Errorf("ParseNodeRanges(%q) = %v, %v; want %v", got, back, err, tc.positions)
		}
	}
	for _, bad := range []string{"x", "1-", "2-1", "12", "3,1", "1,1", "-1", "0-12"} {
		if got, err := events.ParseNodeRanges(bad, 12); err == nil {
			t.Errorf("ParseNodeRanges(%q, 12) = %v, want an error", bad, got)
		}
	}
	if a, b := events.NodeSetDigest([]string{"a", "b"}), events.NodeSetDigest([]string{"ab"}); a == b {
		t.Errorf("digests of different node lists are equal: %s", a)
	}
}
