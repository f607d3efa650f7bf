package describe

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/table"

	"skiff.dev/cmd/skiff/internal/summary"
)

// Events are the object's events to list, oldest first, and how many older ones were left out.
type Events struct {
	List    []*events.Event
	Omitted int
}

// Table is a small table the caller fetched (pods of a Deployment, pods on a node).
type Table struct {
	Columns []string
	Rows    [][]string
}

// timeFormat is how kubectl describe prints times.
const timeFormat = "Mon, 02 Jan 2006 15:04:05 -0700"

// doc accumulates one description. Lines go through one tabwriter, so "Key:\tvalue" lines of a
// section line up, and a line without a tab (a section title) starts a new alignment block.
type doc struct {
	tw  *tabwriter.Writer
	buf bytes.Buffer
	out io.Writer
	now time.Time
}

func newDoc(w io.Writer, now time.Time) *doc {
	d := &doc{out: w, now: now}
	d.tw = tabwriter.NewWriter(&d.buf, 0, 8, 2, ' ', 0)
	return d
}

func (d *doc) line(level int, format string, args ...any) {
	fmt.Fprintf(d.tw, strings.Repeat("  ", level)+format+"\n", args...)
}

// kv prints "key:\tvalue", with <none> for an empty value.
func (d *doc) kv(level int, key, value string) {
	if value == "" {
		value = table.None
	}
	d.line(level, "%s:\t%s", key, value)
}

// list prints a key whose values go one per line, aligned under the first.
func (d *doc) list(level int, key string, values []string) {
	if len(values) == 0 {
		d.kv(level, key, "")
		return
	}
	d.line(level, "%s:\t%s", key, values[0])
	for _, v := range values[1:] {
		d.line(level, "\t%s", v)
	}
}

func (d *doc) time(level int, key string, t *time.Time) {
	if t == nil || t.IsZero() {
		d.kv(level, key, "")
		return
	}
	d.kv(level, key, t.UTC().Format(timeFormat))
}

func (d *doc) meta(m *events.ObjectMeta, namespaced bool) {
	d.kv(0, "Name", m.Name)
	if namespaced {
		d.kv(0, "Namespace", m.Namespace)
	}
	d.time(0, "CreationTimestamp", m.CreationTimestamp)
	d.list(0, "Labels", labelLines(m.Labels))
	d.list(0, "Annotations", labelLines(m.Annotations))
}

func labelLines(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func (d *doc) conditions(level int, conds []events.Condition) {
	if len(conds) == 0 {
		d.line(level, "Conditions:\t%s", table.None)
		return
	}
	d.line(level, "Conditions:")
	d.line(level+1, "Type\tStatus\tLastTransitionTime\tReason\tMessage")
	d.line(level+1, "----\t------\t------------------\t------\t-------")
	for _, c := range conds {
		when := ""
		if c.LastTransitionTime != nil {
			when = c.LastTransitionTime.UTC().Format(timeFormat)
		}
		d.line(level+1, "%s\t%s\t%s\t%s\t%s", c.Type, c.Status, when, c.Reason, oneLine(c.Message))
	}
}

func (d *doc) table(title string, t Table, emptyNote string) {
	if len(t.Rows) == 0 {
		d.line(0, "%s:\t%s", title, emptyNote)
		return
	}
	d.line(0, "%s:\t(%d in total)", title, len(t.Rows))
	d.line(1, "%s", strings.Join(t.Columns, "\t"))
	d.line(1, "%s", strings.Join(dashes(t.Columns), "\t"))
	for _, r := range t.Rows {
		d.line(1, "%s", strings.Join(r, "\t"))
	}
}

func dashes(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = strings.Repeat("-", len(c))
	}
	return out
}

// events prints the Events section: age, type, who wrote it, and what it did.
func (d *doc) events(evs Events) {
	if len(evs.List) == 0 {
		d.line(0, "Events:\t%s", table.None)
		return
	}
	d.line(0, "Events:")
	d.line(1, "Age\tType\tFrom\tMessage")
	d.line(1, "---\t----\t----\t-------")
	for _, ev := range evs.List {
		d.line(1, "%s\t%s\t%s\t%s", table.Age(d.now.Sub(ev.Time)), ev.Type, ev.Actor, summary.Of(ev))
	}
	if evs.Omitted > 0 {
		d.line(1, "(%d older events not shown: skiff events log)", evs.Omitted)
	}
}

// flush aligns everything and drops the padding tabwriter leaves after a last cell that is
// empty (a condition without a message), which would otherwise trail every such line.
func (d *doc) flush() error {
	if err := d.tw.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range bytes.Lines(d.buf.Bytes()) {
		out.Write(bytes.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := d.out.Write(out.Bytes())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func containers(d *doc, level int, cs []events.Container, statuses []events.ContainerStatus) {
	containerList(d, level, "Containers:", cs, statuses)
}

// containerList is one list of containers under its heading ("Init Containers:").
func containerList(d *doc, level int, heading string, cs []events.Container, statuses []events.ContainerStatus) {
	d.line(level, heading)
	for _, c := range cs {
		d.line(level+1, "%s:", c.Name)
		l := level + 2
		d.kv(l, "Image", c.Image)
		var ports []string
		for _, p := range c.Ports {
			s := strconv.Itoa(int(p.ContainerPort)) + "/" + orTCP(p.Protocol)
			if p.Name != "" {
				s += " (" + p.Name + ")"
			}
			ports = append(ports, s)
		}
		d.kv(l, "Ports", strings.Join(ports, ", "))
		if len(c.Command) > 0 {
			d.list(l, "Command", c.Command)
		}
		if len(c.Args) > 0 {
			d.list(l, "Args", c.Args)
		}
		if statuses != nil {
			st := findStatus(statuses, c.Name)
			if st == nil {
				d.kv(l, "State", "Waiting")
				d.kv(l+1, "Reason", "NotReported")
			} else {
				state(d, l, "State", st.State)
				if last := st.LastTerminationState; last.Running != nil || last.Waiting != nil || last.Terminated != nil {
					state(d, l, "Last State", last)
				}
				d.kv(l, "Ready", titleBool(st.Ready))
				d.kv(l, "Restart Count", strconv.Itoa(int(st.RestartCount)))
			}
		}
		resources(d, l, "Limits", c.Resources.Limits)
		resources(d, l, "Requests", c.Resources.Requests)
		if len(c.Env) == 0 {
			d.kv(l, "Environment", "")
		} else {
			d.line(l, "Environment:")
			for _, e := range c.Env {
				d.line(l+1, "%s:\t%s", e.Name, e.Value)
			}
		}
	}
}

func findStatus(ss []events.ContainerStatus, name string) *events.ContainerStatus {
	for i := range ss {
		if ss[i].Name == name {
			return &ss[i]
		}
	}
	return nil
}

func state(d *doc, level int, key string, s events.ContainerState) {
	switch {
	case s.Running != nil:
		d.kv(level, key, "Running")
		d.time(level+1, "Started", s.Running.StartedAt)
	case s.Terminated != nil:
		t := s.Terminated
		d.kv(level, key, "Terminated")
		if t.Reason != "" {
			d.kv(level+1, "Reason", t.Reason)
		}
		if t.Message != "" {
			d.kv(level+1, "Message", oneLine(t.Message))
		}
		d.kv(level+1, "Exit Code", strconv.Itoa(int(t.ExitCode)))
		if t.Signal != 0 {
			d.kv(level+1, "Signal", strconv.Itoa(int(t.Signal)))
		}
		d.time(level+1, "Started", t.StartedAt)
		d.time(level+1, "Finished", t.FinishedAt)
	case s.Waiting != nil:
		d.kv(level, key, "Waiting")
		if s.Waiting.Reason != "" {
			d.kv(level+1, "Reason", s.Waiting.Reason)
		}
		if s.Waiting.Message != "" {
			d.kv(level+1, "Message", oneLine(s.Waiting.Message))
		}
	default:
		d.kv(level, key, "Waiting")
	}
}

func resources(d *doc, level int, key string, r events.ResourceList) {
	if len(r) == 0 {
		return
	}
	d.line(level, "%s:", key)
	for _, k := range slices.Sorted(maps.Keys(r)) {
		d.line(level+1, "%s:\t%s", k, r[k])
	}
}

func titleBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func orTCP(p string) string {
	if p == "" {
		return "TCP"
	}
	return p
}
