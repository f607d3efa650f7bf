package admission

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

func registerNode(c *cluster, name string) {
	c.append(events.ObjectRef{Kind: events.KindNode, Name: name}, "", &events.NodeRegistered{MilliCPU: 2000, Memory: 4 << 30, MaxPods: 110})
}

func TestDelete(t *testing.T) {
	grace := func(g int64) *int64 { return &g }
	podWithGrace := edit(t, podYAML, "  containers:\n", "  terminationGracePeriodSeconds: 5\n  containers:\n")
	tests := []struct {
		name    string
		setup   []string
		prepare func(t *testing.T, c *cluster, r *replica)
		req     func(t *testing.T) *api.DeleteRequest
		results []string
		code    string // of resp.Error, "" for none
		message string
		events  []string // new events, "Type subject"
	}{
		{name: "pod with its own grace period", setup: []string{podWithGrace},
			req:     func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "po", Name: "web"} },
			results: []string{"pod/web deleted"}, events: []string{"PodDeletionRequested 5 skiff.ev.pod.default.web"}},
		{name: "pod with the default grace period", setup: []string{podYAML},
			req:     func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "Pods", Name: "web"} },
			results: []string{"pod/web deleted"}, events: []string{"PodDeletionRequested 30 skiff.ev.pod.default.web"}},
		{name: "pod with the request's grace period", setup: []string{podWithGrace},
			req: func(t *testing.T) *api.DeleteRequest {
				return &api.DeleteRequest{Kind: "pod", Name: "web", GracePeriodSeconds: grace(0)}
			},
			results: []string{"pod/web deleted"}, events: []string{"PodDeletionRequested 0 skiff.ev.pod.default.web"}},
		{name: "pod already being deleted: only a shorter grace period writes", setup: []string{podYAML},
			prepare: func(t *testing.T, c *cluster, r *replica) {
				if resp := r.Delete(ctxT(t), &api.DeleteRequest{Kind: "pod", Name: "web", GracePeriodSeconds: grace(10)}); resp.Error != nil {
					t.Fatal(resp.Error)
				}
				if resp := r.Delete(ctxT(t), &api.DeleteRequest{Kind: "pod", Name: "web", GracePeriodSeconds: grace(20)}); resp.Error != nil || len(resp.Results) != 1 || resp.Results[0].Seq != 0 {
					t.Fatalf("longer grace: %+v, want deleted without an event", resp)
				}
			},
			req: func(t *testing.T) *api.DeleteRequest {
				return &api.DeleteRequest{Kind: "pod", Name: "web", GracePeriodSeconds: grace(1)}
			},
			results: []string{"pod/web deleted"}, events: []string{"PodDeletionRequested 1 skiff.ev.pod.default.web"}},
		{name: "deployment", setup: []string{namespaceYAML, shopDeployment},
			req: func(t *testing.T) *api.DeleteRequest {
				return &api.DeleteRequest{Kind: "deploy", Namespace: "shop", Name: "web"}
			},
			results: []string{"deployment.apps/web deleted"}, events: []string{"DeploymentDeleted skiff.ev.deployment.shop.web"}},
		{name: "by documents, namespace last", setup: []string{namespaceYAML, shopService, shopDeployment},
			req: func(t *testing.T) *api.DeleteRequest {
				return &api.DeleteRequest{Documents: docs(t, namespaceYAML, shopService, shopDeployment)}
			},
			results: []string{"service/web deleted", "deployment.apps/web deleted", "namespace/shop deleted"},
			events:  []string{"ServiceDeleted skiff.ev.service.shop.web", "DeploymentDeleted skiff.ev.deployment.shop.web", "NamespaceDeleted skiff.ev.namespace._.shop"}},
		{name: "namespace that still holds objects", setup: []string{namespaceYAML, shopService, edit(t, podYAML, "  name: web\n", "  name: web\n  namespace: shop\n")},
			req:  func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "ns", Name: "shop"} },
			code: "FailedPrecondition", message: `namespace "shop" still holds 1 pod, 1 service: delete them first (the pods of a deleted Deployment go once its controller has removed them)`},
		{name: "the default namespace", req: func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "namespace", Name: "default"} },
			code: "FailedPrecondition", message: "the default namespace cannot be deleted"},
		{name: "not found, kubectl's words", req: func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "svc", Name: "nope"} },
			code: "NotFound", message: `services "nope" not found`},
		{name: "deployment not found", req: func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "deployment", Name: "nope"} },
			code: "NotFound", message: `deployments.apps "nope" not found`},
		{name: "missing objects do not stop the others", setup: []string{serviceYAML},
			req: func(t *testing.T) *api.DeleteRequest {
				return &api.DeleteRequest{Documents: docs(t, podYAML, serviceYAML)}
			},
			results: []string{"service/web deleted"}, code: "NotFound", message: `pods "web" not found`,
			events: []string{"ServiceDeleted skiff.ev.service.default.web"}},
		{name: "unknown kind", req: func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "cronjob", Name: "x"} },
			code: "InvalidArgument", message: `cronjob "x" is invalid: kind: the server doesn't have a resource type "cronjob": Skiff has pods (po), deployments (deploy), services (svc), namespaces (ns) and nodes (no); nothing was deleted`},
		{name: "negative grace", req: func(t *testing.T) *api.DeleteRequest {
			return &api.DeleteRequest{Kind: "pod", Name: "x", GracePeriodSeconds: grace(-1)}
		}, code: "InvalidArgument", message: "gracePeriodSeconds must be greater than or equal to 0 (got -1)"},
		{name: "node without pods",
			prepare: func(t *testing.T, c *cluster, r *replica) { registerNode(c, "n1") },
			req:     func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "no", Name: "n1"} },
			results: []string{"node/n1 deleted"}, events: []string{"NodeDeleted skiff.ev.node._.n1"}},
		{name: "node with pods", setup: []string{podYAML},
			prepare: func(t *testing.T, c *cluster, r *replica) {
				registerNode(c, "n1")
				var uid string
				r.view(t, c.head(), func(st *stateT) { uid = st.Pods[key2("default", "web")].Metadata.UID })
				c.append(events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "web", UID: uid}, "", &events.PodScheduled{UID: uid, Node: "n1"})
			},
			req:  func(t *testing.T) *api.DeleteRequest { return &api.DeleteRequest{Kind: "node", Name: "n1"} },
			code: "FailedPrecondition", message: "node \"n1\" still has 1 pod assigned: cordon it (`skiff cordon n1`) and delete its pods first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			r := c.replica(Config{})
			if len(tt.setup) > 0 {
				r.mustApply(t, tt.setup...)
			}
			if tt.prepare != nil {
				tt.prepare(t, c, r)
			}
			head := c.head()
			resp := r.Delete(ctxT(t), tt.req(t))
			code, msg := "", ""
			if resp.Error != nil {
				code, msg = resp.Error.Code, resp.Error.Message
			}
			if code != tt.code || (tt.message != "" && msg != tt.message && !startsWith(msg, tt.message)) {
				t.Errorf("error %s %q, want %s %q", code, msg, tt.code, tt.message)
			}
			if diff := cmp.Diff(tt.results, actions(resp.Results)); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			var got []string
			for _, ev := range c.history(events.AllFilter) {
				if ev.Seq <= head {
					continue
				}
				s := ev.Type + " "
				if p, ok := ev.Data.(*events.PodDeletionRequested); ok {
					s += itoa(p.GracePeriodSeconds) + " "
				}
				got = append(got, s+ev.Subject)
			}
			if diff := cmp.Diff(tt.events, got); diff != "" {
				t.Errorf("new events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScale(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	r.mustApply(t, namespaceYAML, shopDeployment)

	resp := r.Scale(ctxT(t), &api.ScaleRequest{Namespace: "shop", Name: "web", Replicas: 7})
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
	evs := c.history(events.ObjectSubject(events.KindDeployment, "shop", "web"))
	if got := evs[len(evs)-1].Data; !cmp.Equal(got, events.Payload(&events.DeploymentScaled{Replicas: 7, Generation: 2})) {
		t.Errorf("last event %#v, want DeploymentScaled{7, 2}", got)
	}
	if got := actions(resp.Results); !cmp.Equal(got, []string{"deployment.apps/web scaled"}) || resp.Seq != evs[len(evs)-1].Seq {
		t.Errorf("results %v seq %d", got, resp.Seq)
	}

	head := c.head()
	if resp := r.Scale(ctxT(t), &api.ScaleRequest{Namespace: "shop", Name: "web", Replicas: 7}); resp.Error != nil || c.head() != head {
		t.Errorf("scaling to the same count: %v, %d new events, want none", resp.Error, c.head()-head)
	}
	for _, tt := range []struct {
		name string
		req  api.ScaleRequest
		code string
		msg  string
	}{
		{"negative", api.ScaleRequest{Namespace: "shop", Name: "web", Replicas: -1}, "InvalidArgument",
			`Deployment "web" is invalid: replicas: must be greater than or equal to 0 (got -1)`},
		{"not found", api.ScaleRequest{Name: "web", Replicas: 1}, "NotFound", `deployments.apps "web" not found`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := r.Scale(ctxT(t), &tt.req)
			if resp.Error == nil || resp.Error.Code != tt.code || resp.Error.Message != tt.msg {
				t.Errorf("error %v, want %s %q", resp.Error, tt.code, tt.msg)
			}
			if c.head() != head {
				t.Errorf("wrote an event")
			}
		})
	}
}

func TestCordon(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	registerNode(c, "n1")
	steps := []struct {
		cordon bool
		want   string
		events int
	}{
		{true, "node/n1 cordoned", 1},
		{true, "node/n1 cordoned", 0}, // already cordoned: nothing to write
		{false, "node/n1 uncordoned", 1},
	}
	for i, s := range steps {
		head := c.head()
		resp := r.Cordon(ctxT(t), &api.CordonRequest{Node: "n1", Cordon: s.cordon})
		if resp.Error != nil {
			t.Fatal(resp.Error)
		}
		if got := actions(resp.Results); !cmp.Equal(got, []string{s.want}) || int(c.head()-head) != s.events {
			t.Errorf("step %d: %v with %d events, want %s with %d", i, got, c.head()-head, s.want, s.events)
		}
	}
	var unschedulable bool
	r.view(t, c.head(), func(st *stateT) { unschedulable = st.Nodes["n1"].Spec.Unschedulable })
	if unschedulable {
		t.Error("node still cordoned")
	}
	evs := types(c.history(events.ObjectSubject(events.KindNode, "", "n1")))
	if !cmp.Equal(evs, []string{"NodeCordoned", "NodeUncordoned"}) { // NodeRegistered is on the node's own subject
		t.Errorf("node history %v", evs)
	}
	resp := r.Cordon(ctxT(t), &api.CordonRequest{Node: "n2", Cordon: true})
	if resp.Error == nil || resp.Error.Code != "NotFound" || resp.Error.Message != `nodes "n2" not found` {
		t.Errorf("unknown node: %v", resp.Error)
	}
}
