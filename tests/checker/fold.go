package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// Kinds FoldMatches compares: the plural resource names of api.GetRequest.Kind.
const (
	KindPods        = "pods"
	KindNodes       = "nodes"
	KindServices    = "services"
	KindEndpoints   = "endpoints"
	KindDeployments = "deployments"
)

// ViewKinds are the kinds GetViews asks for when given none.
var ViewKinds = []string{KindPods, KindNodes, KindServices, KindEndpoints, KindDeployments}

// View is one service's answer about one kind: its objects, in the Kubernetes JSON shape, as of
// its projection's sequence Seq.
type View struct {
	// Source names who answered, for messages ("scheduler").
	Source string
	Kind   string
	Seq    uint64
	Items  []json.RawMessage
}

// GetViews asks a scheduler replica for every object of each kind (all of ViewKinds when kinds
// is empty), as `skiff get -A -o json` does, at least at sequence minSeq (pass Report.Head).
// NATS hands each query to one replica of the queue group; call it again to reach others.
func GetViews(ctx context.Context, nc *nats.Conn, minSeq uint64, kinds ...string) ([]View, error) {
	if len(kinds) == 0 {
		kinds = ViewKinds
	}
	var out []View
	for _, kind := range kinds {
		v := View{Source: "scheduler", Kind: kind}
		err := api.Get(ctx, nc, api.GetRequest{Kind: kind, AllNamespaces: true, MinSeq: minSeq}, func(c *api.GetChunk) error {
			v.Seq = c.Seq
			v.Items = append(v.Items, c.Items...)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("get %s from a scheduler: %w", kind, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// FoldMatches folds the log with events/state up to each view's sequence and returns, one
// sentence each, where a view differs from the fold: objects missing on either side, and
// objects whose compared fields differ (see the package doc). A view older than r.Head is a
// difference too: after convergence every service must have caught up with the log the checker
// read. The error is only for a log that cannot be read or a view that cannot be parsed.
func (r *Report) FoldMatches(ctx context.Context, st *store.Store, views ...View) ([]string, error) {
	order := make([]int, len(views))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return views[order[a]].Seq < views[order[b]].Seq })
	var diffs []string
	if len(views) == 0 {
		return nil, nil
	}
	s := state.New()
	next := 0
	// snapshot compares every view taken at or before the fold's position.
	snapshot := func(upTo uint64) error {
		for ; next < len(order) && views[order[next]].Seq <= upTo; next++ {
			v := views[order[next]]
			d, err := compare(s, v)
			if err != nil {
				return err
			}
			diffs = append(diffs, d...)
		}
		return nil
	}
	to := views[order[len(order)-1]].Seq
	if to > 0 {
		var poisonErr error
		err := st.Read(ctx, store.ReadOptions{
			To: to,
			OnPoison: func(subject string, seq uint64, _ error) {
				if err := snapshot(seq - 1); err != nil && poisonErr == nil {
					poisonErr = err
				}
				s.Skip(subject, seq)
			},
		}, func(ev *events.Event) error {
			if poisonErr != nil {
				return poisonErr
			}
			if err := snapshot(ev.Seq - 1); err != nil {
				return err
			}
			_ = s.Apply(ev) // an event the fold refuses changes nothing, as in every service
			return nil
		})
		if err == nil {
			err = poisonErr
		}
		if err != nil {
			return nil, fmt.Errorf("fold the log to seq %d: %w", to, err)
		}
	}
	if err := snapshot(to); err != nil {
		return nil, err
	}
	for _, v := range views {
		if v.Seq < r.Head {
			diffs = append(diffs, fmt.Sprintf("%s's %s are as of seq %d, behind the log the checker read (head %d)", v.Source, v.Kind, v.Seq, r.Head))
		}
	}
	return diffs, nil
}

// compare returns the differences between the fold s and view v.
func compare(s *state.State, v View) ([]string, error) {
	fold := foldSummary(s, v.Kind)
	if fold == nil {
		return nil, fmt.Errorf("compare %s: unknown kind (want one of %v)", v.Kind, ViewKinds)
	}
	got := map[string]string{}
	for i, raw := range v.Items {
		key, line, err := itemSummary(v.Kind, raw)
		if err != nil {
			return nil, fmt.Errorf("%s's %s item %d: %w", v.Source, v.Kind, i, err)
		}
		got[key] = line
	}
	var out []string
	at := fmt.Sprintf("at seq %d", v.Seq)
	for _, k := range sortedKeys(fold) {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s %s: the fold has %s %s {%s}, %s has not", v.Kind, at, singular(v.Kind), k, fold[k], v.Source))
		case g != fold[k]:
			out = append(out, fmt.Sprintf("%s %s: %s %s is {%s} in the fold but {%s} in %s's view", v.Kind, at, singular(v.Kind), k, fold[k], g, v.Source))
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := fold[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s: %s shows %s %s {%s}, the fold has no such object", v.Kind, at, v.Source, singular(v.Kind), k, got[k]))
		}
	}
	return out, nil
}

func singular(kind string) string { return strings.TrimSuffix(kind, "s") }

// foldSummary is one line per object of kind in s, keyed by "ns/name" (nodes: name); nil for
// an unknown kind.
func foldSummary(s *state.State, kind string) map[string]string {
	out := map[string]string{}
	switch kind {
	case KindPods:
		for k, p := range s.Pods {
			out[k.String()] = podLine(&p.Pod)
		}
	case KindNodes:
		for name, n := range s.Nodes {
			out[name] = nodeLine(&n.Node)
		}
	case KindServices:
		for k, sv := range s.Services {
			out[k.String()] = serviceLine(&sv.Service)
		}
	case KindEndpoints:
		for k, e := range s.Endpoints {
			out[k.String()] = endpointsLine(e)
		}
	case KindDeployments:
		for k, d := range s.Deployments {
			out[k.String()] = deploymentLine(&d.Deployment)
		}
	default:
		return nil
	}
	return out
}

// itemSummary parses one item of a view and returns its key and line.
func itemSummary(kind string, raw json.RawMessage) (string, string, error) {
	key := func(m events.ObjectMeta) string { return m.Namespace + "/" + m.Name }
	switch kind {
	case KindPods:
		var p events.Pod
		if err := json.Unmarshal(raw, &p); err != nil {
			return "", "", err
		}
		return key(p.Metadata), podLine(&p), nil
	case KindNodes:
		var n events.Node
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", "", err
		}
		return n.Metadata.Name, nodeLine(&n), nil
	case KindServices:
		var sv events.Service
		if err := json.Unmarshal(raw, &sv); err != nil {
			return "", "", err
		}
		return key(sv.Metadata), serviceLine(&sv), nil
	case KindEndpoints:
		var e events.Endpoints
		if err := json.Unmarshal(raw, &e); err != nil {
			return "", "", err
		}
		return key(e.Metadata), endpointsLine(&e), nil
	case KindDeployments:
		var d events.Deployment
		if err := json.Unmarshal(raw, &d); err != nil {
			return "", "", err
		}
		return key(d.Metadata), deploymentLine(&d), nil
	}
	return "", "", fmt.Errorf("unknown kind %q", kind)
}

func podLine(p *events.Pod) string {
	deleting := p.Metadata.DeletionTimestamp != nil
	return fmt.Sprintf("uid=%s node=%s phase=%s ip=%s deleting=%t", p.Metadata.UID, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, deleting)
}

func nodeLine(n *events.Node) string {
	ready := ""
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			ready = c.Status
		}
	}
	var addrs []string
	for _, a := range n.Status.Addresses {
		addrs = append(addrs, a.Type+":"+a.Address)
	}
	return fmt.Sprintf("ready=%s unschedulable=%t podCIDR=%s addresses=%v", ready, n.Spec.Unschedulable, n.Spec.PodCIDR, addrs)
}

func serviceLine(sv *events.Service) string {
	var ports []string
	for _, p := range sv.Spec.Ports {
		target := ""
		if t := p.TargetPort; t != nil {
			target = fmt.Sprint(t.IntVal)
			if t.IsString {
				target = t.StrVal
			}
		}
		ports = append(ports, fmt.Sprintf("%s:%s/%d->%s", p.Name, p.Protocol, p.Port, target))
	}
	return fmt.Sprintf("clusterIP=%s selector=%v ports=%v", sv.Spec.ClusterIP, sv.Spec.Selector, ports)
}

func endpointsLine(e *events.Endpoints) string {
	addrs := make([]string, 0, len(e.Addresses))
	for _, a := range e.Addresses {
		var ports []string
		for _, p := range a.Ports {
			ports = append(ports, fmt.Sprintf("%s:%s/%d", p.Name, p.Protocol, p.Port))
		}
		addrs = append(addrs, fmt.Sprintf("%s@%s(%s)%v", a.IP, a.NodeName, a.PodName, ports))
	}
	sort.Strings(addrs)
	return "addresses=" + strings.Join(addrs, ",")
}

func deploymentLine(d *events.Deployment) string {
	replicas := "nil"
	if d.Spec.Replicas != nil {
		replicas = fmt.Sprint(*d.Spec.Replicas)
	}
	return fmt.Sprintf("uid=%s replicas=%s generation=%d", d.Metadata.UID, replicas, d.Metadata.Generation)
}
