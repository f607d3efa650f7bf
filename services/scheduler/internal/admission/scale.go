package admission

import (
	"context"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
)

// Scale sets a Deployment's replicas with DeploymentScaled (generation + 1). Scaling to the
// current count writes nothing and still answers "scaled", as kubectl does. Errors:
// InvalidArgument (negative replicas, bad name), NotFound, Unavailable, Conflict.
func (a *Admission) Scale(ctx context.Context, req *api.ScaleRequest) *api.Response {
	ctx, span := a.start(ctx, "scale", req.Traceparent, req.Actor)
	defer span.End()
	ns := req.Namespace
	if ns == "" {
		ns = state.DefaultNamespace
	}
	var p problems
	if r := checkDNSLabel(req.Name); r != "" {
		p.add("name", "%s", r)
	}
	if r := checkDNSLabel(ns); r != "" {
		p.add("namespace", "%s", r)
	}
	if req.Replicas < 0 {
		p.add("replicas", "must be greater than or equal to 0 (got %d)", req.Replicas)
	}
	if len(p.list) > 0 {
		return errorResponse(requestError(failures(objectLabel(KindDeployment, req.Name, ""), p.list), ""))
	}
	if e := a.waitSynced(ctx); e != nil {
		return errorResponse(e)
	}
	meta := a.meta(ctx, req.Actor, req.Traceparent, req.IdempotencyKey)
	resp, _ := a.run(ctx, runOptions{key: req.IdempotencyKey}, func(st *state.State) []step {
		label := objectLabel(KindDeployment, req.Name, "")
		s := step{result: api.Result{Kind: KindDeployment, Namespace: ns, Name: req.Name, Action: "scaled"}}
		d := st.Deployments[state.Key{Namespace: ns, Name: req.Name}]
		if d == nil {
			s.fail(events.ErrNotFound, label, "", "", "%s", notFound(KindDeployment, req.Name))
			return []step{s}
		}
		if d.Spec.DesiredReplicas() == req.Replicas {
			return []step{s}
		}
		ref := events.ObjectRef{Kind: events.KindDeployment, Namespace: ns, Name: req.Name, UID: d.Metadata.UID}
		ev, err := events.New(a.clock(), meta, ref, "", &events.DeploymentScaled{Replicas: req.Replicas, Generation: d.Metadata.Generation + 1})
		if err != nil {
			s.fail(err, label, "", "", "%v", err)
			return []step{s}
		}
		s.ev, s.expect = ev, st.SubjectSeq(ev.Subject)
		return []step{s}
	})
	return resp
}

// Cordon marks a node unschedulable (NodeCordoned) or schedulable again (NodeUncordoned). A node
// already in the asked state gets no event; the answer is the same. Errors: InvalidArgument,
// NotFound (unknown node), Unavailable, Conflict.
func (a *Admission) Cordon(ctx context.Context, req *api.CordonRequest) *api.Response {
	ctx, span := a.start(ctx, "cordon", req.Traceparent, req.Actor)
	defer span.End()
	label := objectLabel(KindNode, req.Node, "")
	if r := checkDNSLabel(req.Node); r != "" {
		return errorResponse(requestError(failures(label, []problem{{path: "node", reason: r, class: events.ErrInvalidArgument}}), ""))
	}
	if e := a.waitSynced(ctx); e != nil {
		return errorResponse(e)
	}
	action, payload := "uncordoned", events.Payload(&events.NodeUncordoned{})
	if req.Cordon {
		action, payload = "cordoned", &events.NodeCordoned{}
	}
	meta := a.meta(ctx, req.Actor, req.Traceparent, req.IdempotencyKey)
	resp, _ := a.run(ctx, runOptions{key: req.IdempotencyKey}, func(st *state.State) []step {
		s := step{result: api.Result{Kind: KindNode, Name: req.Node, Action: action}}
		n := st.Nodes[req.Node]
		if n == nil {
			s.fail(events.ErrNotFound, label, "", "", "%s", notFound(KindNode, req.Node))
			return []step{s}
		}
		if n.Spec.Unschedulable == req.Cordon {
			return []step{s}
		}
		ev, err := events.New(a.clock(), meta, events.ObjectRef{Kind: events.KindNode, Name: req.Node}, "", payload)
		if err != nil {
			s.fail(err, label, "", "", "%v", err)
			return []step{s}
		}
		s.ev, s.expect = ev, st.SubjectSeq(ev.Subject)
		return []step{s}
	})
	return resp
}

func failures(label string, ps []problem) []failure {
	out := make([]failure, len(ps))
	for i, p := range ps {
		out[i] = failure{label: label, problem: p}
	}
	return out
}
