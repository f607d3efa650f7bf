package admission

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"skiff.dev/events"
	"skiff.dev/events/images"
	"skiff.dev/events/state"
)

// validate checks what can be checked from the document alone, then fills in defaults. It runs on
// the decoded value even when decoding found problems, so one pass reports everything; fields that
// failed to decode are skipped (problems.covered).
func (d *decoded) validate(target any) {
	p := &d.problems
	switch o := target.(type) {
	case *events.Pod:
		o.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: KindPod}
		d.meta(&o.Metadata, true)
		d.nodeName, o.Spec.NodeName = o.Spec.NodeName, ""
		validatePodSpec(p, "spec", &o.Spec, false)
		o.Status = events.PodStatus{}
		defaultPodSpec(&o.Spec)
	case *events.Deployment:
		o.TypeMeta = events.TypeMeta{APIVersion: "apps/v1", Kind: KindDeployment}
		d.meta(&o.Metadata, true)
		validateDeploymentSpec(p, &o.Spec)
		o.Status = events.DeploymentStatus{}
		defaultDeploymentSpec(&o.Spec)
	case *events.Service:
		o.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: KindService}
		d.meta(&o.Metadata, true)
		validateServiceSpec(p, &o.Spec)
		defaultServiceSpec(&o.Spec)
	case *events.Namespace:
		o.TypeMeta = events.TypeMeta{APIVersion: "v1", Kind: KindNamespace}
		d.meta(&o.Metadata, false)
		o.Status = events.NamespaceStatus{}
	}
}

// meta validates metadata, defaults the namespace, and moves the system-owned fields the user
// sent out of the object into d, for Apply to compare with the existing object.
func (d *decoded) meta(m *events.ObjectMeta, namespaced bool) {
	p := &d.problems
	if r := checkDNSLabel(m.Name); r != "" {
		p.add("metadata.name", "%s", r)
	}
	d.name = m.Name
	if namespaced {
		if m.Namespace == "" {
			m.Namespace = state.DefaultNamespace
		} else if r := checkDNSLabel(m.Namespace); r != "" {
			p.add("metadata.namespace", "%s", r)
		}
		d.namespace = m.Namespace
	} else if m.Namespace != "" {
		p.add("metadata.namespace", "a %s is cluster-scoped: remove metadata.namespace", d.kind)
		m.Namespace = ""
	}
	validateLabels(p, "metadata.labels", m.Labels)
	validateAnnotations(p, "metadata.annotations", m.Annotations)
	d.uid, d.ownerRefs = m.UID, m.OwnerReferences
	m.UID, m.OwnerReferences = "", nil
	m.Generation, m.CreationTimestamp, m.DeletionTimestamp = 0, nil, nil
}

func validateLabels(p *problems, path string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if r := checkQualifiedName(k); r != "" {
			p.add(key(path, k), "%s", r)
		}
		if r := checkLabelValue(labels[k]); r != "" {
			p.add(key(path, k), "%s", r)
		}
	}
}

// maxAnnotationBytes is Kubernetes' limit on the total size of an object's annotations.
const maxAnnotationBytes = 256 << 10

func validateAnnotations(p *problems, path string, annotations map[string]string) {
	total := 0
	for _, k := range sortedKeys(annotations) {
		if r := checkQualifiedName(k); r != "" {
			p.add(key(path, k), "%s", r)
		}
		total += len(k) + len(annotations[k])
	}
	if total > maxAnnotationBytes {
		p.add(path, "annotations hold %d bytes, more than the limit of %d", total, maxAnnotationBytes)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func quoteAll(vals ...string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

func validatePodSpec(p *problems, path string, spec *events.PodSpec, template bool) {
	cpath := join(path, "containers")
	if len(spec.Containers) == 0 {
		p.add(cpath, "required value: a pod needs at least one container")
	}
	names := map[string]string{} // container name → where it is, init containers included
	portNames := map[string]string{}
	ports := map[string]string{}
	type group struct {
		field string
		list  []events.Container
	}
	for _, g := range []group{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for i := range g.list {
			c := &g.list[i]
			ci := index(join(path, g.field), i)
			if r := checkDNSLabel(c.Name); r != "" {
				p.add(join(ci, "name"), "%s", r)
			} else if other, dup := names[c.Name]; dup {
				p.add(join(ci, "name"), "duplicate container name %q (also %s)", c.Name, strings.TrimPrefix(other, path+"."))
			} else {
				names[c.Name] = ci
			}
			switch {
			case c.Image == "":
				p.add(join(ci, "image"), "required value")
			case strings.TrimSpace(c.Image) != c.Image || strings.ContainsAny(c.Image, " \t\n"):
				p.add(join(ci, "image"), "image %q must not contain whitespace", c.Image)
			default:
				if _, err := images.Parse(c.Image); err != nil {
					p.add(join(ci, "image"), "%v", err)
				}
			}
			switch c.ImagePullPolicy {
			case "", events.PullAlways, events.PullIfNotPresent, events.PullNever:
			default:
				p.add(join(ci, "imagePullPolicy"), "unsupported value %q: supported values: %q, %q, %q",
					c.ImagePullPolicy, events.PullAlways, events.PullIfNotPresent, events.PullNever)
			}
			for j, e := range c.Env {
				ei := index(join(ci, "env"), j)
				ep := join(ei, "name")
				switch {
				case e.Name == "":
					p.add(ep, "required value")
				case strings.Contains(e.Name, "="):
					p.add(ep, "%q must not contain '='", e.Name)
				case strings.IndexFunc(e.Name, func(r rune) bool { return r < '!' || r > '~' }) >= 0:
					p.add(ep, "%q must consist of printable ASCII characters other than space", e.Name)
				}
				if e.ValueFrom != nil {
					validateEnvSource(p, ei, &e, spec)
				}
			}
			for j, cp := range c.Ports {
				pp := index(join(ci, "ports"), j)
				if cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
					p.add(join(pp, "containerPort"), "must be between 1 and 65535, inclusive (got %d)", cp.ContainerPort)
				}
				proto := cp.Protocol
				switch proto {
				case "":
					proto = "TCP"
				case "TCP", "UDP":
				case "SCTP":
					p.add(join(pp, "protocol"), "SCTP is not supported by Skiff: use TCP or UDP")
				default:
					p.add(join(pp, "protocol"), "unsupported value %q: supported values: %s", cp.Protocol, quoteAll("TCP", "UDP"))
				}
				if cp.Name != "" {
					if r := checkPortName(cp.Name); r != "" {
						p.add(join(pp, "name"), "%s", r)
					} else if other, dup := portNames[cp.Name]; dup {
						p.add(join(pp, "name"), "duplicate port name %q (also %s): named target ports of Services must be unambiguous", cp.Name, other)
					} else {
						portNames[cp.Name] = pp
					}
				}
				if cp.ContainerPort >= 1 && cp.ContainerPort <= 65535 {
					k := fmt.Sprintf("%d/%s", cp.ContainerPort, proto)
					if other, dup := ports[k]; dup {
						p.add(join(pp, "containerPort"), "duplicate port %s (also %s): the containers of a pod share one network namespace", k, other)
					} else {
						ports[k] = pp
					}
				}
			}
			validateResources(p, join(ci, "resources"), &c.Resources)
		}
	}
	rp := join(path, "restartPolicy")
	switch spec.RestartPolicy {
	case "", events.RestartAlways:
	case events.RestartOnFailure, events.RestartNever:
		if template {
			p.add(rp, "unsupported value %q: a Deployment's pods must have restartPolicy \"Always\"", spec.RestartPolicy)
		}
	default:
		p.add(rp, "unsupported value %q: supported values: %s", spec.RestartPolicy, quoteAll(events.RestartAlways, events.RestartOnFailure, events.RestartNever))
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		p.add(join(path, "terminationGracePeriodSeconds"), "must be greater than or equal to 0 (got %d)", *g)
	}
	validateLabels(p, join(path, "nodeSelector"), spec.NodeSelector)
	for i, t := range spec.Tolerations {
		validateToleration(p, index(join(path, "tolerations"), i), t)
	}
	for _, f := range []struct{ name, value string }{{"hostname", spec.Hostname}, {"subdomain", spec.Subdomain}} {
		if f.value == "" {
			continue
		}
		if r := checkDNSLabel(f.value); r != "" {
			p.add(join(path, f.name), "%s", r)
		}
	}
	if template && spec.NodeName != "" {
		p.add(join(path, "nodeName"), "must not be set in a pod template: the scheduler places a Deployment's pods; use nodeSelector")
	}
}

var resourceUnits = map[string]struct {
	parse func(string) (int64, error)
	want  string
}{
	"cpu":                           {events.ParseCPU, `cores ("0.5", "2") or millicores ("500m")`},
	"memory":                        {events.ParseMemory, `bytes ("1048576") or a number with a suffix Ki, Mi, Gi, Ti, Pi, k, M, G, T, P ("128Mi")`},
	events.ResourceEphemeralStorage: {events.ParseMemory, `bytes ("1048576") or a number with a suffix Ki, Mi, Gi, Ti, Pi, k, M, G, T, P ("1Gi")`},
}

// extendedUnit is how extended resources ("nvidia.com/gpu") are counted: whole units.
var extendedUnit = struct {
	parse func(string) (int64, error)
	want  string
}{events.ParseCount, `a whole number of units ("1")`}

func validateResources(p *problems, path string, r *events.ResourceRequirements) {
	parsed := map[string]map[string]int64{}
	for _, part := range []struct {
		name string
		list events.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		parsed[part.name] = map[string]int64{}
		for _, res := range sortedKeys(part.list) {
			fp := join(join(path, part.name), res)
			unit, ok := resourceUnits[res]
			if !ok && events.IsExtendedResource(res) {
				unit, ok = extendedUnit, true
			}
			if !ok {
				p.add(fp, "unsupported resource %q: Skiff schedules cpu, memory, ephemeral-storage and extended resources named by a domain (\"example.com/device\")", res)
				continue
			}
			v, err := unit.parse(part.list[res])
			if err != nil {
				p.add(fp, "%q is not a %s quantity: want %s", part.list[res], res, unit.want)
				continue
			}
			parsed[part.name][res] = v
		}
	}
	for _, res := range []string{"cpu", "memory", events.ResourceEphemeralStorage} {
		req, hasReq := parsed["requests"][res]
		lim, hasLim := parsed["limits"][res]
		if hasReq && hasLim && req > lim {
			p.add(join(join(path, "requests"), res), "must be less than or equal to the %s limit (%s)", res, r.Limits[res])
		}
	}
	// Extended resources are not overcommitted: a request needs a limit, and equals it (a limit
	// alone requests itself), as in Kubernetes.
	for _, res := range sortedKeys(r.Requests) {
		req, ok := parsed["requests"][res]
		if !ok || !events.IsExtendedResource(res) {
			continue
		}
		if lim, hasLim := parsed["limits"][res]; !hasLim || lim != req {
			p.add(join(join(path, "requests"), res), "must equal the %s limit: extended resources cannot be overcommitted (set the limit; a limit alone requests itself)", res)
		}
	}
}

// validateEnvSource checks an environment variable's valueFrom: no value beside it, exactly
// one source, a field the downward API offers, a container of the pod.
func validateEnvSource(p *problems, path string, e *events.EnvVar, spec *events.PodSpec) {
	vf := join(path, "valueFrom")
	if e.Value != "" {
		p.add(join(path, "value"), "may not be set when valueFrom is")
	}
	src := e.ValueFrom
	switch {
	case src.FieldRef == nil && src.ResourceFieldRef == nil:
		if p.inside(vf) {
			return // a source Skiff does not support was named already
		}
		p.add(vf, "required value: one of fieldRef or resourceFieldRef (configMapKeyRef and secretKeyRef are not supported)")
	case src.FieldRef != nil && src.ResourceFieldRef != nil:
		p.add(vf, "may not have more than one source: fieldRef and resourceFieldRef are both set")
	case src.FieldRef != nil:
		if why := events.CheckFieldPath(src.FieldRef.FieldPath); why != "" {
			p.add(join(join(vf, "fieldRef"), "fieldPath"), "%s", why)
		}
		if v := src.FieldRef.APIVersion; v != "" && v != "v1" {
			p.add(join(join(vf, "fieldRef"), "apiVersion"), "unsupported value %q: only \"v1\"", v)
		}
	default:
		r := src.ResourceFieldRef
		rp := join(vf, "resourceFieldRef")
		if why := events.CheckResourceField(r.Resource, r.Divisor); why != "" {
			p.add(rp, "%s", why)
		}
		if r.ContainerName != "" && !slices.ContainsFunc(spec.Containers, func(c events.Container) bool { return c.Name == r.ContainerName }) {
			p.add(join(rp, "containerName"), "no container %q in the pod", r.ContainerName)
		}
	}
}

var tolerationEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

func validateToleration(p *problems, path string, t events.Toleration) {
	if t.Key != "" {
		if r := checkQualifiedName(t.Key); r != "" {
			p.add(join(path, "key"), "%s", r)
		}
	}
	switch t.Operator {
	case "", "Equal":
		if t.Key == "" {
			p.add(join(path, "operator"), "must be \"Exists\" when key is empty (a toleration of every taint)")
		}
		if r := checkLabelValue(t.Value); r != "" {
			p.add(join(path, "value"), "%s", r)
		}
	case "Exists":
		if t.Value != "" {
			p.add(join(path, "value"), "must be empty when operator is \"Exists\"")
		}
	default:
		p.add(join(path, "operator"), "unsupported value %q: supported values: %s", t.Operator, quoteAll("Equal", "Exists"))
	}
	if t.Effect != "" && !slices.Contains(tolerationEffects, t.Effect) {
		p.add(join(path, "effect"), "unsupported value %q: supported values: %s (or empty for all)", t.Effect, quoteAll(tolerationEffects...))
	}
	if t.TolerationSeconds != nil && t.Effect != "NoExecute" {
		p.add(join(path, "tolerationSeconds"), "may only be set when effect is \"NoExecute\"")
	}
}

func defaultPodSpec(spec *events.PodSpec) {
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = events.RestartAlways
	}
	if spec.TerminationGracePeriodSeconds == nil {
		g := int64(events.DefaultGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &g
	}
	for i := range spec.Containers {
		for j := range spec.Containers[i].Ports {
			if spec.Containers[i].Ports[j].Protocol == "" {
				spec.Containers[i].Ports[j].Protocol = "TCP"
			}
		}
	}
}

func validateDeploymentSpec(p *problems, spec *events.DeploymentSpec) {
	if spec.Replicas != nil && *spec.Replicas < 0 {
		p.add("spec.replicas", "must be greater than or equal to 0 (got %d)", *spec.Replicas)
	}
	if spec.MinReadySeconds < 0 {
		p.add("spec.minReadySeconds", "must be greater than or equal to 0 (got %d)", spec.MinReadySeconds)
	}
	if spec.RevisionHistoryLimit != nil && *spec.RevisionHistoryLimit < 0 {
		p.add("spec.revisionHistoryLimit", "must be greater than or equal to 0 (got %d)", *spec.RevisionHistoryLimit)
	}
	if d := spec.ProgressDeadlineSeconds; d != nil && (*d <= 0 || *d <= spec.MinReadySeconds) {
		p.add("spec.progressDeadlineSeconds", "must be greater than 0 and than spec.minReadySeconds (%d) (got %d)", spec.MinReadySeconds, *d)
	}
	if spec.Selector == nil || len(spec.Selector.MatchLabels) == 0 {
		p.add("spec.selector.matchLabels", "required value: the labels that select the Deployment's pods (and that spec.template.metadata.labels must have)")
	} else {
		validateLabels(p, "spec.selector.matchLabels", spec.Selector.MatchLabels)
	}
	tm := &spec.Template.Metadata
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"name", tm.Name != ""}, {"namespace", tm.Namespace != ""}, {"uid", tm.UID != ""},
		{"ownerReferences", len(tm.OwnerReferences) > 0},
	} {
		if f.set {
			p.add("spec.template.metadata."+f.name, "not allowed in a pod template: the Deployment sets it on each pod")
		}
	}
	tm.CreationTimestamp, tm.DeletionTimestamp, tm.Generation = nil, nil, 0
	validateLabels(p, "spec.template.metadata.labels", tm.Labels)
	validateAnnotations(p, "spec.template.metadata.annotations", tm.Annotations)
	if spec.Selector != nil && len(spec.Selector.MatchLabels) > 0 && !p.covered("spec.template.metadata.labels") {
		var missing []string
		for _, k := range sortedKeys(spec.Selector.MatchLabels) {
			if v, ok := tm.Labels[k]; !ok || v != spec.Selector.MatchLabels[k] {
				missing = append(missing, k+"="+spec.Selector.MatchLabels[k])
			}
		}
		if len(missing) > 0 {
			p.add("spec.template.metadata.labels", "selector does not match template labels: the template needs %s (from spec.selector.matchLabels)", strings.Join(missing, ", "))
		}
	}
	validatePodSpec(p, "spec.template.spec", &spec.Template.Spec, true)

	st := &spec.Strategy
	switch st.Type {
	case "", "RollingUpdate":
		if ru := st.RollingUpdate; ru != nil {
			surge := checkIntOrPercent(p, "spec.strategy.rollingUpdate.maxSurge", ru.MaxSurge, false)
			unavail := checkIntOrPercent(p, "spec.strategy.rollingUpdate.maxUnavailable", ru.MaxUnavailable, true)
			if ru.MaxSurge != nil && ru.MaxUnavailable != nil && surge == 0 && unavail == 0 {
				p.add("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0: the rollout could never make progress")
			}
		}
	case "Recreate":
		if st.RollingUpdate != nil {
			p.add("spec.strategy.rollingUpdate", "may not be set when strategy type is \"Recreate\"")
		}
	default:
		p.add("spec.strategy.type", "unsupported value %q: supported values: %s", st.Type, quoteAll("RollingUpdate", "Recreate"))
	}
}

// checkIntOrPercent validates a maxSurge/maxUnavailable value and returns it (percent or count),
// or -1 when it is invalid or unset.
func checkIntOrPercent(p *problems, path string, v *events.IntOrString, atMost100 bool) int {
	if v == nil || p.covered(path) {
		return -1
	}
	if !v.IsString {
		if v.IntVal < 0 {
			p.add(path, "must be greater than or equal to 0 (got %d)", v.IntVal)
			return -1
		}
		return int(v.IntVal)
	}
	num, ok := strings.CutSuffix(v.StrVal, "%")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 {
		p.add(path, "%q must be an integer or a percentage (\"25%%\")", v.StrVal)
		return -1
	}
	if atMost100 && n > 100 {
		p.add(path, "%q must not be greater than 100%%", v.StrVal)
		return -1
	}
	return n
}

func defaultDeploymentSpec(spec *events.DeploymentSpec) {
	if spec.Replicas == nil {
		one := int32(1)
		spec.Replicas = &one
	}
	if spec.Strategy.Type == "" {
		spec.Strategy.Type = "RollingUpdate"
	}
	if spec.Strategy.Type == "RollingUpdate" {
		if spec.Strategy.RollingUpdate == nil {
			spec.Strategy.RollingUpdate = &events.RollingUpdateDeployment{}
		}
		ru := spec.Strategy.RollingUpdate
		if ru.MaxSurge == nil {
			ru.MaxSurge = events.FromString("25%")
		}
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = events.FromString("25%")
		}
	}
	defaultPodSpec(&spec.Template.Spec)
}

func validateServiceSpec(p *problems, spec *events.ServiceSpec) {
	switch spec.Type {
	case "", "ClusterIP":
	default:
		p.add("spec.type", "unsupported value %q: Skiff supports only \"ClusterIP\" Services", spec.Type)
	}
	validateLabels(p, "spec.selector", spec.Selector)
	if len(spec.Ports) == 0 && !p.covered("spec.ports") {
		p.add("spec.ports", "required value: a Service needs at least one port")
	}
	names := map[string]int{}
	ports := map[string]int{}
	for i, sp := range spec.Ports {
		pp := index("spec.ports", i)
		switch {
		case sp.Name == "" && len(spec.Ports) > 1:
			p.add(join(pp, "name"), "required value: every port of a Service with several ports needs a name")
		case sp.Name != "":
			if r := checkDNSLabel(sp.Name); r != "" {
				p.add(join(pp, "name"), "%s", r)
			} else if j, dup := names[sp.Name]; dup {
				p.add(join(pp, "name"), "duplicate port name %q (also spec.ports[%d])", sp.Name, j)
			} else {
				names[sp.Name] = i
			}
		}
		proto := sp.Protocol
		switch proto {
		case "":
			proto = "TCP"
		case "TCP", "UDP":
		default:
			p.add(join(pp, "protocol"), "unsupported value %q: supported values: %s", sp.Protocol, quoteAll("TCP", "UDP"))
		}
		if sp.Port < 1 || sp.Port > 65535 {
			p.add(join(pp, "port"), "must be between 1 and 65535, inclusive (got %d)", sp.Port)
		} else {
			k := fmt.Sprintf("%d/%s", sp.Port, proto)
			if j, dup := ports[k]; dup {
				p.add(join(pp, "port"), "duplicate port %s (also spec.ports[%d])", k, j)
			} else {
				ports[k] = i
			}
		}
		if tp := sp.TargetPort; tp != nil {
			tpath := join(pp, "targetPort")
			if tp.IsString {
				if r := checkPortName(tp.StrVal); r != "" {
					p.add(tpath, "%s; or give the port number as an integer", r)
				}
			} else if tp.IntVal < 1 || tp.IntVal > 65535 {
				p.add(tpath, "must be between 1 and 65535, inclusive (got %d)", tp.IntVal)
			}
		}
	}
	switch ip := spec.ClusterIP; {
	case ip == "":
	case ip == "None":
		p.add("spec.clusterIP", "headless Services (clusterIP: None) are not supported by Skiff")
	default:
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			p.add("spec.clusterIP", "%q is not an IPv4 address", ip)
		}
	}
}

func defaultServiceSpec(spec *events.ServiceSpec) {
	if spec.Type == "" {
		spec.Type = "ClusterIP"
	}
	for i := range spec.Ports {
		sp := &spec.Ports[i]
		if sp.Protocol == "" {
			sp.Protocol = "TCP"
		}
		if sp.TargetPort == nil {
			sp.TargetPort = events.FromInt(sp.Port)
		}
	}
}
