package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/store"
	"skiff.dev/events/table"

	"skiff.dev/cmd/skiff/internal/describe"
)

func init() { register(newDescribeCmd) }

// describeEvents is how many of an object's most recent events describe shows; the rest are a
// `skiff events log` away.
const describeEvents = 20

func newDescribeCmd(a *app) *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show one object in detail, with its recent events",
		Long: "Show one object in detail, with its recent events.\n\n" +
			"With --at, show it as it was at that point of the log, with the events up to then: a sequence\n" +
			"number (a bare integer) or a time (RFC 3339, or a duration ago such as 10m). The CLI replays the\n" +
			"log from its start up to that point itself: the further in, the longer it takes.",
		Example: "  skiff describe pod web-7d4b9c6f5-x2x9q\n  skiff describe deploy/web\n  skiff describe node n1\n" +
			"  skiff describe deploy web --at 1200",
		Args: argsRange(1, 2, "KIND NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, name, err := kindAndName(cmd, args, true)
			if err != nil {
				return err
			}
			return a.describe(cmd.Context(), res, name, at)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", atHelp)
	return cmd
}

func (a *app) describe(ctx context.Context, res table.Resource, name, at string) error {
	ns := namespaceOf(res, a.namespace)
	v, err := a.openView(ctx, at)
	if err != nil {
		return err
	}
	obj, err := v.getObject(ctx, res, ns, name)
	if err != nil {
		return err
	}
	st, err := a.logStore(ctx)
	if err != nil {
		return err
	}
	now := v.now()
	upTo := v.upTo()
	switch res.Plural {
	case table.Pods:
		var p events.Pod
		if err := decode(obj, &p); err != nil {
			return err
		}
		evs, err := objectEvents(ctx, st, upTo, res, ns, name, p.Metadata.UID)
		if err != nil {
			return err
		}
		return describe.Pod(a.Stdout, &p, evs, now)
	case table.Deployments:
		var d events.Deployment
		if err := decode(obj, &d); err != nil {
			return err
		}
		var pods describe.Table
		if d.Spec.Selector != nil && len(d.Spec.Selector.MatchLabels) > 0 {
			ans, err := v.query(ctx, api.GetRequest{Kind: table.Pods, Namespace: ns, Selector: d.Spec.Selector.MatchLabels, Table: true})
			if err != nil {
				return err
			}
			pods = describe.Table{Columns: ans.columns, Rows: ans.rows}
		}
		evs, err := objectEvents(ctx, st, upTo, res, ns, name, "")
		if err != nil {
			return err
		}
		return describe.Deployment(a.Stdout, &d, pods, evs, now)
	case table.Services:
		var s events.Service
		if err := decode(obj, &s); err != nil {
			return err
		}
		var ep *events.Endpoints
		epRes, _ := table.Lookup(table.Endpoints)
		if raw, err := v.getObject(ctx, epRes, ns, name); err == nil {
			ep = &events.Endpoints{}
			if err := decode(raw, ep); err != nil {
				return err
			}
		} else if !errors.Is(err, events.ErrNotFound) {
			return err
		}
		evs, err := objectEvents(ctx, st, upTo, res, ns, name, "")
		if err != nil {
			return err
		}
		return describe.Service(a.Stdout, &s, ep, evs, now)
	case table.Endpoints:
		var e events.Endpoints
		if err := decode(obj, &e); err != nil {
			return err
		}
		evs, err := objectEvents(ctx, st, upTo, res, ns, name, "")
		if err != nil {
			return err
		}
		return describe.Endpoints(a.Stdout, &e, evs, now)
	case table.Nodes:
		var n events.Node
		if err := decode(obj, &n); err != nil {
			return err
		}
		usage, pods, err := v.nodeLoad(ctx, name)
		if err != nil {
			return err
		}
		evs, err := objectEvents(ctx, st, upTo, res, ns, name, "")
		if err != nil {
			return err
		}
		return describe.Node(a.Stdout, &n, usage, pods, evs, now)
	case table.Namespaces:
		var n events.Namespace
		if err := decode(obj, &n); err != nil {
			return err
		}
		evs, err := objectEvents(ctx, st, upTo, res, ns, name, "")
		if err != nil {
			return err
		}
		return describe.Namespace(a.Stdout, &n, evs, now)
	}
	return fmt.Errorf("describe does not know %s", res.Plural)
}

// getObject fetches one object as the scheduler holds it.
func (a *app) getObject(ctx context.Context, res table.Resource, ns, name string) (json.RawMessage, error) {
	return (&view{a: a}).getObject(ctx, res, ns, name)
}

// getObject fetches one object as the view holds it.
func (v *view) getObject(ctx context.Context, res table.Resource, ns, name string) (json.RawMessage, error) {
	ans, err := v.query(ctx, api.GetRequest{Kind: res.Plural, Namespace: ns, Name: name})
	if errors.Is(err, events.ErrNotFound) || (err == nil && len(ans.items) == 0) {
		return nil, v.notFound(res, ns, name)
	}
	if err != nil {
		return nil, err
	}
	return ans.items[0], nil
}

func decode(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("the scheduler's answer does not decode as %T: %w", v, err)
	}
	return nil
}

// nodeLoad fetches what is requested of a node (its wide row) and the pods on it. There is no
// query for "pods on node N", so the pods come from the wide all-namespaces pod table, filtered
// by its NODE column: rows, not objects, so even 30,000 pods are a few megabytes.
func (v *view) nodeLoad(ctx context.Context, node string) (*describe.NodeUsage, describe.Table, error) {
	var usage *describe.NodeUsage
	ans, err := v.query(ctx, api.GetRequest{Kind: table.Nodes, Name: node, Table: true, Wide: true})
	if err != nil {
		return nil, describe.Table{}, err
	}
	if len(ans.rows) == 1 {
		cell := func(c string) string {
			if i := slices.Index(ans.columns, c); i >= 0 && i < len(ans.rows[0]) {
				return ans.rows[0][i]
			}
			return table.None
		}
		usage = &describe.NodeUsage{CPU: cell("CPU"), Memory: cell("MEMORY"), Pods: cell("PODS")}
	}
	pods, err := v.query(ctx, api.GetRequest{Kind: table.Pods, AllNamespaces: true, Table: true, Wide: true})
	if err != nil {
		return nil, describe.Table{}, err
	}
	nodeCol := slices.Index(pods.columns, "NODE")
	keep := []string{"NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"}
	var idx []int
	for _, c := range keep {
		if i := slices.Index(pods.columns, c); i >= 0 {
			idx = append(idx, i)
		}
	}
	t := describe.Table{}
	for _, i := range idx {
		t.Columns = append(t.Columns, pods.columns[i])
	}
	for _, r := range pods.rows {
		if nodeCol < 0 || nodeCol >= len(r) || r[nodeCol] != node {
			continue
		}
		row := make([]string, 0, len(idx))
		for _, i := range idx {
			row = append(row, r[i])
		}
		t.Rows = append(t.Rows, row)
	}
	return usage, t, nil
}

// objectFilters are the subjects that make up an object's history: a pod's own subject plus
// its bind and status subjects on whatever node; a Service's and its Endpoints'; a node's and
// its own registration.
func objectFilters(res table.Resource, ns, name string) []string {
	sns := subjectNamespace(res, ns)
	switch res.Plural {
	case table.Pods:
		return []string{
			events.ObjectSubject(events.KindPod, sns, name),
			events.SubjectRoot + "." + events.KindBind + ".*." + sns + "." + name,
			events.SubjectRoot + "." + events.KindStatus + ".*." + sns + "." + name,
		}
	case table.Services:
		return []string{events.ObjectSubject(events.KindService, sns, name), events.ObjectSubject(events.KindEndpoints, sns, name)}
	case table.Nodes:
		return []string{events.ObjectSubject(events.KindNode, "", name), events.NodeRegistrationSubject(name)}
	}
	return []string{events.ObjectSubject(res.Subject, sns, name)}
}

// objectEvents reads the history of the object as it is now: events of earlier objects of the
// same name (before the last deletion, or about another pod UID) are left out, and only the
// most recent describeEvents are kept. upTo > 0 ends the history there (describe --at).
func objectEvents(ctx context.Context, st *store.Store, upTo uint64, res table.Resource, ns, name, uid string) (describe.Events, error) {
	var list []*events.Event
	err := st.Read(ctx, store.ReadOptions{Filters: objectFilters(res, ns, name), To: upTo}, func(ev *events.Event) error {
		if strings.HasSuffix(ev.Type, "Deleted") && events.KindOf(ev.Type) == res.Subject {
			list = list[:0]
			return nil
		}
		if u := events.PodUID(ev.Data); uid != "" && u != "" && u != uid {
			return nil
		}
		list = append(list, ev)
		return nil
	})
	if err != nil {
		return describe.Events{}, fmt.Errorf("read the history of %s: %w", res.Ref(name), err)
	}
	var out describe.Events
	if n := len(list) - describeEvents; n > 0 {
		out.Omitted, list = n, list[n:]
	}
	out.List = list
	return out, nil
}
