package table

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// Options selects the objects of a listing and how much of them to print. The zero value lists
// the default namespace, narrow.
type Options struct {
	// Namespace to list; "" means "default". Ignored for nodes and namespaces.
	Namespace string
	// AllNamespaces lists every namespace and adds a NAMESPACE column first.
	AllNamespaces bool
	// Name, if set, selects one object.
	Name string
	// Selector keeps objects whose labels contain every key=value of it; empty keeps all.
	Selector map[string]string
	// Wide adds the columns of `-o wide`.
	Wide bool
}

func (o Options) namespace() string {
	if o.Namespace == "" {
		return state.DefaultNamespace
	}
	return o.Namespace
}

// None is what a cell shows when there is nothing to show, as kubectl prints it.
const None = "<none>"

var columns = map[string]struct{ narrow, wide []string }{
	Pods:        {[]string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}, []string{"IP", "NODE"}},
	Deployments: {[]string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}, []string{"CONTAINERS", "IMAGES", "SELECTOR"}},
	Services:    {[]string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}, []string{"SELECTOR"}},
	Endpoints:   {[]string{"NAME", "ENDPOINTS", "AGE"}, nil},
	Nodes:       {[]string{"NAME", "STATUS", "ROLES", "AGE", "VERSION"}, []string{"INTERNAL-IP", "POD-CIDR", "CPU", "MEMORY", "PODS"}},
	Namespaces:  {[]string{"NAME", "STATUS", "AGE"}, nil},
}

// Columns returns the header of kind's table (kind is a Resource's Plural), or nil for an
// unknown kind. allNamespaces adds NAMESPACE first for namespaced kinds only.
func Columns(kind string, wide, allNamespaces bool) []string {
	c, ok := columns[kind]
	if !ok {
		return nil
	}
	var out []string
	if allNamespaces && namespaced(kind) {
		out = append(out, "NAMESPACE")
	}
	out = append(out, c.narrow...)
	if wide {
		out = append(out, c.wide...)
	}
	return out
}

func namespaced(kind string) bool { return kind != Nodes && kind != Namespaces }

// Rows returns the rows of kind's table for the objects opts selects, sorted by namespace and
// name, with ages as of now. An unknown kind, or a Name that does not exist, gives no rows.
func Rows(st *state.State, kind string, opts Options, now time.Time) [][]string {
	switch kind {
	case Pods:
		return namespacedRows(st.Pods, opts, func(p *state.Pod) ([]string, map[string]string) {
			return PodRow(&p.Pod, opts, now), p.Metadata.Labels
		})
	case Deployments:
		return namespacedRows(st.Deployments, opts, func(d *state.Deployment) ([]string, map[string]string) {
			return DeploymentRow(&d.Deployment, opts, now), d.Metadata.Labels
		})
	case Services:
		return namespacedRows(st.Services, opts, func(s *state.Service) ([]string, map[string]string) {
			return ServiceRow(&s.Service, opts, now), s.Metadata.Labels
		})
	case Endpoints:
		return namespacedRows(st.Endpoints, opts, func(e *events.Endpoints) ([]string, map[string]string) {
			return EndpointsRow(e, opts, now), e.Metadata.Labels
		})
	case Nodes:
		return clusterRows(st.Nodes, opts, func(n *state.Node) ([]string, map[string]string) {
			return NodeRow(n, opts, now), n.Metadata.Labels
		})
	case Namespaces:
		return clusterRows(st.Namespaces, opts, func(n *events.Namespace) ([]string, map[string]string) {
			return NamespaceRow(n, opts, now), n.Metadata.Labels
		})
	}
	return nil
}

// namespacedRows selects, sorts and prints objects keyed by namespace and name. Rows are built
// only for selected objects, after filtering on labels, so a narrow query over a big namespace
// costs little more than the map walk.
func namespacedRows[T any](m map[state.Key]T, opts Options, row func(T) ([]string, map[string]string)) [][]string {
	ns := opts.namespace()
	if opts.Name != "" && !opts.AllNamespaces {
		obj, ok := m[state.Key{Namespace: ns, Name: opts.Name}]
		if !ok {
			return nil
		}
		r, labels := row(obj)
		if !matches(opts.Selector, labels) {
			return nil
		}
		return [][]string{r}
	}
	// Sorting 150,000 keys by swapping them moves pointers, each move a write barrier while the
	// collector runs (and a big projection keeps it running): sort int32 positions instead,
	// by name within each namespace.
	byNS, selected := map[string][]state.Key{}, 0
	for k := range m {
		if (opts.AllNamespaces || k.Namespace == ns) && (opts.Name == "" || k.Name == opts.Name) {
			byNS[k.Namespace] = append(byNS[k.Namespace], k)
			selected++
		}
	}
	out := make([][]string, 0, selected)
	for _, n := range slices.Sorted(maps.Keys(byNS)) {
		keys := byNS[n]
		order := make([]int32, len(keys))
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortFunc(order, func(a, b int32) int { return strings.Compare(keys[a].Name, keys[b].Name) })
		for _, i := range order {
			r, labels := row(m[keys[i]])
			if matches(opts.Selector, labels) {
				out = append(out, r)
			}
		}
	}
	return out
}

func clusterRows[T any](m map[string]T, opts Options, row func(T) ([]string, map[string]string)) [][]string {
	names := make([]string, 0, len(m))
	for name := range m {
		if opts.Name == "" || name == opts.Name {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([][]string, 0, len(names))
	for _, name := range names {
		r, labels := row(m[name])
		if matches(opts.Selector, labels) {
			out = append(out, r)
		}
	}
	return out
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// lead starts a row: the namespace when listing all of them, then the name.
func lead(opts Options, meta *events.ObjectMeta, n int) []string {
	row := make([]string, 0, n+1)
	if opts.AllNamespaces {
		row = append(row, meta.Namespace)
	}
	return append(row, meta.Name)
}

// DeploymentRow is one Deployment's row.
func DeploymentRow(d *events.Deployment, opts Options, now time.Time) []string {
	row := lead(opts, &d.Metadata, 8)
	row = append(row,
		itoa(d.Status.ReadyReplicas)+"/"+itoa(d.Spec.DesiredReplicas()),
		itoa(d.Status.UpdatedReplicas),
		itoa(d.Status.AvailableReplicas),
		since(d.Metadata.CreationTimestamp, now))
	if opts.Wide {
		var names, images []string
		for _, c := range d.Spec.Template.Spec.Containers {
			names = append(names, c.Name)
			images = append(images, c.Image)
		}
		var sel map[string]string
		if d.Spec.Selector != nil {
			sel = d.Spec.Selector.MatchLabels
		}
		row = append(row, orNone(strings.Join(names, ",")), orNone(strings.Join(images, ",")), orNone(FormatLabels(sel)))
	}
	return row
}

// ServiceRow is one Service's row.
func ServiceRow(s *events.Service, opts Options, now time.Time) []string {
	row := lead(opts, &s.Metadata, 7)
	typ := s.Spec.Type
	if typ == "" {
		typ = "ClusterIP"
	}
	ports := make([]string, 0, len(s.Spec.Ports))
	for _, p := range s.Spec.Ports {
		ports = append(ports, strconv.Itoa(int(p.Port))+"/"+protocol(p.Protocol))
	}
	row = append(row, typ, orNone(s.Spec.ClusterIP), None, orNone(strings.Join(ports, ",")), since(s.Metadata.CreationTimestamp, now))
	if opts.Wide {
		row = append(row, orNone(FormatLabels(s.Spec.Selector)))
	}
	return row
}

// maxEndpoints is how many ip:port pairs an ENDPOINTS cell shows before "+ N more...", so a
// Service with hundreds of pods still prints on one line.
const maxEndpoints = 3

// EndpointsRow is one Endpoints object's row.
func EndpointsRow(e *events.Endpoints, opts Options, now time.Time) []string {
	row := lead(opts, &e.Metadata, 3)
	var shown []string
	total := 0
	for _, a := range e.Addresses {
		ports := a.Ports
		if len(ports) == 0 {
			// An address without ports still counts; kubectl prints the bare IP.
			ports = []events.EndpointPort{{}}
		}
		for _, p := range ports {
			total++
			if len(shown) < maxEndpoints {
				s := a.IP
				if p.Port != 0 {
					s += ":" + itoa(p.Port)
				}
				shown = append(shown, s)
			}
		}
	}
	cell := strings.Join(shown, ",")
	if total > len(shown) {
		cell += " + " + strconv.Itoa(total-len(shown)) + " more..."
	}
	return append(row, orNone(cell), since(e.Metadata.CreationTimestamp, now))
}

// NodeRow is one node's row. It takes the projection's node because the wide columns show what
// is requested of it, which only the fold knows.
func NodeRow(n *state.Node, opts Options, now time.Time) []string {
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			if c.Status == "True" {
				status = "Ready"
			} else {
				status = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	version := n.Metadata.Labels[VersionLabel]
	if version == "" {
		version = "<unknown>"
	}
	row := []string{n.Metadata.Name, status, orNone(strings.Join(roles(n.Metadata.Labels), ",")), since(n.Metadata.CreationTimestamp, now), version}
	if opts.Wide {
		row = append(row,
			orNone(n.Address()),
			orNone(n.Spec.PodCIDR),
			FormatCPU(n.RequestedCPU)+"/"+FormatCPU(n.MilliCPU),
			FormatMemory(n.RequestedMemory)+"/"+FormatMemory(n.Memory),
			strconv.Itoa(n.PodCount)+"/"+itoa(n.MaxPods))
	}
	return row
}

// VersionLabel is the node label the VERSION column shows: the agent's build, set when it
// registers. Kubernetes keeps this in status.nodeInfo, which Skiff's nodes do not have.
const VersionLabel = "skiff.dev/version"

// roles reads node roles from the labels kubectl reads them from.
func roles(labels map[string]string) []string {
	var out []string
	for k, v := range labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			out = append(out, r)
		} else if k == "kubernetes.io/role" && v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NamespaceRow is one namespace's row.
func NamespaceRow(n *events.Namespace, opts Options, now time.Time) []string {
	phase := n.Status.Phase
	if phase == "" {
		phase = "Active"
	}
	return []string{n.Metadata.Name, phase, since(n.Metadata.CreationTimestamp, now)}
}

// FormatLabels prints labels as k=v pairs sorted by key, comma-separated; "" when empty.
func FormatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + labels[k])
	}
	return b.String()
}

// FormatCPU prints millicores as a Kubernetes quantity: whole cores as "4", the rest as "1500m".
func FormatCPU(milli int64) string {
	if milli%1000 == 0 {
		return strconv.FormatInt(milli/1000, 10)
	}
	return strconv.FormatInt(milli, 10) + "m"
}

// FormatMemory prints bytes with the largest binary suffix that keeps it readable: "512Mi",
// "1.5Gi". Whole numbers print without a decimal.
func FormatMemory(b int64) string {
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi"}
	if b < 1024 {
		return strconv.FormatInt(b, 10)
	}
	v, u := float64(b), ""
	for _, next := range units {
		if v < 1024 {
			break
		}
		v /= 1024
		u = next
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + u
}

func protocol(p string) string {
	if p == "" {
		return "TCP"
	}
	return p
}

func orNone(s string) string {
	if s == "" {
		return None
	}
	return s
}

func itoa[T ~int32 | ~int64 | ~int](v T) string { return strconv.FormatInt(int64(v), 10) }
