package events

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseCPU parses a Kubernetes CPU quantity ("2", "0.5", "250m") into millicores.
func ParseCPU(q string) (int64, error) {
	if q == "" {
		return 0, fmt.Errorf("empty cpu quantity: %w", ErrInvalidArgument)
	}
	if strings.HasSuffix(q, "m") {
		n, err := strconv.ParseInt(q[:len(q)-1], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("cpu quantity %q: want a number of cores (\"0.5\") or millicores (\"500m\"): %w", q, ErrInvalidArgument)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(q, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e12 {
		return 0, fmt.Errorf("cpu quantity %q: want a number of cores (\"0.5\") or millicores (\"500m\"): %w", q, ErrInvalidArgument)
	}
	return int64(math.Ceil(f * 1000)), nil
}

var memorySuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50},
	{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
}

// ParseMemory parses a Kubernetes memory quantity ("128Mi", "1G", "1048576") into bytes.
func ParseMemory(q string) (int64, error) {
	bad := func() error {
		return fmt.Errorf("memory quantity %q: want bytes (\"1048576\") or a number with a suffix Ki, Mi, Gi, Ti, k, M, G, T: %w", q, ErrInvalidArgument)
	}
	if q == "" {
		return 0, bad()
	}
	mult := int64(1)
	num := q
	for _, s := range memorySuffixes {
		if strings.HasSuffix(q, s.suffix) {
			mult, num = s.mult, q[:len(q)-len(s.suffix)]
			break
		}
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 || (n > 0 && n > math.MaxInt64/mult) {
			return 0, bad()
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*float64(mult) > math.MaxInt64/2 {
		return 0, bad()
	}
	return int64(math.Ceil(f * float64(mult))), nil
}

// Requests sums the pod's CPU (millicores) and memory (bytes) requests. A container with a limit
// but no request requests its limit, as in Kubernetes. Quantities were validated at admission;
// one that does not parse counts as zero.
func (s *PodSpec) Requests() (milliCPU, memory int64) {
	for i := range s.Containers {
		r := &s.Containers[i].Resources
		cpu, mem := r.Requests["cpu"], r.Requests["memory"]
		if cpu == "" {
			cpu = r.Limits["cpu"]
		}
		if mem == "" {
			mem = r.Limits["memory"]
		}
		if cpu != "" {
			v, _ := ParseCPU(cpu)
			milliCPU += v
		}
		if mem != "" {
			v, _ := ParseMemory(mem)
			memory += v
		}
	}
	return milliCPU, memory
}
