package admission

import (
	"context"
	"fmt"
	"strings"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
)

// KindNode names nodes in delete requests; nodes are not applied from manifests.
const KindNode = "Node"

// kindAliases maps what kubectl accepts for a resource type to the kind.
var kindAliases = map[string]string{
	"po": KindPod, "pod": KindPod, "pods": KindPod,
	"deploy": KindDeployment, "deployment": KindDeployment, "deployments": KindDeployment,
	"deployment.apps": KindDeployment, "deployments.apps": KindDeployment,
	"svc": KindService, "service": KindService, "services": KindService,
	"ns": KindNamespace, "namespace": KindNamespace, "namespaces": KindNamespace,
	"no": KindNode, "node": KindNode, "nodes": KindNode,
}

// ParseKind resolves a kind as a user types it (case-insensitive; singular, plural or kubectl's
// short name: po, deploy, svc, ns, no) to Pod, Deployment, Service, Namespace or Node.
func ParseKind(s string) (string, bool) {
	k, ok := kindAliases[strings.ToLower(s)]
	return k, ok
}

// resource is kubectl's name for a kind in "not found" messages: pods "x" not found.
func resource(kind string) string {
	switch kind {
	case KindDeployment:
		return "deployments.apps"
	default:
		return strings.ToLower(kind) + "s"
	}
}

func notFound(kind, name string) string { return fmt.Sprintf("%s %q not found", resource(kind), name) }

type target struct {
	kind, namespace, name, where string
}

func (t target) label() string { return objectLabel(t.kind, t.name, t.where) }

// Delete deletes the objects req's documents name (only their apiVersion, kind and metadata are
// read), or the one object Kind/Namespace/Name. As with kubectl, each object is deleted on its
// own: a missing one is reported as NotFound and does not stop the others; an invalid request
// (unknown kind, bad name) deletes nothing.
//
// A Pod gets PodDeletionRequested with the request's grace period, or its own
// terminationGracePeriodSeconds; deleting a pod that is already being deleted only shortens its
// grace period. A Deployment gets DeploymentDeleted (its controller removes its pods), a Service
// ServiceDeleted, a Node NodeDeleted when no pods are assigned to it. A Namespace is deleted only
// when it holds no pods, Deployments or Services (FailedPrecondition says what is left); the
// default namespace is never deleted.
func (a *Admission) Delete(ctx context.Context, req *api.DeleteRequest) *api.Response {
	ctx, span := a.start(ctx, "delete", req.Traceparent, req.Actor)
	defer span.End()
	if req.GracePeriodSeconds != nil && *req.GracePeriodSeconds < 0 {
		return invalid("gracePeriodSeconds must be greater than or equal to 0 (got %d)", *req.GracePeriodSeconds)
	}
	targets, fails := deleteTargets(req)
	if len(fails) > 0 {
		return errorResponse(requestError(fails, "nothing was deleted"))
	}
	if e := a.waitSynced(ctx); e != nil {
		return errorResponse(e)
	}
	// Namespaces last: they must be empty, so their contents go first.
	var ordered []target
	for _, t := range targets {
		if t.kind != KindNamespace {
			ordered = append(ordered, t)
		}
	}
	for _, t := range targets {
		if t.kind == KindNamespace {
			ordered = append(ordered, t)
		}
	}
	meta := a.meta(ctx, req.Actor, req.Traceparent, req.IdempotencyKey)
	resp, _ := a.run(ctx, runOptions{partial: true, key: req.IdempotencyKey}, func(st *state.State) []step {
		now := a.clock()
		gone := map[string]bool{} // kind/namespace/name deleted earlier in this request
		out := make([]step, 0, len(ordered))
		for _, t := range ordered {
			s := a.deleteStep(st, t, req.GracePeriodSeconds, gone)
			if s.ev != nil {
				ev, err := events.New(now, meta, s.ev.Object, "", s.ev.Data)
				if err != nil {
					s.fail(err, t.label(), t.where, "", "%v", err)
				} else {
					s.ev, s.expect = ev, st.SubjectSeq(ev.Subject)
				}
			}
			if len(s.fails) == 0 {
				gone[t.kind+"/"+t.namespace+"/"+t.name] = true
			}
			out = append(out, s)
		}
		return out
	})
	return resp
}

// deleteTargets resolves what a delete request names.
func deleteTargets(req *api.DeleteRequest) ([]target, []failure) {
	defaultNS := req.Namespace
	if defaultNS == "" {
		defaultNS = state.DefaultNamespace
	}
	if len(req.Documents) > 0 {
		if req.Kind != "" || req.Name != "" {
			return nil, []failure{{label: "the request", problem: problem{reason: "give either documents or a kind and a name, not both", class: events.ErrInvalidArgument}}}
		}
		var out []target
		var fails []failure
		for _, doc := range req.Documents {
			t, ps := identify(doc, defaultNS)
			for _, p := range ps {
				fails = append(fails, failure{label: t.label(), doc: t.where, problem: p})
			}
			out = append(out, t)
		}
		return out, fails
	}
	t := target{namespace: defaultNS, name: req.Name}
	var p problems
	kind, ok := ParseKind(req.Kind)
	switch {
	case req.Kind == "":
		p.add("kind", "required value: what to delete (pod, deployment, service, namespace, node)")
	case !ok:
		p.add("kind", "the server doesn't have a resource type %q: Skiff has pods (po), deployments (deploy), services (svc), namespaces (ns) and nodes (no)", req.Kind)
	}
	t.kind = kind
	if !ok {
		t.kind = req.Kind // for the message only
	}
	if kind == KindNamespace || kind == KindNode {
		t.namespace = ""
	} else if r := checkDNSLabel(t.namespace); r != "" {
		p.add("namespace", "%s", r)
	}
	if r := checkDNSLabel(req.Name); r != "" {
		p.add("name", "%s", r)
	}
	var fails []failure
	for _, pr := range p.list {
		fails = append(fails, failure{label: t.label(), problem: pr})
	}
	return []target{t}, fails
}

// identify reads only the identity of a document: deleting needs no more, and a manifest that has
// since become invalid can still be deleted.
func identify(doc api.Document, defaultNS string) (target, []problem) {
	t := target{where: doc.Where()}
	var p problems
	tree, err := parseTree(doc.Object, func(string) {})
	if err != nil || tree.kind != nodeObject {
		p.add("", "not a manifest: want an object with apiVersion, kind and metadata")
		return t, p.list
	}
	str := func(n *node) string {
		if n != nil && n.kind == nodeString {
			return n.text
		}
		return ""
	}
	kind := str(tree.get("kind"))
	if _, ok := apiVersions[kind]; !ok {
		p.add("kind", "unsupported kind %q: Skiff supports Pod, Deployment, Service and Namespace", kind)
	} else {
		t.kind = kind
		if av := str(tree.get("apiVersion")); av != apiVersions[kind] {
			p.add("apiVersion", "%s is served as %s, not %q", kind, apiVersions[kind], av)
		}
	}
	md := tree.get("metadata")
	t.name = str(md.get("name"))
	if r := checkDNSLabel(t.name); r != "" {
		p.add("metadata.name", "%s", r)
	}
	if t.kind != KindNamespace {
		t.namespace = str(md.get("namespace"))
		if t.namespace == "" {
			t.namespace = defaultNS
		} else if r := checkDNSLabel(t.namespace); r != "" {
			p.add("metadata.namespace", "%s", r)
		}
	}
	return t, p.list
}

// deleteStep decides the deletion of one object. The returned step's event carries the payload
// and reference only; Delete builds the envelope.
func (a *Admission) deleteStep(st *state.State, t target, grace *int64, gone map[string]bool) step {
	s := step{result: api.Result{Kind: t.kind, Namespace: t.namespace, Name: t.name, Action: "deleted"}}
	key := state.Key{Namespace: t.namespace, Name: t.name}
	ref := events.ObjectRef{Namespace: t.namespace, Name: t.name}
	missing := func() step {
		s.fail(events.ErrNotFound, t.label(), t.where, "", "%s", notFound(t.kind, t.name))
		return s
	}
	switch t.kind {
	case KindPod:
		pod := st.Pods[key]
		if pod == nil {
			return missing()
		}
		g := pod.Spec.GracePeriodSeconds()
		if grace != nil {
			g = *grace
		}
		if pod.Deleting() && g >= pod.GracePeriodSeconds {
			return s // already on its way out, no sooner than asked
		}
		ref.Kind, ref.UID = events.KindPod, pod.Metadata.UID
		s.ev = &events.Event{Envelope: events.Envelope{Object: ref}, Data: &events.PodDeletionRequested{UID: pod.Metadata.UID, GracePeriodSeconds: g}}
	case KindDeployment:
		d := st.Deployments[key]
		if d == nil {
			return missing()
		}
		ref.Kind, ref.UID = events.KindDeployment, d.Metadata.UID
		s.ev = &events.Event{Envelope: events.Envelope{Object: ref}, Data: &events.DeploymentDeleted{}}
	case KindService:
		sv := st.Services[key]
		if sv == nil {
			return missing()
		}
		ref.Kind, ref.UID = events.KindService, sv.Metadata.UID
		s.ev = &events.Event{Envelope: events.Envelope{Object: ref}, Data: &events.ServiceDeleted{}}
	case KindNamespace:
		ns := st.Namespaces[t.name]
		if ns == nil {
			return missing()
		}
		if t.name == state.DefaultNamespace {
			s.fail(events.ErrFailedPrecondition, t.label(), t.where, "", "the default namespace cannot be deleted")
			return s
		}
		if left := namespaceContents(st, t.name, gone); left != "" {
			s.fail(events.ErrFailedPrecondition, t.label(), t.where, "",
				"namespace %q still holds %s: delete them first (the pods of a deleted Deployment go once its controller has removed them)", t.name, left)
			return s
		}
		ref.Kind, ref.UID = events.KindNamespace, ns.Metadata.UID
		s.ev = &events.Event{Envelope: events.Envelope{Object: ref}, Data: &events.NamespaceDeleted{}}
	case KindNode:
		n := st.Nodes[t.name]
		if n == nil {
			return missing()
		}
		if pods := len(st.PodsOnNode(t.name)); pods > 0 {
			s.fail(events.ErrFailedPrecondition, t.label(), t.where, "",
				"node %q still has %d pod%s assigned: cordon it (`skiff cordon %s`) and delete its pods first", t.name, pods, plural(pods == 1, "", "s"), t.name)
			return s
		}
		ref.Kind = events.KindNode
		s.ev = &events.Event{Envelope: events.Envelope{Object: ref}, Data: &events.NodeDeleted{}}
	}
	return s
}

// namespaceContents counts what is left in a namespace, leaving out what this request deletes
// (pods count until they are gone: deletion is graceful).
func namespaceContents(st *state.State, ns string, gone map[string]bool) string {
	var pods, deleting, deps, svcs int
	for k, p := range st.Pods {
		if k.Namespace == ns {
			pods++
			if p.Deleting() || gone[KindPod+"/"+ns+"/"+k.Name] {
				deleting++
			}
		}
	}
	for k := range st.Deployments {
		if k.Namespace == ns && !gone[KindDeployment+"/"+ns+"/"+k.Name] {
			deps++
		}
	}
	for k := range st.Services {
		if k.Namespace == ns && !gone[KindService+"/"+ns+"/"+k.Name] {
			svcs++
		}
	}
	var parts []string
	if pods > 0 {
		s := fmt.Sprintf("%d pod%s", pods, plural(pods == 1, "", "s"))
		if deleting > 0 {
			s += fmt.Sprintf(" (%d being deleted)", deleting)
		}
		parts = append(parts, s)
	}
	if deps > 0 {
		parts = append(parts, fmt.Sprintf("%d deployment%s", deps, plural(deps == 1, "", "s")))
	}
	if svcs > 0 {
		parts = append(parts, fmt.Sprintf("%d service%s", svcs, plural(svcs == 1, "", "s")))
	}
	return strings.Join(parts, ", ")
}
