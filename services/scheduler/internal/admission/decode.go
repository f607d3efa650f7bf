package admission

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// Object is a decoded, validated and defaulted manifest: one of *events.Pod, *events.Deployment,
// *events.Service or *events.Namespace.
type Object any

// Supported kinds, as written in manifests.
const (
	KindPod        = "Pod"
	KindDeployment = "Deployment"
	KindService    = "Service"
	KindNamespace  = "Namespace"
)

// apiVersions is the one apiVersion each supported kind is served as.
var apiVersions = map[string]string{
	KindPod:        "v1",
	KindDeployment: "apps/v1",
	KindService:    "v1",
	KindNamespace:  "v1",
}

// Decode decodes one manifest document strictly, validates it and fills in defaults. It needs
// neither the cluster's state nor admission's configuration, so clients can run it before
// sending; what only the cluster can tell (namespace exists, clusterIP in range and free, spec
// changes of existing objects) is checked by Apply. The Object is nil when there are causes.
func Decode(doc api.Document) (Object, []api.Cause) {
	d := decodeDocument(doc)
	if len(d.problems.list) > 0 {
		causes := make([]api.Cause, len(d.problems.list))
		for i, p := range d.problems.list {
			causes[i] = api.Cause{Document: d.where, Field: p.path, Reason: p.reason}
		}
		return nil, causes
	}
	return d.obj, nil
}

// decoded is one document of a request after Decode, with what Apply needs to know besides the
// object: which defaults were filled in, and the system-owned fields the user sent.
type decoded struct {
	where     string
	kind      string // KindPod, ...; "" when the document has no supported kind
	namespace string // defaulted; "" for Namespaces
	name      string
	obj       Object
	// replicasSet and clusterIPSet say whether the manifest set spec.replicas (Deployment) or
	// spec.clusterIP (Service). When it did not, an existing object keeps its value, as with
	// kubectl apply: `skiff scale` survives a re-apply, and a Service keeps its address.
	replicasSet, clusterIPSet bool
	// ownerRefs and nodeName are system-owned fields that `get -o yaml` prints; Apply accepts them
	// only when they equal what the existing object has.
	ownerRefs []events.OwnerReference
	nodeName  string
	uid       string
	problems  problems
	pos       map[string]int // see order
	// rawKind is the kind as written, for messages about kinds Skiff does not support.
	rawKind string
}

func (d *decoded) label() string {
	if d.kind == "" && d.rawKind != "" {
		return objectLabel(d.rawKind, d.name, d.where)
	}
	return objectLabel(d.kind, d.name, d.where)
}

func decodeDocument(doc api.Document) *decoded {
	d := &decoded{where: doc.Where()}
	p := &d.problems
	tree, err := parseTree(doc.Object, func(path string) { p.add(path, "duplicate field") })
	if err != nil {
		p.add("", "not valid JSON: %v", err)
		return d
	}
	if tree.kind != nodeObject {
		p.add("", "a manifest must be an object with apiVersion, kind, metadata (and spec), not %s", tree.describe())
		return d
	}
	apiVersion, kind := tree.get("apiVersion"), tree.get("kind")
	switch {
	case kind == nil || kind.kind == nodeNull || kind.kind == nodeString && kind.text == "":
		p.add("kind", "required value: one of Pod, Deployment, Service, Namespace")
		return d
	case kind.kind != nodeString:
		p.add("kind", "expected a string, got %s", kind.describe())
		return d
	}
	want, ok := apiVersions[kind.text]
	if !ok {
		d.rawKind = kind.text
		if n := tree.get("metadata").get("name"); n != nil && n.kind == nodeString {
			d.name = n.text
		}
		hint := "Skiff supports Pod (v1), Deployment (apps/v1), Service (v1) and Namespace (v1)"
		if kind.text == "List" {
			hint = "apply the items of a List as separate documents"
		}
		p.add("kind", "unsupported kind %q: %s", kind.text, hint)
		return d
	}
	d.kind = kind.text
	switch {
	case apiVersion == nil || apiVersion.kind == nodeNull || apiVersion.kind == nodeString && apiVersion.text == "":
		p.add("apiVersion", "required value: %s is served as %s", d.kind, want)
	case apiVersion.kind != nodeString:
		p.add("apiVersion", "expected a string, got %s", apiVersion.describe())
	case apiVersion.text != want:
		p.add("apiVersion", "%s is served as %s, not %q", d.kind, want, apiVersion.text)
	}

	var target any
	switch d.kind {
	case KindPod:
		target = &events.Pod{}
	case KindDeployment:
		target = &events.Deployment{}
	case KindService:
		target = &events.Service{}
	case KindNamespace:
		target = &events.Namespace{}
	}
	w := walker{p: p, present: map[string]bool{}, pos: map[string]int{}}
	w.value("", tree, reflect.ValueOf(target).Elem())
	d.replicasSet = w.present["spec.replicas"]
	d.clusterIPSet = w.present["spec.clusterIP"]
	d.pos = w.pos
	d.validate(target)
	d.obj = target
	d.sortProblems(p.list)
	return d
}

// order is where path sits in the document, so problems read top to bottom like the manifest. A
// field that is missing sorts with its closest parent that is there.
func (d *decoded) order(path string) int {
	for q := path; q != ""; q = parentPath(q) {
		if i, ok := d.pos[q]; ok {
			return i
		}
	}
	return -1
}

func (d *decoded) sortProblems(ps []problem) {
	sort.SliceStable(ps, func(i, j int) bool { return d.order(ps[i].path) < d.order(ps[j].path) })
}

// walker decodes a tree into a Go value by walking it against the value's type (the json tags of
// events' object types), collecting every unknown field and type mismatch with its path.
type walker struct {
	p       *problems
	present map[string]bool // paths with a non-null value
	pos     map[string]int  // paths in document order
}

func (w *walker) mark(path string) {
	if _, ok := w.pos[path]; !ok {
		w.pos[path] = len(w.pos)
	}
}

var (
	intOrStringType  = reflect.TypeFor[events.IntOrString]()
	resourceListType = reflect.TypeFor[events.ResourceList]()
	stringMapType    = reflect.TypeFor[map[string]string]()
)

func (w *walker) value(path string, n *node, v reflect.Value) {
	if n.kind == nodeNull {
		// null means "not set", as in Kubernetes (yaml `creationTimestamp: null`, `resources: {}`).
		return
	}
	w.present[path] = true
	w.mark(path)
	t := v.Type()
	switch {
	case t == intOrStringType:
		switch n.kind {
		case nodeString:
			v.Set(reflect.ValueOf(events.IntOrString{IsString: true, StrVal: n.text}))
		case nodeNumber:
			i, ok := w.integer(path, n, 32)
			if ok {
				v.Set(reflect.ValueOf(events.IntOrString{IntVal: int32(i)}))
			}
		default:
			w.p.addDecode(path, "expected an integer or a string, got %s", n.describe())
		}
		return
	case t == resourceListType:
		if n.kind != nodeObject {
			w.p.addDecode(path, "expected an object of quantities (cpu: 250m, memory: 128Mi), got %s", n.describe())
			return
		}
		m := events.ResourceList{}
		for _, f := range n.fields {
			fp := join(path, f.name)
			w.mark(fp)
			switch f.val.kind {
			case nodeString, nodeNumber:
				// YAML `cpu: 1` arrives as a number; Kubernetes quantities accept both.
				m[f.name] = f.val.text
			case nodeNull:
			default:
				w.p.addDecode(fp, "expected a quantity such as \"250m\" or \"128Mi\", got %s", f.val.describe())
			}
		}
		v.Set(reflect.ValueOf(m))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		e := reflect.New(t.Elem())
		w.value(path, n, e.Elem())
		v.Set(e)
	case reflect.Struct:
		w.object(path, n, v)
	case reflect.Slice:
		if n.kind != nodeArray {
			w.p.addDecode(path, "expected a list, got %s", n.describe())
			return
		}
		s := reflect.MakeSlice(t, len(n.items), len(n.items))
		for i, item := range n.items {
			w.value(index(path, i), item, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if t != stringMapType {
			panic(fmt.Sprintf("admission: no decoder for %v at %s", t, path))
		}
		if n.kind != nodeObject {
			w.p.addDecode(path, "expected an object of strings, got %s", n.describe())
			return
		}
		m := make(map[string]string, len(n.fields))
		for _, f := range n.fields {
			w.mark(key(path, f.name))
			switch f.val.kind {
			case nodeString:
				m[f.name] = f.val.text
			case nodeNull:
				// Dropped: Kubernetes treats a null entry as absent.
			case nodeNumber, nodeBool:
				w.p.addDecode(key(path, f.name), "expected a string, got %s: quote it (\"%s\")", f.val.describe(), nodeText(f.val))
			default:
				w.p.addDecode(key(path, f.name), "expected a string, got %s", f.val.describe())
			}
		}
		v.Set(reflect.ValueOf(m))
	case reflect.String:
		switch n.kind {
		case nodeString:
			v.SetString(n.text)
		case nodeNumber, nodeBool:
			w.p.addDecode(path, "expected a string, got %s: quote it (\"%s\")", n.describe(), nodeText(n))
		default:
			w.p.addDecode(path, "expected a string, got %s", n.describe())
		}
	case reflect.Int32, reflect.Int64:
		if i, ok := w.integer(path, n, t.Bits()); ok {
			v.SetInt(i)
		}
	case reflect.Bool:
		if n.kind != nodeBool {
			w.p.addDecode(path, "expected true or false, got %s", n.describe())
			return
		}
		v.SetBool(n.b)
	default:
		panic(fmt.Sprintf("admission: no decoder for %v at %s", t, path))
	}
}

func nodeText(n *node) string {
	if n.kind == nodeBool {
		return strconv.FormatBool(n.b)
	}
	return n.text
}

func (w *walker) integer(path string, n *node, bits int) (int64, bool) {
	if n.kind != nodeNumber {
		w.p.addDecode(path, "expected an integer, got %s", n.describe())
		return 0, false
	}
	i, err := strconv.ParseInt(n.text, 10, bits)
	if err == nil {
		return i, true
	}
	if errors.Is(err, strconv.ErrRange) {
		w.p.addDecode(path, "%s is out of range for a %d-bit integer", n.text, bits)
		return 0, false
	}
	// Whole floats written as 1e3 or 80.0 are integers too.
	if f, ferr := strconv.ParseFloat(n.text, 64); ferr == nil && f == float64(int64(f)) {
		lo, hi := -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1
		if int64(f) >= lo && int64(f) <= hi {
			return int64(f), true
		}
		w.p.addDecode(path, "%s is out of range for a %d-bit integer", n.text, bits)
		return 0, false
	}
	w.p.addDecode(path, "expected an integer, got %s", n.describe())
	return 0, false
}

func (w *walker) object(path string, n *node, v reflect.Value) {
	if n.kind != nodeObject {
		w.p.addDecode(path, "expected an object, got %s", n.describe())
		return
	}
	t := v.Type()
	fields := jsonFields(t)
	for _, f := range n.fields {
		fp := join(path, f.name)
		w.mark(fp)
		if ignoredFields[t][f.name] || path == "" && f.name == "status" {
			// System-owned and read-only: what `get -o yaml` prints can be applied again.
			continue
		}
		idx, ok := fields[f.name]
		if !ok {
			w.p.addDecode(fp, "%s", unknownField(t, f.name, fields))
			continue
		}
		w.value(fp, f.val, v.FieldByIndex(idx))
	}
}

// ignoredFields are system-owned metadata fields. They are accepted and dropped, as Kubernetes
// drops them on create, so output of `get -o yaml` applies again; `status` at the top of any
// object is dropped the same way. metadata.uid, metadata.ownerReferences and spec.nodeName are not
// here: Apply compares them with the existing object.
//
// Some pod fields change nothing in Skiff and are accepted and dropped the same way, so that
// manifests that set them apply (docs/manifests.md lists them): where a container's termination
// message goes (Skiff reports the last log lines of no container), and the Docker-link style
// environment variables for Services (Skiff sets none, which is what enableServiceLinks: false
// asks for; true asks for variables nobody should rely on).
var ignoredFields = map[reflect.Type]map[string]bool{
	reflect.TypeFor[events.ObjectMeta](): {
		"creationTimestamp": true, "deletionTimestamp": true, "deletionGracePeriodSeconds": true,
		"generation": true, "resourceVersion": true, "selfLink": true, "managedFields": true,
	},
	reflect.TypeFor[events.Container](): {"terminationMessagePath": true, "terminationMessagePolicy": true},
	reflect.TypeFor[events.PodSpec]():   {"enableServiceLinks": true},
}

// kubernetesOnly lists fields Kubernetes has that Skiff does not support, to tell them apart from
// typos in error messages.
var kubernetesOnly = map[reflect.Type][]string{
	reflect.TypeFor[events.ObjectMeta](): {"generateName", "finalizers"},
	reflect.TypeFor[events.PodSpec](): {"volumes", "ephemeralContainers", "affinity",
		"topologySpreadConstraints", "hostNetwork", "hostPID", "hostIPC", "serviceAccountName",
		"serviceAccount", "automountServiceAccountToken", "securityContext", "dnsPolicy", "dnsConfig",
		"hostAliases", "schedulerName", "priorityClassName", "priority",
		"preemptionPolicy", "imagePullSecrets", "activeDeadlineSeconds",
		"runtimeClassName", "shareProcessNamespace", "readinessGates", "overhead", "os",
		"setHostnameAsFQDN", "schedulingGates", "resourceClaims"},
	reflect.TypeFor[events.Container](): {"volumeMounts", "volumeDevices",
		"livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "securityContext", "envFrom",
		"stdin", "stdinOnce", "tty",
		"resizePolicy", "restartPolicy"},
	reflect.TypeFor[events.EnvVarSource]():         {"configMapKeyRef", "secretKeyRef"},
	reflect.TypeFor[events.ContainerPort]():        {"hostPort", "hostIP"},
	reflect.TypeFor[events.ResourceRequirements](): {"claims"},
	reflect.TypeFor[events.LabelSelector]():        {"matchExpressions"},
	reflect.TypeFor[events.ServiceSpec](): {"clusterIPs", "externalIPs", "externalName", "sessionAffinity",
		"sessionAffinityConfig", "loadBalancerIP", "loadBalancerSourceRanges", "loadBalancerClass",
		"externalTrafficPolicy", "internalTrafficPolicy", "healthCheckNodePort", "ipFamilies",
		"ipFamilyPolicy", "publishNotReadyAddresses", "allocateLoadBalancerNodePorts", "trafficDistribution"},
	reflect.TypeFor[events.ServicePort]():    {"nodePort", "appProtocol"},
	reflect.TypeFor[events.Namespace]():      {"spec"},
	reflect.TypeFor[events.OwnerReference](): {"blockOwnerDeletion"},
}

func unknownField(t reflect.Type, name string, fields map[string][]int) string {
	for _, k := range kubernetesOnly[t] {
		if k == name {
			return "field not supported by Skiff (see docs/manifests.md for what is)"
		}
	}
	var names []string
	for n := range fields {
		if !systemOwned[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(name), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown field; did you mean %q?", best)
	}
	return "unknown field; supported here: " + strings.Join(names, ", ")
}

// systemOwned fields are not offered as suggestions.
var systemOwned = map[string]bool{"uid": true, "ownerReferences": true, "nodeName": true, "status": true,
	"creationTimestamp": true, "deletionTimestamp": true, "generation": true}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

// jsonFields maps the JSON names of t's fields, including those of embedded inline structs
// (TypeMeta), to their index paths.
func jsonFields(t reflect.Type) map[string][]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if f.Anonymous || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Index
	}
	fieldCache.Store(t, m)
	return m
}
