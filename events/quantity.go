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
//
// Init containers run one at a time, before the others: a pod needs the larger of what its
// app containers request together and what its largest init container requests, per resource.
func (s *PodSpec) Requests() (milliCPU, memory int64) {
	milliCPU, memory = requests(s.Containers)
	for i := range s.InitContainers {
		cpu, mem := requests(s.InitContainers[i : i+1])
		milliCPU, memory = max(milliCPU, cpu), max(memory, mem)
	}
	return milliCPU, memory
}

func requests(cs []Container) (milliCPU, memory int64) {
	for i := range cs {
		r := &cs[i].Resources
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

// ResourceEphemeralStorage is the local storage a pod's containers may use (logs, writable
// layers), in bytes, as Kubernetes names it.
const ResourceEphemeralStorage = "ephemeral-storage"

// IsExtendedResource reports whether name is an extended resource: a domain-qualified name
// ("nvidia.com/gpu") outside Kubernetes' own kubernetes.io domain, counted in whole units.
func IsExtendedResource(name string) bool {
	domain, rest, ok := strings.Cut(name, "/")
	return ok && domain != "" && rest != "" && strings.Contains(domain, ".") &&
		domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io") && !strings.Contains(rest, "/")
}

// ParseCount parses an extended resource's quantity: a whole number of units, 0 or more.
func ParseCount(q string) (int64, error) {
	v, err := strconv.ParseInt(q, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a whole number of units", q)
	}
	return v, nil
}

// ExtraResources are what a pod requests, or a node offers, beyond CPU and memory: ephemeral
// storage in bytes, and extended resources (devices a node advertises, "nvidia.com/gpu") in
// units. Most pods request none: they carry a nil *ExtraResources.
type ExtraResources struct {
	EphemeralStorage int64            `json:"ephemeralStorage,omitempty"`
	Extended         map[string]int64 `json:"extended,omitempty"`
}

// ExtraRequests sums the pod's requests beyond CPU and memory, nil when it has none. A
// container with a limit but no request requests its limit, as in Kubernetes (and an extended
// resource's request must equal its limit). Quantities were validated at admission; one that
// does not parse counts as zero.
func (s *PodSpec) ExtraRequests() *ExtraResources {
	var out *ExtraResources
	for i := range s.Containers {
		r := &s.Containers[i].Resources
		names := map[string]bool{}
		for n := range r.Requests {
			names[n] = true
		}
		for n := range r.Limits {
			names[n] = true
		}
		for n := range names {
			q := r.Requests[n]
			if q == "" {
				q = r.Limits[n]
			}
			switch {
			case n == ResourceEphemeralStorage:
				v, _ := ParseMemory(q)
				if out == nil {
					out = &ExtraResources{}
				}
				out.EphemeralStorage += v
			case IsExtendedResource(n):
				v, _ := ParseCount(q)
				if out == nil {
					out = &ExtraResources{}
				}
				if out.Extended == nil {
					out.Extended = map[string]int64{}
				}
				out.Extended[n] += v
			}
		}
	}
	return out
}
