package startup

import (
	"math"
	"sort"
	"time"

	"skiff.dev/events"
)

// Pod is one pod's way from creation to running, as the log tells it. A zero time means the
// event is not in the events given.
type Pod struct {
	Namespace, Name, UID string
	Created              time.Time // PodCreated
	Scheduled            time.Time // PodScheduled
	Bound                time.Time // PodBound on the node's subject
	FirstReport          time.Time // the node's first PodStatusReported, whatever its phase
	Running              time.Time // the first PodStatusReported with phase Running

	// From the node agent's debug log (see AddAgentLog), when given.
	SandboxStarted   time.Time // "sandbox started": the pause container runs
	NetworkUp        time.Time // "pod network set up": CNI ADD returned
	ContainerCreated time.Time // "container created" (the first one): the app container exists
}

// Latency is Running − Created, and false while the pod has not run (or was not created in the
// events given).
func (p Pod) Latency() (time.Duration, bool) {
	if p.Created.IsZero() || p.Running.IsZero() {
		return 0, false
	}
	return p.Running.Sub(p.Created), true
}

// Stage is one step of the way, from one event to the next.
type Stage struct {
	Name     string
	From, To func(Pod) time.Time
}

// Stages split a pod's start-up at the events it passes.
var Stages = []Stage{
	{"schedule", func(p Pod) time.Time { return p.Created }, func(p Pod) time.Time { return p.Scheduled }},
	{"bind", func(p Pod) time.Time { return p.Scheduled }, func(p Pod) time.Time { return p.Bound }},
	{"node", func(p Pod) time.Time { return p.Bound }, func(p Pod) time.Time { return p.Running }},
}

// NodeStages split the node's part at the agent's debug log lines (AddAgentLog).
var NodeStages = []Stage{
	{"sandbox", func(p Pod) time.Time { return p.Bound }, func(p Pod) time.Time { return p.SandboxStarted }},
	{"network", func(p Pod) time.Time { return p.SandboxStarted }, func(p Pod) time.Time { return p.NetworkUp }},
	{"create", func(p Pod) time.Time { return p.NetworkUp }, func(p Pod) time.Time { return p.ContainerCreated }},
	{"start", func(p Pod) time.Time { return p.ContainerCreated }, func(p Pod) time.Time { return p.Running }},
}

// FromEvents follows the pods created in evs (which must be in stream order) and returns them
// in order of creation. Events of pods created before evs start are ignored, as are events of
// an earlier pod of the same name (another UID).
func FromEvents(evs []*events.Event) []Pod {
	byUID := map[string]*Pod{}
	var order []string
	for _, ev := range evs {
		var uid string
		switch d := ev.Data.(type) {
		case *events.PodCreated:
			uid = d.Pod.Metadata.UID
			if _, dup := byUID[uid]; !dup {
				byUID[uid] = &Pod{Namespace: d.Pod.Metadata.Namespace, Name: d.Pod.Metadata.Name, UID: uid, Created: ev.Time}
				order = append(order, uid)
			}
			continue
		case *events.PodScheduled:
			uid = d.UID
		case *events.PodBound:
			uid = d.Pod.Metadata.UID
		case *events.PodStatusReported:
			uid = d.UID
		default:
			continue
		}
		p := byUID[uid]
		if p == nil {
			continue
		}
		switch d := ev.Data.(type) {
		case *events.PodScheduled:
			setFirst(&p.Scheduled, ev.Time)
		case *events.PodBound:
			setFirst(&p.Bound, ev.Time)
		case *events.PodStatusReported:
			setFirst(&p.FirstReport, ev.Time)
			if d.Status.Phase == events.PodRunning {
				setFirst(&p.Running, ev.Time)
			}
		}
	}
	out := make([]Pod, 0, len(order))
	for _, uid := range order {
		out = append(out, *byUID[uid])
	}
	return out
}

func setFirst(t *time.Time, at time.Time) {
	if t.IsZero() {
		*t = at
	}
}

// Summary describes a set of latencies.
type Summary struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize computes the nearest-rank percentiles of ds: P99 of fewer than 100 samples is
// their maximum.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return Summary{N: len(s), P50: Percentile(s, 0.50), P99: Percentile(s, 0.99), Max: s[len(s)-1]}
}

// Percentile is the nearest-rank q-quantile (0 < q ≤ 1) of sorted ds: the smallest value with
// at least q of the samples at or below it.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Latencies are the start-up latencies of the pods that ran.
func Latencies(pods []Pod) []time.Duration {
	var out []time.Duration
	for _, p := range pods {
		if d, ok := p.Latency(); ok {
			out = append(out, d)
		}
	}
	return out
}

// StageLatencies are the durations of one stage over the pods that passed both its ends.
func StageLatencies(pods []Pod, s Stage) []time.Duration {
	var out []time.Duration
	for _, p := range pods {
		from, to := s.From(p), s.To(p)
		if !from.IsZero() && !to.IsZero() {
			out = append(out, to.Sub(from))
		}
	}
	return out
}
