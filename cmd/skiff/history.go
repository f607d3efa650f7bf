package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/table"
)

// pointHelp is how every flag that takes TIME|SEQ explains itself.
const pointHelp = "a sequence number (a bare integer: 120) or a time: RFC 3339 (2025-03-01T12:00:00Z) or a duration ago (10m)"

// atHelp is --at's help: it says that the log is replayed, which is what it costs.
const atHelp = "show the cluster as it was at this point of its log, replayed by the CLI from the log's start (the further in, the longer): " + pointHelp

// point is a place in the log as a user names it: a sequence number, or a time. A time means
// the last event written at or before it: the log is read in order and the first event whose
// time is after it ends the range, so the clocks of the writers need not agree exactly.
type point struct {
	name string    // the flag or argument it came from, for messages
	seq  uint64    // > 0 for a sequence
	time time.Time // otherwise
}

func (p point) isSeq() bool { return p.seq > 0 }

func (p point) String() string {
	if p.isSeq() {
		return fmt.Sprintf("%s %d", p.name, p.seq)
	}
	return p.name + " " + p.time.UTC().Format(time.RFC3339)
}

// past reports whether ev lies beyond p.
func (p point) past(ev *events.Event) bool {
	if p.isSeq() {
		return ev.Seq > p.seq
	}
	return ev.Time.After(p.time)
}

// parsePoint reads TIME|SEQ. A bare integer is a sequence (a duration always has a unit and a
// time always has a date), anything else a time: RFC 3339, or a duration meaning that long
// before now.
func parsePoint(name, s string, now time.Time) (point, error) {
	p := point{name: name}
	if s != "" && strings.Trim(s, "0123456789") == "" {
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil || seq == 0 {
			return p, errorf(events.ErrInvalidArgument, "%s %s: sequences start at 1", name, s)
		}
		p.seq = seq
		return p, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		p.time = t
		return p, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		p.time = now.Add(-d)
		return p, nil
	}
	return p, errorf(events.ErrInvalidArgument, "%s %q is neither a sequence (120) nor a time (2025-03-01T12:00:00Z, or 10m for ten minutes ago)", name, s)
}

// ordered fails when a comes after b, where that can be told without reading the log (both
// sequences or both times).
func ordered(a, b point) error {
	if (a.isSeq() && b.isSeq() && a.seq > b.seq) || (!a.isSeq() && !b.isSeq() && a.time.After(b.time)) {
		return errorf(events.ErrInvalidArgument, "%s is after %s: give the earlier point first", a, b)
	}
	return nil
}

// logBounds are the first and last events of the log.
type logBounds struct {
	first, head uint64
	firstTime   time.Time
}

var errStop = errors.New("stop reading")

func (a *app) logBounds(ctx context.Context, st *store.Store) (logBounds, error) {
	var b logBounds
	head, err := st.Head(ctx)
	if err != nil {
		return b, fmt.Errorf("find the end of the event log: %w", err)
	}
	b.head = head
	if head == 0 {
		return b, nil
	}
	err = st.Read(ctx, store.ReadOptions{Raw: true, To: head}, func(ev *events.Event) error {
		b.first, b.firstTime = ev.Seq, ev.Time
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return b, fmt.Errorf("find the start of the event log: %w", err)
	}
	return b, nil
}

// check fails, with one line that says why, for a point outside the log: a sequence past its
// end or before its start, a time before its first event. A time after the last event is the
// cluster as it is now.
func (b logBounds) check(p point) error {
	switch {
	case b.head == 0:
		return errorf(events.ErrInvalidArgument, "%s: the event log is empty", p)
	case p.isSeq() && p.seq > b.head:
		return errorf(events.ErrInvalidArgument, "%s is past the end of the log: its last sequence is %d", p, b.head)
	case p.isSeq() && p.seq < b.first:
		return errorf(events.ErrInvalidArgument, "%s is no longer in the log: its first sequence is %d", p, b.first)
	case !p.isSeq() && p.time.Before(b.firstTime):
		return errorf(events.ErrInvalidArgument, "%s is before the first event in the log (sequence %d at %s)",
			p, b.first, b.firstTime.UTC().Format(time.RFC3339))
	}
	return nil
}

// folded is the cluster's state somewhere in the log, and how it got there.
type folded struct {
	*state.State
	last      *events.Event // the last event applied, nil before the first
	unapplied int           // events that did not apply (they changed nothing)
	firstErr  error
}

// errFoldDone ends the read at the first event past the last point.
var errFoldDone = errors.New("reached the last point")

// foldLog folds the log from its start, with the fold every service uses, and calls at(i, f)
// when it reaches points[i], in order: one read for every point, so a diff never folds the
// same events twice. The read ends at the first event past the last point; a point reached by
// none of the events is handed the state at that end. f changes once at returns: at must copy
// what it keeps.
func foldLog(ctx context.Context, st *store.Store, points []point, at func(i int, f *folded) error) error {
	f := &folded{State: state.New()}
	next := 0
	last := points[len(points)-1]
	opts := store.ReadOptions{OnPoison: func(subject string, seq uint64, _ error) { f.Skip(subject, seq) }}
	if last.isSeq() {
		opts.To = last.seq
	}
	err := st.Read(ctx, opts, func(ev *events.Event) error {
		if last.past(ev) {
			return errFoldDone
		}
		for ; next < len(points) && points[next].past(ev); next++ {
			if err := at(next, f); err != nil {
				return err
			}
		}
		if err := f.Apply(ev); err != nil {
			if f.unapplied++; f.firstErr == nil {
				f.firstErr = err
			}
		}
		f.last = ev
		return nil
	})
	if err != nil && !errors.Is(err, errFoldDone) {
		return fmt.Errorf("replay the event log: %w", err)
	}
	for ; next < len(points); next++ {
		if err := at(next, f); err != nil {
			return err
		}
	}
	return nil
}

// warn says on stderr how many events did not apply: the state shown lacks what they did.
func (a *app) warnUnapplied(f *folded) {
	if f.unapplied > 0 {
		fmt.Fprintf(a.Stderr, "warning: %d events did not apply and changed nothing; the first: %s\n", f.unapplied, message(f.firstErr))
	}
}

// view is where a read command gets objects from: the scheduler (live), or a fold of the log up
// to a point that the CLI made itself (--at). Both answer the same api.GetRequest with the
// same table package, so what `get` and `describe` print is the same in form.
type view struct {
	a    *app
	fold *state.State // nil: live
	// With a fold: the point asked for, the last sequence folded, and the time ages are
	// printed as of (the point's time, or its event's).
	at   point
	seq  uint64
	when time.Time
}

// openView folds the log to the point at names ("" for the live view).
func (a *app) openView(ctx context.Context, at string) (*view, error) {
	if at == "" {
		return &view{a: a}, nil
	}
	p, err := parsePoint("--at", at, a.Now())
	if err != nil {
		return nil, err
	}
	st, err := a.logStore(ctx)
	if err != nil {
		return nil, err
	}
	b, err := a.logBounds(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := b.check(p); err != nil {
		return nil, err
	}
	v := &view{a: a, at: p}
	err = foldLog(ctx, st, []point{p}, func(_ int, f *folded) error {
		v.fold, v.seq = f.State, f.Seq
		v.when = p.time
		if p.isSeq() && f.last != nil {
			v.when = f.last.Time
		}
		a.warnUnapplied(f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// live reports whether the view asks the scheduler.
func (v *view) live() bool { return v.fold == nil }

// now is the time ages are printed as of.
func (v *view) now() time.Time {
	if v.live() {
		return v.a.Now()
	}
	return v.when
}

// upTo is the last sequence of the view, 0 for the whole log.
func (v *view) upTo() uint64 {
	if v.live() {
		return 0
	}
	return v.seq
}

// query answers req as the scheduler would have at the view's point.
func (v *view) query(ctx context.Context, req api.GetRequest) (*answer, error) {
	if v.live() {
		return v.a.query(ctx, req)
	}
	opts := table.Options{Namespace: req.Namespace, AllNamespaces: req.AllNamespaces, Name: req.Name, Selector: req.Selector, Wide: req.Wide}
	ans := &answer{seq: v.seq}
	if req.Table {
		ans.columns = table.Columns(req.Kind, req.Wide, req.AllNamespaces)
		ans.rows = table.Rows(v.fold, req.Kind, opts, v.when)
	} else {
		items, err := table.Objects(v.fold, req.Kind, opts)
		if err != nil {
			return nil, err
		}
		ans.items = items
	}
	if req.Name != "" && len(ans.rows) == 0 && len(ans.items) == 0 {
		return nil, fmt.Errorf("%s %q not found: %w", req.Kind, req.Name, events.ErrNotFound)
	}
	return ans, nil
}

// notFound is the answer for a named object the view does not have: kubectl's words when live;
// when folded, that it did not exist then, and when "then" was.
func (v *view) notFound(res table.Resource, ns, name string) error {
	if v.live() {
		return notFound(res, name)
	}
	obj := res.Ref(name)
	if res.Namespaced {
		obj += " in namespace " + ns
	}
	return errorf(events.ErrNotFound, "%s did not exist at sequence %d (%s)", obj, v.seq, v.when.UTC().Format(time.RFC3339))
}
