package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
)

// Apply creates or changes the objects of req's documents. Every document is decoded and
// validated, and checked against the cluster's state, before anything is written; one problem
// anywhere means nothing is written and the answer lists every problem (InvalidArgument, or
// NotFound/Conflict when every problem is of that class). Then the events are written in order,
// Namespaces first. Results say created, configured or unchanged per object; Response.Seq is the
// highest sequence written, or the sequence of the state the answer was decided on.
//
// Other errors: Unavailable when this replica has not caught up with the log (retry), Conflict
// when objects kept changing under the command, and when a write fails half-way the message
// names what was written and what was not (Results hold the written ones).
func (a *Admission) Apply(ctx context.Context, req *api.ApplyRequest) *api.Response {
	ctx, span := a.start(ctx, "apply", req.Traceparent, req.Actor)
	defer span.End()
	if len(req.Documents) == 0 {
		return invalid("nothing to apply: the request has no documents")
	}
	if e := a.waitSynced(ctx); e != nil {
		return errorResponse(e)
	}
	items := make([]*decoded, len(req.Documents))
	hasService := false
	for i, doc := range req.Documents {
		items[i] = decodeDocument(doc)
		hasService = hasService || items[i].kind == KindService
	}
	checkDuplicates(items)
	// Namespaces first, so the objects in them can be created in the same request.
	order := make([]int, 0, len(items))
	for i, d := range items {
		if d.kind == KindNamespace {
			order = append(order, i)
		}
	}
	for i, d := range items {
		if d.kind != KindNamespace {
			order = append(order, i)
		}
	}
	if hasService {
		a.allocMu.Lock()
		defer a.allocMu.Unlock()
	}
	meta := a.meta(ctx, req.Actor, req.Traceparent, req.IdempotencyKey)
	resp, written := a.run(ctx, runOptions{dryRun: req.DryRun, failSuffix: "nothing was applied", key: req.IdempotencyKey}, func(st *state.State) []step {
		p := applyPlan{a: a, st: st, meta: meta, now: a.clock(), items: items}
		return p.steps(order)
	})
	if resp.Error == nil && !req.DryRun {
		for i, idx := range order {
			if r, ok := written[i]; ok && items[idx].kind == KindService && r.Action == "created" {
				a.verifyClusterIP(ctx, meta, items[idx], &resp.Results[i], resp)
			}
		}
	}
	return resp
}

// checkDuplicates rejects a request that names one object twice: which one should win?
func checkDuplicates(items []*decoded) {
	first := map[string]*decoded{}
	for _, d := range items {
		if d.kind == "" || d.name == "" {
			continue
		}
		k := d.kind + "/" + d.namespace + "/" + d.name
		if prev, ok := first[k]; ok {
			d.problems.add("metadata.name", "%s appears twice in this request (also %s)", d.label(), prev.where)
			continue
		}
		first[k] = d
	}
}

// applyPlan decides one attempt of an apply on one view of the state.
type applyPlan struct {
	a     *Admission
	st    *state.State
	meta  events.Meta
	now   time.Time
	items []*decoded
	// claimed are the ClusterIPs this request takes, so two new Services never get one address.
	claimed map[netip.Addr]*decoded
}

func (p *applyPlan) steps(order []int) []step {
	p.claimed = map[netip.Addr]*decoded{}
	// Explicit addresses first: an automatic allocation must not take an address a later document
	// asks for.
	for _, d := range p.items {
		if svc, ok := d.obj.(*events.Service); ok && len(d.problems.list) == 0 && d.clusterIPSet {
			if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil && p.st.Services[state.Key{Namespace: d.namespace, Name: d.name}] == nil {
				if _, dup := p.claimed[ip]; !dup {
					p.claimed[ip] = d
				}
			}
		}
	}
	nsInRequest := map[string]bool{}
	for _, d := range p.items {
		if d.kind == KindNamespace && d.name != "" {
			nsInRequest[d.name] = true
		}
	}
	out := make([]step, 0, len(order))
	for _, i := range order {
		d := p.items[i]
		s := step{result: api.Result{Kind: d.kind, Namespace: d.namespace, Name: d.name}}
		for _, pr := range d.problems.list {
			s.fails = append(s.fails, failure{label: d.label(), doc: d.where, problem: pr})
		}
		if d.kind != "" && d.kind != KindNamespace && d.namespace != "" && isDNSLabel(d.namespace) &&
			p.st.Namespaces[d.namespace] == nil && !nsInRequest[d.namespace] {
			s.fail(events.ErrNotFound, d.label(), d.where, "metadata.namespace",
				"namespaces %q not found: create the Namespace first, or add it to this apply", d.namespace)
			sortFailures(d, s.fails)
		}
		if len(s.fails) == 0 {
			switch d.kind {
			case KindNamespace:
				p.namespace(d, &s)
			case KindPod:
				p.pod(d, &s)
			case KindDeployment:
				p.deployment(d, &s)
			case KindService:
				p.service(d, &s)
			}
		}
		out = append(out, s)
	}
	return out
}

func (p *applyPlan) event(s *step, d *decoded, kind, uid string, payload events.Payload) {
	ref := events.ObjectRef{Kind: kind, Namespace: d.namespace, Name: d.name, UID: uid}
	ev, err := events.New(p.now, p.meta, ref, "", payload)
	if err != nil {
		// Only a programming error gets here: every payload is a registered type.
		s.fail(err, d.label(), d.where, "", "%v", err)
		return
	}
	s.ev = ev
	s.expect = p.st.SubjectSeq(ev.Subject)
}

// checkUID: a manifest that names a uid (output of `get -o yaml`) is about that incarnation of
// the object; if the object was deleted and re-created since, applying it would overwrite
// someone else's object.
func checkUID(s *step, d *decoded, current string) {
	if d.uid != "" && current != "" && d.uid != current {
		s.fail(events.ErrConflict, d.label(), d.where, "metadata.uid",
			"the manifest is about uid %s, but %s now has uid %s: it was deleted and created again since; remove metadata.uid to apply anyway", d.uid, d.label(), current)
	}
}

func checkOwnerRefs(s *step, d *decoded, current []events.OwnerReference) {
	if len(d.ownerRefs) > 0 && !sameJSON(d.ownerRefs, current) {
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "metadata.ownerReferences",
			"set by the controller that owns the object, not by manifests: remove it")
	}
}

func sameMeta(a, b events.ObjectMeta) bool {
	return sameJSON(a.Labels, b.Labels) && sameJSON(a.Annotations, b.Annotations)
}

func (p *applyPlan) namespace(d *decoded, s *step) {
	ns := d.obj.(*events.Namespace)
	checkOwnerRefs(s, d, nil)
	old := p.st.Namespaces[d.name]
	if old != nil {
		checkUID(s, d, old.Metadata.UID)
	}
	if len(s.fails) > 0 {
		return
	}
	n := *ns
	switch {
	case old == nil:
		n.Metadata.UID = newUID()
		s.result.Action = "created"
	case sameMeta(old.Metadata, n.Metadata):
		s.result.Action = "unchanged"
		return
	default:
		n.Metadata.UID = old.Metadata.UID
		s.result.Action = "configured"
	}
	p.event(s, d, events.KindNamespace, n.Metadata.UID, &events.NamespaceApplied{Namespace: n})
}

func (p *applyPlan) pod(d *decoded, s *step) {
	pod := *d.obj.(*events.Pod)
	old := p.st.Pods[state.Key{Namespace: d.namespace, Name: d.name}]
	if old == nil {
		checkOwnerRefs(s, d, nil)
		if d.nodeName != "" {
			s.fail(events.ErrInvalidArgument, d.label(), d.where, "spec.nodeName",
				"set by the scheduler when it places the pod: remove it, or choose nodes with nodeSelector")
		}
		if len(s.fails) > 0 {
			return
		}
		pod.Metadata.UID = newUID()
		s.result.Action = "created"
		p.event(s, d, events.KindPod, pod.Metadata.UID, &events.PodCreated{Pod: pod})
		return
	}
	if old.Deleting() {
		s.fail(events.ErrConflict, d.label(), d.where, "",
			"pod %q is being deleted: wait until it is gone (`skiff get pods`), then apply it again", d.name)
		return
	}
	checkUID(s, d, old.Metadata.UID)
	checkOwnerRefs(s, d, old.Metadata.OwnerReferences)
	if d.nodeName != "" && d.nodeName != old.Spec.NodeName {
		where := "is not assigned to a node yet"
		if old.Spec.NodeName != "" {
			where = fmt.Sprintf("is assigned to node %q", old.Spec.NodeName)
		}
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "spec.nodeName",
			"set by the scheduler, and the pod %s: remove spec.nodeName", where)
	}
	oldSpec := old.Spec
	oldSpec.NodeName = ""
	if diffs := diffJSON("spec", oldSpec, pod.Spec); len(diffs) > 0 {
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "spec",
			"a pod's spec cannot change after it is created, and %s differ%s: delete the pod and apply it again, or let a Deployment replace its pods",
			listFields(diffs), plural(len(diffs) == 1, "s", ""))
	}
	if !sameMeta(old.Metadata, pod.Metadata) {
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "metadata",
			"Skiff cannot change the labels or annotations of an existing pod: delete the pod and apply it again")
	}
	if len(s.fails) == 0 {
		s.result.Action = "unchanged"
	}
}

func (p *applyPlan) deployment(d *decoded, s *step) {
	dep := *d.obj.(*events.Deployment)
	old := p.st.Deployments[state.Key{Namespace: d.namespace, Name: d.name}]
	checkOwnerRefs(s, d, nil)
	if old == nil {
		if len(s.fails) > 0 {
			return
		}
		dep.Metadata.UID = newUID()
		dep.Metadata.Generation = 1
		s.result.Action = "created"
		p.event(s, d, events.KindDeployment, dep.Metadata.UID, &events.DeploymentApplied{Deployment: dep})
		return
	}
	checkUID(s, d, old.Metadata.UID)
	if len(s.fails) > 0 {
		return
	}
	if !d.replicasSet {
		// As kubectl apply does for a field the manifest leaves out: keep what `scale` set.
		r := old.Spec.DesiredReplicas()
		dep.Spec.Replicas = &r
	}
	specChanged := !sameJSON(old.Spec, dep.Spec)
	if !specChanged && sameMeta(old.Metadata, dep.Metadata) {
		s.result.Action = "unchanged"
		return
	}
	dep.Metadata.UID = old.Metadata.UID
	dep.Metadata.Generation = max(old.Metadata.Generation, 1)
	if specChanged {
		dep.Metadata.Generation++
	}
	s.result.Action = "configured"
	p.event(s, d, events.KindDeployment, dep.Metadata.UID, &events.DeploymentApplied{Deployment: dep})
}

func (p *applyPlan) service(d *decoded, s *step) {
	svc := *d.obj.(*events.Service)
	key := state.Key{Namespace: d.namespace, Name: d.name}
	old := p.st.Services[key]
	checkOwnerRefs(s, d, nil)
	if old == nil {
		if d.clusterIPSet {
			p.checkRequestedIP(d, s, svc.Spec.ClusterIP)
		} else if ip, ok := p.a.allocate(p.st, p.claimed, netip.Addr{}); ok {
			svc.Spec.ClusterIP = ip.String()
			p.claimed[ip] = d
		} else {
			s.fail(events.ErrFailedPrecondition, d.label(), d.where, "spec.clusterIP",
				"no address is free in the service range %s: delete unused Services", p.a.cidr)
		}
		if len(s.fails) > 0 {
			return
		}
		svc.Metadata.UID = newUID()
		s.result.Action = "created"
		p.event(s, d, events.KindService, svc.Metadata.UID, &events.ServiceApplied{Service: svc})
		return
	}
	checkUID(s, d, old.Metadata.UID)
	if d.clusterIPSet && svc.Spec.ClusterIP != old.Spec.ClusterIP {
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "spec.clusterIP",
			"field is immutable: the Service has %s; delete the Service and apply it again to change its address, or leave spec.clusterIP out", old.Spec.ClusterIP)
	}
	if len(s.fails) > 0 {
		return
	}
	svc.Spec.ClusterIP = old.Spec.ClusterIP
	if sameJSON(old.Spec, svc.Spec) && sameMeta(old.Metadata, svc.Metadata) {
		s.result.Action = "unchanged"
		return
	}
	svc.Metadata.UID = old.Metadata.UID
	s.result.Action = "configured"
	p.event(s, d, events.KindService, svc.Metadata.UID, &events.ServiceApplied{Service: svc})
}

// checkRequestedIP checks an explicit spec.clusterIP of a new Service.
func (p *applyPlan) checkRequestedIP(d *decoded, s *step, text string) {
	ip, err := netip.ParseAddr(text)
	if err != nil {
		return // reported by Decode
	}
	if why := p.a.outOfRange(ip); why != "" {
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "spec.clusterIP", "%s", why)
		return
	}
	if owner, ok := p.st.ClusterIPOwner(ip.String()); ok {
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "spec.clusterIP",
			"%s is already allocated to Service %q in namespace %q: leave spec.clusterIP out to get a free address", ip, owner.Name, owner.Namespace)
		return
	}
	if by := p.claimed[ip]; by != d {
		s.fail(events.ErrInvalidArgument, d.label(), d.where, "spec.clusterIP",
			"%s is also requested by %s in namespace %q (%s)", ip, by.label(), by.namespace, by.where)
	}
}

// sameJSON compares two values as they are stored: through their JSON encoding, so nil and empty
// maps and slices (which omitempty drops alike) compare equal.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(normalizeJSON(ja), normalizeJSON(jb))
}

// normalizeJSON drops empty objects and lists, which json's omitempty keeps for structs.
func normalizeJSON(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.Marshal(prune(v))
	return out
}

func prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			e = prune(e)
			if isEmpty(e) {
				delete(t, k)
			} else {
				t[k] = e
			}
		}
		return t
	case []any:
		for i := range t {
			t[i] = prune(t[i])
		}
	}
	return v
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}

// diffJSON lists the paths where a and b differ, as field paths under prefix.
func diffJSON(prefix string, a, b any) []string {
	var va, vb any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	var out []string
	diffValue(prefix, prune(va), prune(vb), &out)
	return out
}

func diffValue(path string, a, b any, out *[]string) {
	ma, aok := a.(map[string]any)
	mb, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range ma {
			keys[k] = true
		}
		for k := range mb {
			keys[k] = true
		}
		for _, k := range sortedKeys(keys) {
			diffValue(join(path, k), ma[k], mb[k], out)
		}
		return
	}
	la, aok := a.([]any)
	lb, bok := b.([]any)
	if aok && bok && len(la) == len(lb) {
		for i := range la {
			diffValue(index(path, i), la[i], lb[i], out)
		}
		return
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		*out = append(*out, path)
	}
}

func listFields(paths []string) string {
	const most = 5
	if len(paths) > most {
		return strings.Join(paths[:most], ", ") + fmt.Sprintf(" and %d more fields", len(paths)-most)
	}
	return strings.Join(paths, ", ")
}

func plural(one bool, singular, many string) string {
	if one {
		return singular
	}
	return many
}

func sortFailures(d *decoded, fs []failure) {
	sort.SliceStable(fs, func(i, j int) bool { return d.order(fs[i].path) < d.order(fs[j].path) })
}
