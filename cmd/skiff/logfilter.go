package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// logOptions are `skiff events log`'s flags.
type logOptions struct {
	follow       bool
	json         bool
	since, until string
	types        []string
	selector     string
}

// checkTypes fails for an event type this build does not know, naming the ones it does.
func checkTypes(types []string) error {
	known := events.Types()
	for _, t := range types {
		if !slices.Contains(known, t) {
			slices.Sort(known)
			return fmt.Errorf("unknown event type %q (known: %s)", t, strings.Join(known, ", "))
		}
	}
	return nil
}

// logFilter decides which events `skiff events log` prints.
type logFilter struct {
	since, until *point
	types        map[string]bool
	selector     map[string]string
	// labels are the labels of each object (as logObject names it) that events so far gave it.
	labels  map[string]map[string]string
	started bool // the read has reached --since
}

func (a *app) newLogFilter(ctx context.Context, st *store.Store, o logOptions) (*logFilter, error) {
	lf := &logFilter{started: o.since == ""}
	now := a.Now()
	var bounds *logBounds
	boundsOf := func() (logBounds, error) {
		if bounds == nil {
			b, err := a.logBounds(ctx, st)
			if err != nil {
				return b, err
			}
			bounds = &b
		}
		return *bounds, nil
	}
	if o.since != "" {
		p, err := parsePoint("--since", o.since, now)
		if err != nil {
			return nil, err
		}
		lf.since = &p
		// A --since past the end is a mistake unless the log is followed into the future.
		if p.isSeq() && !o.follow {
			b, err := boundsOf()
			if err != nil {
				return nil, err
			}
			if p.seq > b.head {
				return nil, b.check(p)
			}
		}
	}
	if o.until != "" {
		p, err := parsePoint("--until", o.until, now)
		if err != nil {
			return nil, err
		}
		lf.until = &p
		b, err := boundsOf()
		if err != nil {
			return nil, err
		}
		if err := b.check(p); err != nil {
			return nil, err
		}
		if lf.since != nil {
			if err := ordered(*lf.since, p); err != nil {
				return nil, err
			}
		}
	}
	if len(o.types) > 0 {
		lf.types = map[string]bool{}
		for _, t := range o.types {
			lf.types[t] = true
		}
	}
	sel, err := parseSelector(o.selector)
	if err != nil {
		return nil, err
	}
	if len(sel) > 0 {
		lf.selector, lf.labels = sel, map[string]map[string]string{}
	}
	return lf, nil
}

// plain reports whether every event is printed: then events that do not decode are printed
// where they sit (what they are about and when is unknown, so a filter cannot keep them).
func (f *logFilter) plain() bool {
	return f.since == nil && f.until == nil && f.types == nil && f.selector == nil
}

// from is where the read starts: --since's sequence, unless labels must be learnt from the start.
func (f *logFilter) from() uint64 {
	if f.since != nil && f.since.isSeq() && f.selector == nil {
		return f.since.seq
	}
	return 0
}

// to is where the read ends, when --until is a sequence.
func (f *logFilter) to() uint64 {
	if f.until != nil && f.until.isSeq() {
		return f.until.seq
	}
	return 0
}

// keep says whether ev is printed, and whether the read ends before it.
func (f *logFilter) keep(ev *events.Event) (print, stop bool) {
	if f.until != nil && f.until.past(ev) {
		return false, true
	}
	if f.labels != nil {
		if l, ok := carriedLabels(ev.Data); ok {
			f.labels[logObject(ev)] = l
		}
	}
	if !f.started {
		if f.since.isSeq() {
			f.started = ev.Seq >= f.since.seq
		} else {
			f.started = !ev.Time.Before(f.since.time)
		}
		if !f.started {
			return false, false
		}
	}
	if f.types != nil && !f.types[ev.Type] {
		return false, false
	}
	if f.selector != nil {
		labels := f.labels[logObject(ev)]
		for k, v := range f.selector {
			if lv, ok := labels[k]; !ok || lv != v {
				return false, false
			}
		}
	}
	return true, false
}

// carriedLabels are the labels an event gives the object it is about, if it carries them.
func carriedLabels(p events.Payload) (map[string]string, bool) {
	switch p := p.(type) {
	case *events.PodCreated:
		return p.Pod.Metadata.Labels, true
	case *events.PodBound:
		return p.Pod.Metadata.Labels, true
	case *events.DeploymentApplied:
		return p.Deployment.Metadata.Labels, true
	case *events.ServiceApplied:
		return p.Service.Metadata.Labels, true
	case *events.NamespaceApplied:
		return p.Namespace.Metadata.Labels, true
	case *events.NodeRegistered:
		return p.Labels, true
	}
	return nil, false
}
