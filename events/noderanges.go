package events

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// NodePositions encodes ascending positions among n nodes in PodUnschedulable.NodeReasons' form:
// ranges ("0-2,5,9-11"), short when neighbouring nodes share a reason, as they mostly do, or,
// when that is shorter, a bitmap of the n nodes in base64 after "b:" (n/6 bytes, so a reason
// costs at most 834 bytes at 5,000 nodes however its nodes are scattered).
func NodePositions(positions []int, n int) string {
	r := nodeRanges(positions)
	if bitmapLen := 2 + base64.RawStdEncoding.EncodedLen((n+7)/8); len(r) <= bitmapLen {
		return r
	}
	bits := make([]byte, (n+7)/8)
	for _, p := range positions {
		bits[p/8] |= 1 << (p % 8)
	}
	return "b:" + base64.RawStdEncoding.EncodeToString(bits)
}

// nodeRanges encodes ascending positions as ranges.
func nodeRanges(positions []int) string {
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

// ParseNodePositions decodes NodePositions' forms; every position must be below n (the node
// count).
func ParseNodePositions(s string, n int) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	if b64, ok := strings.CutPrefix(s, "b:"); ok {
		bits, err := base64.RawStdEncoding.DecodeString(b64)
		if err != nil || len(bits) != (n+7)/8 {
			return nil, fmt.Errorf("node bitmap %.20q…: not a base64 bitmap of %d nodes", s, n)
		}
		var out []int
		for p := range len(bits) * 8 {
			if bits[p/8]&(1<<(p%8)) != 0 {
				if p >= n {
					return nil, fmt.Errorf("node bitmap %.20q…: position %d is not below the %d nodes", s, p, n)
				}
				out = append(out, p)
			}
		}
		return out, nil
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
