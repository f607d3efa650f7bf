package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/table"

	"skiff.dev/cmd/skiff/internal/printer"
	"skiff.dev/cmd/skiff/internal/summary"
)

func init() {
	register(func(a *app) *cobra.Command {
		return group("events", "Read the cluster's event log", newEventsLogCmd(a), newEventsReplayCmd(a), newEventsDiffCmd(a), newEventsTraceCmd(a), newEventsVerifyCmd(a))
	})
}

func newEventsLogCmd(a *app) *cobra.Command {
	var o logOptions
	var output string
	cmd := &cobra.Command{
		Use:   "log [KIND/NAME]",
		Short: "Print the event log, or one object's history",
		Long: "Print the event log, one event per line: sequence, time, type, object, actor and what it did.\n" +
			"With KIND/NAME, only that object's history (for a pod: also its binding and the status its node\n" +
			"reported); with -n and no object, only that namespace.\n\n" +
			"--since and --until take " + pointHelp + ".\n" +
			"--since starts at that sequence, or at the first event written at or after that time; --until\n" +
			"ends at that sequence, or before the first event written after that time.\n\n" +
			"-l matches the labels of the object an event is about, as the last event that carries them\n" +
			"gave them: PodCreated and PodBound (for every event of that pod, its binding and status\n" +
			"included), DeploymentApplied, ServiceApplied, NamespaceApplied, NodeRegistered. Events about\n" +
			"objects no event labels (Endpoints, leader terms) never match; -l reads the log from its start.",
		Example: "  skiff events log\n  skiff events log pod/web-7d4b9c6f5-x2x9q\n  skiff events log -f -o json\n" +
			"  skiff events log --since 1h --type PodScheduled,PodUnschedulable\n  skiff events log -l app=web --since 1200 --until 1500",
		Args: argsRange(0, 1, "[KIND/NAME]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != printer.JSON {
				return usage(cmd, "unknown output format %q: events log prints lines, or json", output)
			}
			o.json = output == printer.JSON
			if o.follow && o.until != "" {
				return usage(cmd, "--until ends the log and -f follows it: give one of them")
			}
			if err := checkTypes(o.types); err != nil {
				return usage(cmd, "%v", err)
			}
			var filters []string
			switch {
			case len(args) == 1:
				kind, name, ok := strings.Cut(args[0], "/")
				if !ok || name == "" {
					return usage(cmd, "name the object as KIND/NAME, e.g. pod/web-1, not %q", args[0])
				}
				res, err := resource(cmd, kind)
				if err != nil {
					return err
				}
				filters = objectFilters(res, namespaceOf(res, a.namespace), name)
			case cmd.Flags().Changed("namespace"):
				filters = namespaceFilters(a.namespace)
			}
			return a.eventsLog(cmd.Context(), filters, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new events as they are written")
	f.StringVarP(&output, "output", "o", "", "json: print each event's envelope as one JSON line")
	f.StringVar(&o.since, "since", "", "start at this point (TIME|SEQ)")
	f.StringVar(&o.until, "until", "", "end at this point (TIME|SEQ)")
	f.StringSliceVar(&o.types, "type", nil, "only events of these types (repeat, or a comma-separated list: PodScheduled,PodBound)")
	f.StringVarP(&o.selector, "selector", "l", "", "only events about objects with these labels (key=value,...)")
	return cmd
}

// namespaceFilters are the subjects of every event about objects in ns.
func namespaceFilters(ns string) []string {
	var out []string
	for _, r := range table.Resources {
		if r.Namespaced {
			out = append(out, events.SubjectRoot+"."+r.Subject+"."+ns+".*")
		}
	}
	return append(out,
		events.SubjectRoot+"."+events.KindBind+".*."+ns+".*",
		events.SubjectRoot+"."+events.KindStatus+".*."+ns+".*")
}

func (a *app) eventsLog(ctx context.Context, filters []string, o logOptions) error {
	st, err := a.logStore(ctx)
	if err != nil {
		return err
	}
	lf, err := a.newLogFilter(ctx, st, o)
	if err != nil {
		return err
	}
	w := &logWriter{w: a.Stdout, json: o.json}
	if !o.json {
		w.header()
	}
	onPoison := func(subject string, seq uint64, err error) {
		if lf.plain() {
			w.poison(subject, seq, err)
		}
	}
	if o.follow {
		err = st.Follow(ctx, store.FollowOptions{Filters: filters, From: lf.from(), OnPoison: onPoison}, func(ev *events.Event) {
			if print, _ := lf.keep(ev); print {
				w.event(ev)
			}
		})
		if ctx.Err() != nil {
			return w.err
		}
	} else {
		err = st.Read(ctx, store.ReadOptions{Filters: filters, From: lf.from(), To: lf.to(), OnPoison: onPoison}, func(ev *events.Event) error {
			print, stop := lf.keep(ev)
			if stop {
				return errStop
			}
			if print {
				w.event(ev)
			}
			return w.err
		})
		if errors.Is(err, errStop) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("read the event log: %w", err)
	}
	return w.err
}

// Widths of the log's columns. Fixed, not fitted, because a followed log is printed before
// its later lines exist; a longer cell pushes the rest of its own line only.
const (
	seqWidth    = 7
	timeWidth   = 24
	typeWidth   = 27
	objectWidth = 36
	actorWidth  = 18
	logTime     = "2006-01-02T15:04:05.000Z07:00"
)

// logWriter prints events, remembering the first write error.
type logWriter struct {
	w    io.Writer
	json bool
	err  error
}

func (l *logWriter) header() {
	l.line("SEQ", "TIME", "TYPE", "OBJECT", "ACTOR", "SUMMARY")
}

func (l *logWriter) line(seq, when, typ, obj, actor, sum string) {
	if l.err != nil {
		return
	}
	var b strings.Builder
	for _, c := range []struct {
		s string
		w int
	}{{seq, seqWidth}, {when, timeWidth}, {typ, typeWidth}, {obj, objectWidth}, {actor, actorWidth}} {
		b.WriteString(c.s)
		b.WriteString(strings.Repeat(" ", max(2, c.w+2-len(c.s))))
	}
	b.WriteString(sum)
	_, l.err = io.WriteString(l.w, strings.TrimRight(b.String(), " ")+"\n")
}

// logEntry is an event as -o json prints it: the envelope, plus where it sits in the log.
type logEntry struct {
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	events.Envelope
}

func (l *logWriter) event(ev *events.Event) {
	if l.err != nil {
		return
	}
	if l.json {
		b, err := json.Marshal(logEntry{Seq: ev.Seq, Subject: ev.Subject, Envelope: ev.Envelope})
		if err != nil {
			l.err = fmt.Errorf("encode event %d: %w", ev.Seq, err)
			return
		}
		_, l.err = l.w.Write(append(b, '\n'))
		return
	}
	l.line(fmt.Sprint(ev.Seq), ev.Time.UTC().Format(logTime), ev.Type, logObject(ev), ev.Actor, summary.Of(ev))
}

// poison prints an event that does not decode where it sits, rather than hiding a gap.
func (l *logWriter) poison(subject string, seq uint64, err error) {
	if l.json {
		b, _ := json.Marshal(map[string]any{"seq": seq, "subject": subject, "error": err.Error()})
		if l.err == nil {
			_, l.err = l.w.Write(append(b, '\n'))
		}
		return
	}
	l.line(fmt.Sprint(seq), "-", "?", subject, "-", "does not decode: "+message(err))
}

// logObject names the object an event is about from its subject (bind and status events are
// about a pod), which is what the log was filtered by.
func logObject(ev *events.Event) string {
	sub, err := events.ParseSubject(ev.Subject)
	if err != nil {
		return ev.Subject
	}
	kind := sub.Kind
	if kind == events.KindBind || kind == events.KindStatus {
		kind = events.KindPod
	}
	if sub.Namespace == events.ClusterScope {
		return kind + "/" + sub.Name
	}
	return kind + "/" + sub.Namespace + "/" + sub.Name
}

func newEventsReplayCmd(a *app) *cobra.Command {
	var (
		toSeq        uint64
		at           string
		output       string
		fromSnapshot string
	)
	cmd := &cobra.Command{
		Use:   "replay [KIND] [--to-seq N | --at TIME] [--from-snapshot[=SEQ]]",
		Short: "Show the cluster as it was at a point of its log",
		Long: "Fold the event log up to a sequence number, or up to a time, with the same fold every service\n" +
			"uses, and print the state the cluster was in then: tables of nodes, deployments, pods and\n" +
			"services (or of KIND), or every object with -o json|yaml. Ages are as of that moment.\n" +
			"TIME is RFC 3339 (2025-03-01T12:00:00Z) or a duration ago (15m).",
		Example: "  skiff events replay --to-seq 120\n  skiff events replay pods --at 10m\n  skiff events replay --at 2025-03-01T12:00:00Z -o json",
		Args:    argsRange(0, 1, "[KIND]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if toSeq > 0 && at != "" {
				return usage(cmd, "give --to-seq or --at, not both")
			}
			if _, _, err := parseFromSnapshot(fromSnapshot); err != nil {
				return usage(cmd, "%v", err)
			}
			switch output {
			case "", "wide", printer.JSON, printer.YAML:
			default:
				return usage(cmd, "unknown output format %q: use wide, json or yaml", output)
			}
			var until time.Time
			if at != "" {
				t, err := parseAt(at, a.Now())
				if err != nil {
					return usage(cmd, "%v", err)
				}
				until = t
			}
			kinds := []string{table.Nodes, table.Deployments, table.Pods, table.Services}
			if output == printer.JSON || output == printer.YAML {
				kinds = kindsOf(table.Resources)
			}
			if len(args) == 1 {
				res, err := resource(cmd, args[0])
				if err != nil {
					return err
				}
				kinds = []string{res.Plural}
			}
			ns := ""
			if cmd.Flags().Changed("namespace") {
				ns = a.namespace
			}
			return a.replay(cmd.Context(), replayOptions{toSeq: toSeq, until: until, kinds: kinds, namespace: ns, output: output,
				fromSnapshot: fromSnapshot})
		},
	}
	cmd.Flags().Uint64Var(&toSeq, "to-seq", 0, "replay up to and including this sequence")
	cmd.Flags().StringVar(&at, "at", "", "replay the events written up to this time")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml")
	cmd.Flags().StringVar(&fromSnapshot, "from-snapshot", "", "start from the newest snapshot at or before the point (--from-snapshot=SEQ: the one at SEQ) and fold only the log after it")
	cmd.Flags().Lookup("from-snapshot").NoOptDefVal = fromSnapshotNewest
	return cmd
}

func kindsOf(rs []table.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Plural)
	}
	return out
}

// parseAt reads --at: an RFC 3339 time, or a duration meaning that long before now.
func parseAt(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--at %q: want a time like 2025-03-01T12:00:00Z or a duration ago like 15m", s)
}

type replayOptions struct {
	toSeq     uint64
	until     time.Time
	kinds     []string
	namespace string // "" for all
	output    string
	// fromSnapshot is --from-snapshot: "", "newest" or a sequence.
	fromSnapshot string
}

// errReplayDone stops the read at the first event past --at.
var errReplayDone = errors.New("replay reached --at")

func (a *app) replay(ctx context.Context, o replayOptions) error {
	st, err := a.logStore(ctx)
	if err != nil {
		return err
	}
	fold, foldTime, err := a.replayStart(ctx, st, o)
	if err != nil {
		return err
	}
	var last *events.Event
	var unapplied int
	var firstErr error
	err = st.Read(ctx, store.ReadOptions{
		From:     fold.Seq + 1,
		To:       o.toSeq,
		OnPoison: func(subject string, seq uint64, _ error) { fold.Skip(subject, seq) },
	}, func(ev *events.Event) error {
		if !o.until.IsZero() && ev.Time.After(o.until) {
			return errReplayDone
		}
		if err := fold.Apply(ev); err != nil {
			unapplied++
			if firstErr == nil {
				firstErr = err
			}
		}
		last = ev
		return nil
	})
	if err != nil && !errors.Is(err, errReplayDone) {
		return fmt.Errorf("replay the event log: %w", err)
	}
	// Ages are as of the moment replayed to: that is what `get` would have printed then.
	now := a.Now()
	switch {
	case !o.until.IsZero():
		now = o.until
	case o.toSeq > 0 && last != nil:
		now = last.Time
	case o.toSeq > 0 && !foldTime.IsZero():
		now = foldTime
	}
	switch {
	case last == nil && fold.Seq > 0:
		fmt.Fprintf(a.Stderr, "Replayed the log up to sequence %d (the snapshot's).\n", fold.Seq)
	case last == nil:
		fmt.Fprintln(a.Stderr, "The log has no events up to that point: the cluster was empty.")
	default:
		fmt.Fprintf(a.Stderr, "Replayed the log up to sequence %d (%s).\n", fold.Seq, last.Time.UTC().Format(time.RFC3339))
	}
	if unapplied > 0 {
		fmt.Fprintf(a.Stderr, "warning: %d events did not apply and changed nothing; the first: %s\n", unapplied, message(firstErr))
	}
	if o.output == printer.JSON || o.output == printer.YAML {
		items, err := replayObjects(fold, o)
		if err != nil {
			return err
		}
		return printer.WriteList(a.Stdout, o.output, items)
	}
	return a.replayTables(fold, o, now)
}

// replayTables prints one table per kind, names qualified by kind as `kubectl get all` does so
// that the tables can be told apart, and a blank line between them.
func (a *app) replayTables(fold *state.State, o replayOptions, now time.Time) error {
	printed := 0
	for _, kind := range o.kinds {
		res, _ := table.Lookup(kind)
		opts := table.Options{AllNamespaces: o.namespace == "" && res.Namespaced, Namespace: o.namespace, Wide: o.output == "wide"}
		rows := table.Rows(fold, kind, opts, now)
		if len(rows) == 0 {
			continue
		}
		cols := table.Columns(kind, opts.Wide, opts.AllNamespaces)
		nameCol := 0
		if opts.AllNamespaces {
			nameCol = 1
		}
		for _, r := range rows {
			r[nameCol] = res.Ref(r[nameCol])
		}
		if printed > 0 {
			fmt.Fprintln(a.Stdout)
		}
		if err := printer.NewTable(cols, rows).Write(a.Stdout, cols, rows); err != nil {
			return err
		}
		printed++
	}
	if printed == 0 {
		fmt.Fprintln(a.Stderr, "No resources found")
	}
	return nil
}

// replayObjects lists the objects of the folded state in the Kubernetes shape (apiVersion and
// kind set, whatever the event that made them carried), kinds in order, each sorted by
// namespace and name.
func replayObjects(fold *state.State, o replayOptions) ([]json.RawMessage, error) {
	var objs []any
	for _, kind := range o.kinds {
		switch kind {
		case table.Pods:
			for _, k := range keysIn(fold.Pods, o.namespace) {
				p := fold.Pods[k].Pod
				p.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Pod"}
				objs = append(objs, &p)
			}
		case table.Deployments:
			for _, k := range keysIn(fold.Deployments, o.namespace) {
				d := fold.Deployments[k].Deployment
				d.TypeMeta = events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
				objs = append(objs, &d)
			}
		case table.Services:
			for _, k := range keysIn(fold.Services, o.namespace) {
				sv := fold.Services[k].Service
				sv.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Service"}
				objs = append(objs, &sv)
			}
		case table.Endpoints:
			for _, k := range keysIn(fold.Endpoints, o.namespace) {
				e := *fold.Endpoints[k]
				e.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Endpoints"}
				objs = append(objs, &e)
			}
		case table.Nodes:
			for _, name := range slices.Sorted(maps.Keys(fold.Nodes)) {
				n := fold.Nodes[name].Node
				n.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Node"}
				objs = append(objs, &n)
			}
		case table.Namespaces:
			for _, name := range slices.Sorted(maps.Keys(fold.Namespaces)) {
				ns := *fold.Namespaces[name]
				ns.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
				objs = append(objs, &ns)
			}
		}
	}
	return printer.Marshal(objs...)
}

// keysIn returns the keys in namespace ns ("" for all), sorted by namespace and name.
func keysIn[T any](m map[state.Key]T, ns string) []state.Key {
	keys := make([]state.Key, 0, len(m))
	for k := range m {
		if ns == "" || k.Namespace == ns {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b state.Key) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return keys
}
