package table

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// Objects returns the objects of kind (a Resource's Plural) that opts selects, in the Kubernetes
// JSON shape (apiVersion and kind set), sorted by namespace and name. The scheduler answers
// `skiff get -o json|yaml` with it and the CLI prints a fold of its own with it (`get --at`), so
// the two print the same bytes. opts.Wide is ignored.
func Objects(st *state.State, kind string, opts Options) ([]json.RawMessage, error) {
	var out []json.RawMessage
	add := func(meta *events.ObjectMeta, v any) error {
		if !selected(meta, opts) {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s/%s: %w", meta.Namespace, meta.Name, err)
		}
		out = append(out, b)
		return nil
	}
	var err error
	switch kind {
	case Pods:
		for _, k := range sortedKeys(st.Pods) {
			p := st.Pods[k].Pod
			p.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Pod"}
			if err = add(&p.Metadata, &p); err != nil {
				return nil, err
			}
		}
	case Deployments:
		for _, k := range sortedKeys(st.Deployments) {
			d := st.Deployments[k].Deployment
			d.TypeMeta = events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
			if err = add(&d.Metadata, &d); err != nil {
				return nil, err
			}
		}
	case Services:
		for _, k := range sortedKeys(st.Services) {
			s := st.Services[k].Service
			s.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Service"}
			if err = add(&s.Metadata, &s); err != nil {
				return nil, err
			}
		}
	case Endpoints:
		for _, k := range sortedKeys(st.Endpoints) {
			if err = add(&st.Endpoints[k].Metadata, st.Endpoints[k]); err != nil {
				return nil, err
			}
		}
	case Nodes:
		for _, n := range slices.Sorted(maps.Keys(st.Nodes)) {
			node := st.Nodes[n].Node
			if err = add(&node.Metadata, &node); err != nil {
				return nil, err
			}
		}
	case Namespaces:
		for _, n := range slices.Sorted(maps.Keys(st.Namespaces)) {
			ns := *st.Namespaces[n]
			ns.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
			if err = add(&ns.Metadata, &ns); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unknown resource %q: %w", kind, events.ErrInvalidArgument)
	}
	return out, nil
}

func selected(meta *events.ObjectMeta, opts Options) bool {
	if opts.Name != "" && meta.Name != opts.Name {
		return false
	}
	if meta.Namespace != "" && !opts.AllNamespaces && meta.Namespace != opts.namespace() {
		return false
	}
	return matches(opts.Selector, meta.Labels)
}

func sortedKeys[T any](m map[state.Key]T) []state.Key {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b state.Key) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return keys
}
