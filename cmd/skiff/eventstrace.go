package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

func newEventsTraceCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "trace KIND/NAME",
		Short: "Show the chain of events the latest command on an object caused",
		Long: "Find the latest command on the object (apply, scale, delete, cordon), collect every event of the\n" +
			"log that belongs to it (its correlationId) and print them as a waterfall: each event under the one\n" +
			"that caused it (its causationId), with who wrote it, when after the command, how long after its\n" +
			"cause, and a bar from its cause to it. It reads the log only: no tracing backend is needed.",
		Example: "  skiff events trace deployment/echo\n  skiff events trace node/n1",
		Args:    argsRange(1, 1, "KIND/NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, ok := strings.Cut(args[0], "/")
			if !ok || name == "" {
				return usage(cmd, "name the object as KIND/NAME, e.g. deployment/echo, not %q", args[0])
			}
			res, err := resource(cmd, kind)
			if err != nil {
				return err
			}
			st, err := a.logStore(cmd.Context())
			if err != nil {
				return err
			}
			label := res.Singular + "/" + name
			return eventsTrace(cmd.Context(), st, objectFilters(res, namespaceOf(res, a.namespace), name), label, a.Stdout)
		},
	}
}

// eventsTrace prints the waterfall of the latest command among the events filters select.
func eventsTrace(ctx context.Context, st *store.Store, filters []string, label string, w io.Writer) error {
	corr := ""
	err := st.Read(ctx, store.ReadOptions{Filters: filters}, func(ev *events.Event) error {
		// A command's events have the command as both cause and correlation; an object
		// written only by controllers (a pod) is traced to the command its last event serves.
		if ev.CorrelationID != "" && (ev.CausationID == ev.CorrelationID || corr == "") {
			corr = ev.CorrelationID
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the history of %s: %w", label, err)
	}
	if corr == "" {
		return fmt.Errorf("%s: %w: no event about it belongs to a command", label, events.ErrNotFound)
	}
	var chain []*events.Event
	err = st.Read(ctx, store.ReadOptions{}, func(ev *events.Event) error {
		if ev.CorrelationID == corr {
			chain = append(chain, ev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the event log: %w", err)
	}
	return waterfall(w, label, corr, chain)
}

// traceNode is one event of the chain and those it caused.
type traceNode struct {
	ev       *events.Event
	children []*traceNode
}

// barWidth is the waterfall's width in characters.
const barWidth = 40

// waterfall prints chain (the events of one correlation, in log order) as a tree by causation
// with a bar per event from its cause's time to its own. Events whose cause is not in the chain
// (the command itself is no event) are the roots.
func waterfall(w io.Writer, label, corr string, chain []*events.Event) error {
	if len(chain) == 0 {
		return fmt.Errorf("%s: %w: no event of command %s", label, events.ErrNotFound, corr)
	}
	byID := make(map[string]*traceNode, len(chain))
	for _, ev := range chain {
		byID[ev.ID] = &traceNode{ev: ev}
	}
	var roots []*traceNode
	for _, ev := range chain {
		n := byID[ev.ID]
		if p := byID[ev.CausationID]; p != nil && p != n {
			p.children = append(p.children, n)
		} else {
			roots = append(roots, n)
		}
	}
	start, end := chain[0].Time, chain[0].Time
	for _, ev := range chain {
		start = minTime(start, ev.Time)
		end = maxTime(end, ev.Time)
	}
	total := end.Sub(start)
	actors := map[string]bool{}
	for _, ev := range chain {
		actors[ev.Actor] = true
	}

	type row struct {
		tree, actor, object, at, after string
		from, to                       time.Duration
	}
	var rows []row
	var walk func(n *traceNode, prefix, branch string, cause time.Time)
	walk = func(n *traceNode, prefix, branch string, cause time.Time) {
		ev := n.ev
		at := ev.Time.Sub(start)
		rows = append(rows, row{
			tree: prefix + branch + ev.Type, actor: ev.Actor, object: logObject(ev),
			at: "+" + shortDuration(at), after: shortDuration(ev.Time.Sub(cause)),
			from: cause.Sub(start), to: at,
		})
		childPrefix := prefix
		switch branch {
		case "├─ ":
			childPrefix += "│  "
		case "└─ ":
			childPrefix += "   "
		}
		slices.SortStableFunc(n.children, func(a, b *traceNode) int { return cmp.Compare(a.ev.Seq, b.ev.Seq) })
		for i, c := range n.children {
			b := "├─ "
			if i == len(n.children)-1 {
				b = "└─ "
			}
			walk(c, childPrefix, b, ev.Time)
		}
	}
	for _, r := range roots {
		walk(r, "", "", start)
	}

	head := []string{"EVENT", "ACTOR", "OBJECT", "AT", "AFTER"}
	widths := make([]int, len(head))
	for i, h := range head {
		widths[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range []string{r.tree, r.actor, r.object, r.at, r.after} {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: command %s, %s by %s over %s\n\n", label, corr,
		count(len(chain), "event"), count(len(actors), "actor"), shortDuration(total))
	cell := func(s string, w int) {
		b.WriteString(s)
		b.WriteString(strings.Repeat(" ", w+2-len([]rune(s))))
	}
	for i, h := range head {
		cell(h, widths[i])
	}
	b.WriteString("WATERFALL\n")
	for _, r := range rows {
		for i, c := range []string{r.tree, r.actor, r.object, r.at, r.after} {
			cell(c, widths[i])
		}
		b.WriteString("|" + bar(r.from, r.to, total) + "|\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// bar draws from..to of total in barWidth characters: the wait for the event as '-', the
// event itself as '#'.
func bar(from, to, total time.Duration) string {
	col := func(d time.Duration) int {
		if total <= 0 {
			return 0
		}
		return min(barWidth-1, int(int64(d)*int64(barWidth)/int64(total)))
	}
	f, t := col(from), col(to)
	return strings.Repeat(" ", f) + strings.Repeat("-", t-f) + "#" + strings.Repeat(" ", barWidth-1-t)
}

// shortDuration prints d to a precision that fits a column: 0ms, 12ms, 1.25s, 2m3s.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// count is "1 event", "2 events".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
