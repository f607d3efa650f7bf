package state

import (
	"maps"
	"reflect"
	"slices"

	"skiff.dev/events"
)

// template is what the pods of one controlling owner have in common: a Deployment's pods differ
// only in name, UID and status, yet each PodCreated decodes its own copy of the spec, labels and
// owner references (with slack capacity from the decoder). At 150,000 pods those copies were
// about a third of the scheduler's heap (#9); the fold keeps one per owner instead.
//
// A pod's spec, labels, annotations and owner references are therefore shared and must be
// treated as read-only by everyone who reads the state, as the rest of the state already is.
// The shared slices are clipped (cap == len), so an append by a careless reader copies rather
// than writing into a neighbour's pod.
type template struct {
	spec        events.PodSpec
	labels      map[string]string
	annotations map[string]string
	owners      []events.OwnerReference
}

// shareTemplates is off only in the memory benchmark's baseline.
var shareTemplates = true

// share makes pod use its owner's template where its fields equal it, and makes its fields the
// template where they do not (a rollout's new pods replace the old template as they come).
func (s *State) share(pod *Pod) {
	if !shareTemplates {
		return
	}
	t := s.templates[pod.OwnerUID]
	if t == nil {
		t = &template{}
		s.templates[pod.OwnerUID] = t
	}
	pod.Spec = clipSpec(pod.Spec)
	adopt(&t.spec, &pod.Spec, func(a, b events.PodSpec) bool { return reflect.DeepEqual(&a, &b) })
	meta := &pod.Metadata
	adopt(&t.labels, &meta.Labels, maps.Equal)
	adopt(&t.annotations, &meta.Annotations, maps.Equal)
	meta.OwnerReferences = slices.Clip(meta.OwnerReferences)
	adopt(&t.owners, &meta.OwnerReferences, slices.Equal)
}

// adopt points *v at the template's *t when the two are equal, and makes *v the template when
// they are not.
func adopt[T any](t, v *T, equal func(T, T) bool) {
	if equal(*t, *v) {
		*v = *t
	} else {
		*t = *v
	}
}

// clipSpec returns spec with its slices, and its containers' slices, clipped to their length.
func clipSpec(spec events.PodSpec) events.PodSpec {
	spec.Containers = slices.Clip(spec.Containers)
	for i := range spec.Containers {
		c := &spec.Containers[i]
		c.Command, c.Args = slices.Clip(c.Command), slices.Clip(c.Args)
		c.Env, c.Ports = slices.Clip(c.Env), slices.Clip(c.Ports)
	}
	spec.Tolerations = slices.Clip(spec.Tolerations)
	return spec
}
