package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"skiff.dev/events"
)

// watch counts, from the log, what happens to one Deployment's pods: its DeploymentApplied,
// then each pod's PodCreated, PodScheduled and PodBound. Pods are the Deployment's by their
// owner reference (PodCreated); their later events are matched by UID.
//
// Two clocks: an event's own time (ev.Time) is when its writer decided it (a controller pass
// stamps every event of the pass with the pass's start, so 30,000 PodCreated of one pass share
// one time, however long they took to append), and "seen" is this process's clock when the
// event arrived, which also counts the time to append and deliver it.
type watch struct {
	namespace, name string
	replicas        int
	now             func() time.Time

	mu            sync.Mutex
	applied       time.Time
	pods          map[string]*podTimes // by UID
	bound         []time.Time          // event times of the pods' first PodBound, in arrival order
	scheduled     int
	unschedulable int
	lastCreated   time.Time // seen
	seenAll       time.Time // seen: the replicas-th PodBound
	// all is closed when replicas pods are bound.
	all chan struct{}
}

// podTimes is one pod's life so far; zero times have not happened.
type podTimes struct {
	name                       string
	created, scheduled, bound  time.Time // event times
	createdSeen, boundSeen     time.Time
	scheduledTwice, boundTwice bool
}

func newWatch(namespace, name string, replicas int, now func() time.Time) *watch {
	return &watch{namespace: namespace, name: name, replicas: replicas, now: now,
		pods: map[string]*podTimes{}, all: make(chan struct{})}
}

// filters are the subjects watch needs: the Deployment's, and its namespace's pod and bind
// subjects (one consumer, so they arrive in log order).
func (w *watch) filters() []string {
	return []string{
		events.ObjectSubject(events.KindDeployment, w.namespace, w.name),
		events.SubjectRoot + "." + events.KindPod + "." + w.namespace + ".>",
		events.SubjectRoot + "." + events.KindBind + ".*." + w.namespace + ".*",
	}
}

// handle folds one event; store.Follow calls it from one goroutine.
func (w *watch) handle(ev *events.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch d := ev.Data.(type) {
	case *events.DeploymentApplied:
		if w.applied.IsZero() && d.Deployment.Metadata.Name == w.name {
			w.applied = ev.Time
		}
	case *events.PodCreated:
		m := d.Pod.Metadata
		if ownedBy(m, w.name) && w.pods[m.UID] == nil {
			w.lastCreated = w.now()
			w.pods[m.UID] = &podTimes{name: m.Name, created: ev.Time, createdSeen: w.lastCreated}
		}
	case *events.PodScheduled:
		if p := w.pods[d.UID]; p != nil {
			if p.scheduled.IsZero() {
				p.scheduled = ev.Time
				w.scheduled++
			} else {
				p.scheduledTwice = true
			}
		}
	case *events.PodUnschedulable:
		if w.pods[d.UID] != nil {
			w.unschedulable++
		}
	case *events.PodBound:
		p := w.pods[d.Pod.Metadata.UID]
		switch {
		case p == nil:
		case !p.bound.IsZero():
			p.boundTwice = true
		default:
			p.bound, p.boundSeen = ev.Time, w.now()
			w.bound = append(w.bound, ev.Time)
			if len(w.bound) == w.replicas {
				w.seenAll = p.boundSeen
				close(w.all)
			}
		}
	}
}

func ownedBy(m events.ObjectMeta, deployment string) bool {
	for _, o := range m.OwnerReferences {
		if o.Kind == "Deployment" && o.Name == deployment {
			return true
		}
	}
	return false
}

// progress is how far the Deployment got, for progress lines and a run that timed out.
type progress struct {
	applied                            bool
	created, scheduled, bound, unsched int
	// lastCreated and lastBound are the newest such events' times after the apply.
	lastCreated, lastBound time.Duration
}

func (p progress) String() string {
	if !p.applied {
		return "no DeploymentApplied seen"
	}
	return fmt.Sprintf("created %d (last at +%s), scheduled %d, bound %d (last at +%s), unschedulable events %d",
		p.created, secs(p.lastCreated), p.scheduled, p.bound, secs(p.lastBound), p.unsched)
}

func (w *watch) progress() progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := progress{applied: !w.applied.IsZero(), created: len(w.pods), scheduled: w.scheduled,
		bound: len(w.bound), unsched: w.unschedulable}
	if !p.applied {
		return p
	}
	for _, pt := range w.pods {
		p.lastCreated = max(p.lastCreated, pt.created.Sub(w.applied))
	}
	if len(w.bound) > 0 {
		p.lastBound = slices.MaxFunc(w.bound, time.Time.Compare).Sub(w.applied)
	}
	return p
}

// timings are one run's numbers from the events' own times.
type timings struct {
	// applyToLast is DeploymentApplied → the last PodBound: the headline.
	applyToLast time.Duration
	// createPhase is the first → the last PodCreated: the deployments controller's part, as
	// its passes decided it.
	createPhase time.Duration
	// applyToFirstCreated is DeploymentApplied → the first PodCreated.
	applyToFirstCreated time.Duration
	// applyToP50 and applyToP99 are DeploymentApplied → the PodBound by which half and 99 % of
	// the pods were bound.
	applyToP50, applyToP99 time.Duration
	podsPerSec             float64
}

// timings computes the run's numbers; it needs every pod bound.
func (w *watch) timings() (timings, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.applied.IsZero() || len(w.bound) < w.replicas || len(w.pods) == 0 {
		return timings{}, fmt.Errorf("incomplete: applied %v, %d created, %d of %d bound", !w.applied.IsZero(), len(w.pods), len(w.bound), w.replicas)
	}
	var created []time.Time
	for _, p := range w.pods {
		created = append(created, p.created)
	}
	bound := slices.Clone(w.bound)
	slices.SortFunc(created, time.Time.Compare)
	slices.SortFunc(bound, time.Time.Compare)
	t := timings{
		applyToLast:         bound[len(bound)-1].Sub(w.applied),
		createPhase:         created[len(created)-1].Sub(created[0]),
		applyToFirstCreated: created[0].Sub(w.applied),
		applyToP50:          quantile(bound, 50).Sub(w.applied),
		applyToP99:          quantile(bound, 99).Sub(w.applied),
	}
	t.podsPerSec = float64(len(bound)) / t.applyToLast.Seconds()
	return t, nil
}

// quantile is the earliest time by which percent % of the sorted times had happened: the k-th
// smallest, k = ⌈percent·n/100⌉ (at least 1), in integers so 99 % of 30,000 is exactly 29,700.
func quantile(sorted []time.Time, percent int) time.Time {
	k := max((percent*len(sorted)+99)/100, 1)
	return sorted[k-1]
}

// createdPasses lists the PodCreated event times with how many pods each had: one line per
// deployments-controller pass that created pods, oldest first, at most limit of them.
func (w *watch) createdPasses(limit int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	count := map[time.Time]int{}
	for _, p := range w.pods {
		count[p.created]++
	}
	times := slices.SortedFunc(func(yield func(time.Time) bool) {
		for t := range count {
			if !yield(t) {
				return
			}
		}
	}, time.Time.Compare)
	var parts []string
	for i, t := range times {
		if i == limit {
			parts = append(parts, fmt.Sprintf("… %d more", len(times)-limit))
			break
		}
		parts = append(parts, fmt.Sprintf("%d at +%s", count[t], secs(t.Sub(w.applied))))
	}
	return strings.Join(parts, ", ")
}

// tail describes the pods bound after the 99 % mark: how many, and the limit last bound with
// their created, scheduled and bound times after the apply (event times; created also seen).
func (w *watch) tail(limit int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	bound := slices.Clone(w.bound)
	slices.SortFunc(bound, time.Time.Compare)
	if len(bound) == 0 {
		return "no pod bound"
	}
	p99 := quantile(bound, 99)
	var late []*podTimes
	twice := 0
	for _, p := range w.pods {
		if p.bound.After(p99) {
			late = append(late, p)
		}
		if p.scheduledTwice || p.boundTwice {
			twice++
		}
	}
	slices.SortFunc(late, func(a, b *podTimes) int { return b.bound.Compare(a.bound) })
	var b strings.Builder
	fmt.Fprintf(&b, "%d pods bound after the 99%% mark (+%s)", len(late), secs(p99.Sub(w.applied)))
	if twice > 0 {
		fmt.Fprintf(&b, "; %d pods scheduled or bound twice", twice)
	}
	for _, p := range late[:min(len(late), limit)] {
		fmt.Fprintf(&b, "\n    %s: created +%s (seen +%s), scheduled +%s, bound +%s",
			p.name, secs(p.created.Sub(w.applied)), secs(p.createdSeen.Sub(w.applied)),
			secs(p.scheduled.Sub(w.applied)), secs(p.bound.Sub(w.applied)))
	}
	return b.String()
}
