package events

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// NodeRanges encodes ascending positions as ranges, "0-2,5,9-11": PodUnschedulable.NodeReasons'
// form, which stays short when neighbouring nodes share a reason, as they mostly do.
func NodeRanges(positions []int) string {
	var b strings.Builder
	for i := 0; i < len(positions); {
		j := i
		for j+1 < len(positions) && positions[j+1] == positions[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(positions[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(positions[j]))
		}
		i = j + 1
	}
	return b.String()
}

// ParseNodeRanges decodes NodeRanges' form; every position must be below n (the node count).
func ParseNodeRanges(s string, n int) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("node ranges %q: %q is not a position", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("node ranges %q: %q is not a position", s, hi)
			}
		}
		if a < 0 || b < a || b >= n || (len(out) > 0 && a <= out[len(out)-1]) {
			return nil, fmt.Errorf("node ranges %q: %q is out of order or not below the %d nodes", s, part, n)
		}
		for p := a; p <= b; p++ {
			out = append(out, p)
		}
	}
	return out, nil
}

// NodeSetDigest is PodUnschedulable.NodeSet for node names in the order given (sorted by name).
func NodeSetDigest(sorted []string) string {
	h := fnv.New64a()
	for _, n := range sorted {
		h.Write([]byte(n))
		h.Write([]byte{'\n'})
	}
	return fmt.Sprintf("%d:%016x", len(sorted), h.Sum64())
}
