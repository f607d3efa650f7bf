package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/table"

	"skiff.dev/cmd/skiff/internal/printer"
)

func init() { register(newGetCmd) }

type getOptions struct {
	allNamespaces bool
	selector      string
	output        string
	watch         bool
	at            string
}

func newGetCmd(a *app) *cobra.Command {
	var o getOptions
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List objects of a kind, or show one",
		Long: "List objects of a kind (pods, deployments, services, endpoints, nodes, namespaces; kubectl's\n" +
			"short names work too), or show one by name.\n\n" +
			"With --at, show them as they were at that point of the log: a sequence number (a bare integer)\n" +
			"or a time (RFC 3339, or a duration ago such as 10m). The CLI replays the log from its start up\n" +
			"to that point itself, so --at reads the whole log before it: the further in, the longer it takes.",
		Example: "  skiff get pods\n  skiff get deploy web -o yaml\n  skiff get po -A -l app=web -o wide\n  skiff get pods -w\n" +
			"  skiff get pods --at 1200\n  skiff get deploy web --at 2025-03-01T12:00:00Z -o yaml\n  skiff get pods --at 10m",
		Args: argsRange(1, 2, "KIND [NAME]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, name, err := kindAndName(cmd, args, false)
			if err != nil {
				return err
			}
			switch o.output {
			case "", "wide", "name", printer.JSON, printer.YAML:
			default:
				return usage(cmd, "unknown output format %q: use wide, name, json or yaml", o.output)
			}
			if o.watch && o.at != "" {
				return usage(cmd, "--at shows the past and -w follows the present: give one of them")
			}
			return a.get(cmd.Context(), res, name, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list objects of every namespace")
	f.StringVarP(&o.selector, "selector", "l", "", "only objects with these labels (key=value,...)")
	f.StringVarP(&o.output, "output", "o", "", "output format: wide, name, json or yaml")
	f.BoolVarP(&o.watch, "watch", "w", false, "after listing, print a row every time an object changes")
	f.StringVar(&o.at, "at", "", atHelp)
	return cmd
}

func (a *app) get(ctx context.Context, res table.Resource, name string, o getOptions) error {
	sel, err := parseSelector(o.selector)
	if err != nil {
		return err
	}
	asTable := o.output == "" || o.output == "wide" || o.output == "name"
	req := api.GetRequest{
		Kind:          res.Plural,
		Namespace:     namespaceOf(res, a.namespace),
		AllNamespaces: o.allNamespaces && res.Namespaced,
		Name:          name,
		Selector:      sel,
		Table:         asTable,
		Wide:          o.output == "wide",
	}
	v, err := a.openView(ctx, o.at)
	if err != nil {
		return err
	}
	ans, err := v.query(ctx, req)
	if name != "" && errors.Is(err, events.ErrNotFound) {
		return v.notFound(res, req.Namespace, name)
	}
	if err != nil {
		return err
	}
	n := len(ans.items)
	if asTable {
		n = len(ans.rows)
	}
	if n == 0 && name != "" {
		return v.notFound(res, req.Namespace, name)
	}
	out := &watchOutput{format: o.output}
	switch {
	case n == 0 && name == "" && !o.watch && (o.output == printer.JSON || o.output == printer.YAML):
		// An empty List, as kubectl prints: scripts read .items whatever the count.
		err = printer.WriteList(a.Stdout, o.output, nil)
	case n == 0:
		a.noResources(res, req)
		if o.output == "" || o.output == "wide" {
			// The header waits for the first row, as kubectl's watch does.
			out.tab, out.header = printer.NewTable(ans.columns, nil), ans.columns
		}
	case o.output == "name":
		err = a.printNames(res, ans.columns, ans.rows)
	case asTable:
		out.tab = printer.NewTable(ans.columns, ans.rows)
		err = out.tab.Write(a.Stdout, ans.columns, ans.rows)
	case o.watch:
		// A watch prints objects one by one, so the first ones look like the later ones.
		for _, it := range ans.items {
			if err = a.printObject(o.output, it); err != nil {
				break
			}
		}
	case name != "":
		err = printer.WriteObject(a.Stdout, o.output, ans.items[0])
	default:
		err = printer.WriteList(a.Stdout, o.output, ans.items)
	}
	if err != nil || !o.watch {
		return err
	}
	return a.watch(ctx, res, req, ans.seq, out)
}

// watchOutput is how a watch prints: in the listing's format, table rows aligned with the
// listing's, and a header still owed when the listing was empty.
type watchOutput struct {
	format string
	tab    *printer.Table
	header []string
}

// noResources says, on stderr, that the listing is empty, in kubectl's words.
func (a *app) noResources(res table.Resource, req api.GetRequest) {
	if res.Namespaced && !req.AllNamespaces {
		fmt.Fprintf(a.Stderr, "No resources found in %s namespace.\n", req.Namespace)
		return
	}
	fmt.Fprintln(a.Stderr, "No resources found")
}

func (a *app) printNames(res table.Resource, columns []string, rows [][]string) error {
	col := slices.Index(columns, "NAME")
	if col < 0 {
		return fmt.Errorf("the answer has no NAME column (columns %q)", columns)
	}
	for _, r := range rows {
		if col < len(r) {
			if _, err := fmt.Fprintln(a.Stdout, res.Ref(r[col])); err != nil {
				return err
			}
		}
	}
	return nil
}

// printObject prints one object of a watch; YAML objects start with "---" so that the output
// stays one valid YAML stream.
func (a *app) printObject(format string, item []byte) error {
	if format == printer.YAML {
		if _, err := io.WriteString(a.Stdout, "---\n"); err != nil {
			return err
		}
	}
	return printer.WriteObject(a.Stdout, format, item)
}

// watchFilters are the subjects whose events can change the listed objects. A pod's row
// depends on its bind and status subjects too; an Endpoints object disappears with its Service.
func watchFilters(res table.Resource, req api.GetRequest) []string {
	ns, name := subjectNamespace(res, req.Namespace), "*"
	if req.AllNamespaces {
		ns = "*"
	}
	if req.Name != "" {
		name = req.Name
	}
	own := events.SubjectRoot + "." + res.Subject + "." + ns + "." + name
	switch res.Plural {
	case table.Pods:
		return []string{own,
			events.SubjectRoot + "." + events.KindBind + ".*." + ns + "." + name,
			events.SubjectRoot + "." + events.KindStatus + ".*." + ns + "." + name}
	case table.Endpoints:
		return []string{own, events.SubjectRoot + "." + events.KindService + "." + ns + "." + name}
	case table.Nodes:
		return []string{own, events.NodeRegistrationSubject(name)}
	}
	return []string{own}
}

// watch follows the log after the listing's sequence and prints the changed objects again,
// each fetched from the scheduler at (at least) the sequence of the event that changed it.
// Events arriving while a fetch is under way are coalesced per object, so a burst (a rollout of
// hundreds of pods) costs one fetch per object, not one per event. Objects that disappear are
// not printed.
func (a *app) watch(ctx context.Context, res table.Resource, req api.GetRequest, from uint64, out *watchOutput) error {
	st, err := a.logStore(ctx)
	if err != nil {
		return err
	}
	q := newChanges()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	failures := 0
	go func() {
		errc <- st.Follow(fctx, store.FollowOptions{Filters: watchFilters(res, req), From: from + 1}, func(ev *events.Event) {
			if sub, err := events.ParseSubject(ev.Subject); err == nil {
				q.add(state.Key{Namespace: sub.Namespace, Name: sub.Name}, ev.Seq)
			}
		})
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow the log: %w", err)
		case <-q.wake:
		}
		for _, c := range q.take() {
			err := a.watchPrint(ctx, res, req, c, out)
			switch {
			case err == nil:
				failures = 0
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, events.ErrUnavailable) && failures < maxWatchFailures:
				// The scheduler has not caught up with the change yet (or is restarting):
				// ask again shortly rather than end a watch someone is looking at.
				failures++
				q.add(c.key, c.seq)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(watchRetry):
				}
			default:
				return err
			}
		}
	}
}

// A watch asks again after watchRetry when the scheduler cannot answer for a change yet, and
// gives up after maxWatchFailures such answers in a row.
const (
	watchRetry       = 500 * time.Millisecond
	maxWatchFailures = 20
)

func (a *app) watchPrint(ctx context.Context, res table.Resource, req api.GetRequest, c change, out *watchOutput) error {
	// One object, asked for in its own namespace: cheaper for the scheduler than an
	// all-namespaces query, and the NAMESPACE cell is known anyway.
	r := req
	r.Name, r.MinSeq, r.AllNamespaces = c.key.Name, c.seq, false
	if res.Namespaced {
		r.Namespace = c.key.Namespace
	}
	ans, err := a.query(ctx, r)
	if errors.Is(err, events.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case out.format == "name":
		return a.printNames(res, ans.columns, ans.rows)
	case r.Table:
		for _, row := range ans.rows {
			if req.AllNamespaces {
				row = append([]string{c.key.Namespace}, row...)
			}
			if out.tab == nil {
				out.tab = printer.NewTable(table.Columns(res.Plural, req.Wide, req.AllNamespaces), nil)
			}
			if out.header != nil {
				if err := out.tab.WriteRow(a.Stdout, out.header); err != nil {
					return err
				}
				out.header = nil
			}
			if err := out.tab.WriteRow(a.Stdout, row); err != nil {
				return err
			}
		}
	default:
		for _, it := range ans.items {
			if err := a.printObject(out.format, it); err != nil {
				return err
			}
		}
	}
	return nil
}

// change is an object that changed, and the last sequence that changed it.
type change struct {
	key state.Key
	seq uint64
}

// changes collects changed objects between fetches: the follower adds, the printer takes.
type changes struct {
	mu    sync.Mutex
	order []state.Key
	seq   map[state.Key]uint64
	wake  chan struct{}
}

func newChanges() *changes {
	return &changes{seq: map[state.Key]uint64{}, wake: make(chan struct{}, 1)}
}

func (c *changes) add(k state.Key, seq uint64) {
	c.mu.Lock()
	if _, ok := c.seq[k]; !ok {
		c.order = append(c.order, k)
	}
	c.seq[k] = max(c.seq[k], seq)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *changes) take() []change {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]change, 0, len(c.order))
	for _, k := range c.order {
		out = append(out, change{k, c.seq[k]})
	}
	c.order = c.order[:0]
	clear(c.seq)
	return out
}
