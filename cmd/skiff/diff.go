package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"skiff.dev/events"
	"skiff.dev/events/table"
)

func newEventsDiffCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "diff A B [KIND[/NAME]]",
		Short: "Show what changed in the cluster between two points of its log",
		Long: "List the objects created, changed and deleted between two points of the log, each with a unified\n" +
			"diff of its YAML as kubectl diff prints it (the headers name the object and the point; a created\n" +
			"object is diffed against nothing, a deleted one against nothing). The list goes to stderr, the\n" +
			"diffs to stdout.\n\n" +
			"A and B are each " + pointHelp + ".\n" +
			"The CLI replays the log once, from its start to B: the further in, the longer it takes.\n\n" +
			"Every kind and namespace by default; -n keeps one namespace; KIND keeps one kind, KIND/NAME one\n" +
			"object (in -n's namespace).\n\n" +
			"Exit status, as kubectl diff's: 0 no differences, 1 differences, 2 an error.",
		Example: "  skiff events diff 120 180\n  skiff events diff 1h 10m deployments\n  skiff events diff 2025-03-01T12:00:00Z 2025-03-01T13:00:00Z pod/web-7d4b9c6f5-x2x9q",
		Args:    argsRange(2, 3, "A B [KIND[/NAME]]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := diffOptions{namespace: ""}
			if cmd.Flags().Changed("namespace") {
				o.namespace = a.namespace
			}
			o.kinds = table.Resources
			if len(args) == 3 {
				kind, name, _ := strings.Cut(args[2], "/")
				res, err := resource(cmd, kind)
				if err != nil {
					return err
				}
				o.kinds, o.name = []table.Resource{res}, name
				if name != "" {
					o.namespace = namespaceOf(res, a.namespace)
				}
			}
			err := a.eventsDiff(cmd.Context(), args[0], args[1], o)
			if err != nil && !errors.Is(err, errReported) {
				// 1 means "differences", so every failure ends with 2, as kubectl diff's do.
				return &statusError{err: err, code: exitUsage}
			}
			return err
		},
	}
}

type diffOptions struct {
	kinds     []table.Resource
	namespace string // "" for every namespace
	name      string // "" for every object
}

// objectID names an object in a diff: its kind, namespace and name as `skiff events log` does.
type objectID struct {
	kind      int // index in table.Resources
	namespace string
	name      string
}

func (id objectID) String() string {
	res := table.Resources[id.kind]
	if id.namespace == "" {
		return res.Singular + "/" + id.name
	}
	return res.Singular + "/" + id.namespace + "/" + id.name
}

// snapshot is the objects in scope at a point, as JSON (a copy: the fold goes on changing).
type snapshot struct {
	point point
	seq   uint64
	when  time.Time
	ids   []objectID // in kind order, then namespace and name
	objs  map[objectID][]byte
}

func takeSnapshot(f *folded, p point, o diffOptions) (*snapshot, error) {
	s := &snapshot{point: p, seq: f.Seq, when: p.time, objs: map[objectID][]byte{}}
	if p.isSeq() && f.last != nil {
		s.when = f.last.Time
	}
	for _, res := range o.kinds {
		opts := table.Options{Namespace: o.namespace, AllNamespaces: o.namespace == "", Name: o.name}
		items, err := table.Objects(f.State, res.Plural, opts)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			var meta struct {
				Metadata struct{ Namespace, Name string } `json:"metadata"`
			}
			if err := json.Unmarshal(it, &meta); err != nil {
				return nil, fmt.Errorf("read back %s: %w", res.Plural, err)
			}
			id := objectID{kind: kindIndex(res), namespace: meta.Metadata.Namespace, name: meta.Metadata.Name}
			s.ids = append(s.ids, id)
			s.objs[id] = it
		}
	}
	return s, nil
}

func (s *snapshot) label() string {
	return fmt.Sprintf("sequence %d (%s)", s.seq, s.when.UTC().Format(time.RFC3339))
}

func (a *app) eventsDiff(ctx context.Context, from, to string, o diffOptions) error {
	now := a.Now()
	pa, err := parsePoint("A", from, now)
	if err != nil {
		return err
	}
	pb, err := parsePoint("B", to, now)
	if err != nil {
		return err
	}
	if err := ordered(pa, pb); err != nil {
		return err
	}
	st, err := a.logStore(ctx)
	if err != nil {
		return err
	}
	b, err := a.logBounds(ctx, st)
	if err != nil {
		return err
	}
	if err := errors.Join(b.check(pa), b.check(pb)); err != nil {
		return firstOf(err)
	}
	// One fold: to A, where the objects in scope are copied, then on to B.
	snaps := make([]*snapshot, 2)
	var fold *folded
	err = foldLog(ctx, st, []point{pa, pb}, func(i int, f *folded) error {
		s, err := takeSnapshot(f, []point{pa, pb}[i], o)
		snaps[i], fold = s, f
		return err
	})
	if err != nil {
		return err
	}
	a.warnUnapplied(fold)
	sa, sb := snaps[0], snaps[1]
	// A sequence and a time can only be put in order once the log says when the sequence was.
	if (pa.isSeq() && pa.seq > sb.seq) || (!pa.isSeq() && pa.time.After(sb.when)) {
		return errorf(events.ErrInvalidArgument, "%s is after %s (%s): give the earlier point first", pa, pb, sb.label())
	}
	if o.name != "" && len(sa.ids) == 0 && len(sb.ids) == 0 {
		obj := o.kinds[0].Ref(o.name)
		if o.kinds[0].Namespaced {
			obj += " in namespace " + o.namespace
		}
		return errorf(events.ErrNotFound, "%s existed neither at %s nor at %s", obj, sa.label(), sb.label())
	}
	return a.printDiff(sa, sb)
}

// firstOf is the first error of errors.Join's: one line is enough.
func firstOf(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()[0]
	}
	return err
}

// objectChange is one object's fate between two snapshots.
type objectChange struct {
	id   objectID
	verb string // created, changed, deleted
}

// printDiff prints a unified diff of each object that differs between sa and sb, and lists them
// on stderr. It returns errReported (exit status 1) when something differs.
func (a *app) printDiff(sa, sb *snapshot) error {
	var changes []objectChange
	seen := map[objectID]bool{}
	// Both lists are sorted the same way; merging them keeps kind, namespace and name order.
	i, j := 0, 0
	for i < len(sa.ids) || j < len(sb.ids) {
		var id objectID
		switch {
		case j == len(sb.ids) || (i < len(sa.ids) && lessID(sa.ids[i], sb.ids[j])):
			id, i = sa.ids[i], i+1
		default:
			id, j = sb.ids[j], j+1
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		before, inA := sa.objs[id]
		after, inB := sb.objs[id]
		switch {
		case !inA:
			changes = append(changes, objectChange{id, "created"})
		case !inB:
			changes = append(changes, objectChange{id, "deleted"})
		case !bytes.Equal(before, after):
			changes = append(changes, objectChange{id, "changed"})
		default:
			continue
		}
		if err := writeUnified(a.Stdout, id, sa, before, sb, after); err != nil {
			return err
		}
	}
	if len(changes) == 0 {
		fmt.Fprintf(a.Stderr, "No differences between %s and %s.\n", sa.label(), sb.label())
		return nil
	}
	fmt.Fprintf(a.Stderr, "Between %s and %s:\n", sa.label(), sb.label())
	for _, c := range changes {
		fmt.Fprintf(a.Stderr, "  %-8s %s\n", c.verb, c.id)
	}
	return errReported
}

// lessID orders objects by kind (in table.Resources' order), namespace and name.
func lessID(x, y objectID) bool {
	if x.kind != y.kind {
		return x.kind < y.kind
	}
	if x.namespace != y.namespace {
		return x.namespace < y.namespace
	}
	return x.name < y.name
}

func kindIndex(r table.Resource) int {
	for i, k := range table.Resources {
		if k.Plural == r.Plural {
			return i
		}
	}
	return len(table.Resources)
}

// writeUnified prints one object's unified diff, kubectl diff's way: the YAML of each side, an
// absent side empty, the headers naming the object and the point.
func writeUnified(w interface{ Write([]byte) (int, error) }, id objectID, sa *snapshot, before []byte, sb *snapshot, after []byte) error {
	ya, err := yamlLines(before)
	if err != nil {
		return fmt.Errorf("%s at sequence %d: %w", id, sa.seq, err)
	}
	yb, err := yamlLines(after)
	if err != nil {
		return fmt.Errorf("%s at sequence %d: %w", id, sb.seq, err)
	}
	return difflib.WriteUnifiedDiff(w, difflib.UnifiedDiff{
		A: ya, B: yb,
		FromFile: id.String(), FromDate: sa.label(),
		ToFile: id.String(), ToDate: sb.label(),
		Context: 3,
	})
}

func yamlLines(obj []byte) ([]string, error) {
	if obj == nil {
		return nil, nil
	}
	y, err := yaml.JSONToYAML(obj)
	if err != nil {
		return nil, fmt.Errorf("convert to YAML: %w", err)
	}
	return difflib.SplitLines(strings.TrimSuffix(string(y), "\n")), nil
}
