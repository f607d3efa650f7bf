package admission

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
)

const shopDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports: [{name: http, containerPort: 80}]
`

const shopService = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`

func TestApplyCreatesThenUnchanged(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	// The Namespace comes last in the request and is still written first.
	manifests := []string{shopDeployment, shopService, podYAML, edit(t, namespaceYAML, "  name: shop\n", "  name: shop\n  labels: {team: a}\n")}

	resp := r.mustApply(t, manifests...)
	want := []string{"namespace/shop created", "deployment.apps/web created", "service/web created", "pod/web created"}
	if diff := cmp.Diff(want, actions(resp.Results)); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
	all := c.history(events.AllFilter)
	if diff := cmp.Diff([]string{"NamespaceApplied", "DeploymentApplied", "ServiceApplied", "PodCreated"}, types(all)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	for i, ev := range all {
		if resp.Results[i].Seq != ev.Seq {
			t.Errorf("result %d has seq %d, event has %d", i, resp.Results[i].Seq, ev.Seq)
		}
		if ev.Actor != "user/test" || ev.CorrelationID != all[0].CorrelationID {
			t.Errorf("event %d: actor %q correlation %q, want user/test and one correlation for the request", i, ev.Actor, ev.CorrelationID)
		}
	}
	if resp.Seq != all[len(all)-1].Seq {
		t.Errorf("response seq %d, want the last written %d", resp.Seq, all[len(all)-1].Seq)
	}
	dep := all[1].Data.(*events.DeploymentApplied).Deployment
	if dep.Metadata.Generation != 1 || dep.Metadata.UID == "" || *dep.Spec.Replicas != 2 {
		t.Errorf("DeploymentApplied: generation %d uid %q replicas %d, want 1, a uid, 2", dep.Metadata.Generation, dep.Metadata.UID, *dep.Spec.Replicas)
	}
	if ip := all[2].Data.(*events.ServiceApplied).Service.Spec.ClusterIP; ip != "10.96.0.2" {
		t.Errorf("clusterIP %s, want the lowest free 10.96.0.2", ip)
	}
	pod := all[3].Data.(*events.PodCreated).Pod
	if pod.Metadata.UID == "" || pod.Metadata.Namespace != "default" || pod.Spec.RestartPolicy != "Always" {
		t.Errorf("PodCreated metadata %+v restartPolicy %q", pod.Metadata, pod.Spec.RestartPolicy)
	}

	head := c.head()
	again := r.mustApply(t, manifests...)
	want = []string{"namespace/shop unchanged", "deployment.apps/web unchanged", "service/web unchanged", "pod/web unchanged"}
	if diff := cmp.Diff(want, actions(again.Results)); diff != "" {
		t.Errorf("second apply (-want +got):\n%s", diff)
	}
	if h := c.head(); h != head {
		t.Errorf("second apply wrote %d events, want none", h-head)
	}
	if again.Seq != head {
		t.Errorf("unchanged apply answered seq %d, want the projection's %d", again.Seq, head)
	}
}

func TestApplyConfigured(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	r.mustApply(t, namespaceYAML, shopDeployment, shopService)

	// A spec change bumps the generation; the UID stays.
	changed := edit(t, shopDeployment, "nginx:1.27", "nginx:1.28")
	resp := r.mustApply(t, changed)
	if got := actions(resp.Results); !cmp.Equal(got, []string{"deployment.apps/web configured"}) {
		t.Fatalf("results %v", got)
	}
	evs := c.history(events.ObjectSubject(events.KindDeployment, "shop", "web"))
	first, second := evs[0].Data.(*events.DeploymentApplied).Deployment, evs[1].Data.(*events.DeploymentApplied).Deployment
	if second.Metadata.Generation != 2 || second.Metadata.UID != first.Metadata.UID {
		t.Errorf("configured deployment: generation %d uid %s, want 2 and %s", second.Metadata.Generation, second.Metadata.UID, first.Metadata.UID)
	}

	// Labels only: configured, same generation.
	labelled := edit(t, changed, "  namespace: shop\n", "  namespace: shop\n  labels: {tier: front}\n")
	r.mustApply(t, labelled)
	evs = c.history(events.ObjectSubject(events.KindDeployment, "shop", "web"))
	if g := evs[2].Data.(*events.DeploymentApplied).Deployment.Metadata.Generation; g != 2 {
		t.Errorf("label change: generation %d, want 2", g)
	}

	// A manifest without replicas keeps what scale set, as kubectl apply does.
	scale := r.Scale(ctxT(t), &api.ScaleRequest{Namespace: "shop", Name: "web", Replicas: 5})
	if scale.Error != nil {
		t.Fatal(scale.Error)
	}
	noReplicas := edit(t, labelled, "  replicas: 2\n", "")
	resp = r.mustApply(t, noReplicas)
	if got := actions(resp.Results); !cmp.Equal(got, []string{"deployment.apps/web unchanged"}) {
		t.Errorf("re-apply without replicas after scale: %v, want unchanged", got)
	}

	// A Service keeps its ClusterIP when the manifest leaves it out.
	svc := edit(t, shopService, "  selector: {app: web}\n", "  selector: {app: web, tier: front}\n")
	resp = r.mustApply(t, svc)
	if got := actions(resp.Results); !cmp.Equal(got, []string{"service/web configured"}) {
		t.Fatalf("results %v", got)
	}
	sevs := c.history(events.ObjectSubject(events.KindService, "shop", "web"))
	s0, s1 := sevs[0].Data.(*events.ServiceApplied).Service, sevs[1].Data.(*events.ServiceApplied).Service
	if s1.Spec.ClusterIP != s0.Spec.ClusterIP || s1.Metadata.UID != s0.Metadata.UID {
		t.Errorf("configured service: ip %s uid %s, want %s and %s", s1.Spec.ClusterIP, s1.Metadata.UID, s0.Spec.ClusterIP, s0.Metadata.UID)
	}
}

// TestApplyStateChecks covers the rules only the cluster's state can decide. Each case starts
// from a fresh cluster holding setup, applies manifest, and wants exactly the causes listed and
// no new event.
func TestApplyStateChecks(t *testing.T) {
	type c struct{ field, reason string }
	tests := []struct {
		name     string
		setup    []string
		prepare  func(t *testing.T, cl *cluster, r *replica)
		manifest func(t *testing.T) string
		code     string
		want     []c
	}{
		{"namespace does not exist", nil, nil,
			func(t *testing.T) string { return shopService }, "NotFound",
			[]c{{"metadata.namespace", `namespaces "shop" not found: create the Namespace first, or add it to this apply`}}},
		{"clusterIP outside the range", nil, nil,
			func(t *testing.T) string {
				return edit(t, serviceYAML, "  selector:\n", "  clusterIP: 10.97.0.5\n  selector:\n")
			}, "InvalidArgument",
			[]c{{"spec.clusterIP", "10.97.0.5 is not in the service range 10.96.0.0/16"}}},
		{"clusterIP is the network address", nil, nil,
			func(t *testing.T) string {
				return edit(t, serviceYAML, "  selector:\n", "  clusterIP: 10.96.0.0\n  selector:\n")
			}, "InvalidArgument",
			[]c{{"spec.clusterIP", "10.96.0.0 is the network address of the service range 10.96.0.0/16"}}},
		{"clusterIP taken", []string{edit(t, serviceYAML, "name: web", "name: other")}, nil,
			func(t *testing.T) string {
				return edit(t, serviceYAML, "  selector:\n", "  clusterIP: 10.96.0.2\n  selector:\n")
			}, "InvalidArgument",
			[]c{{"spec.clusterIP", `10.96.0.2 is already allocated to Service "other" in namespace "default": leave spec.clusterIP out to get a free address`}}},
		{"clusterIP is immutable", []string{serviceYAML}, nil,
			func(t *testing.T) string {
				return edit(t, serviceYAML, "  selector:\n", "  clusterIP: 10.96.0.9\n  selector:\n")
			}, "InvalidArgument",
			[]c{{"spec.clusterIP", "field is immutable: the Service has 10.96.0.2; delete the Service and apply it again to change its address, or leave spec.clusterIP out"}}},
		{"pod spec is immutable", []string{podYAML}, nil,
			func(t *testing.T) string {
				return edit(t, edit(t, podYAML, "nginx:1.27", "nginx:1.28"), "cpu: 500m", "cpu: 1")
			}, "InvalidArgument",
			[]c{{"spec", "a pod's spec cannot change after it is created, and spec.containers[0].image, spec.containers[0].resources.limits.cpu differ: delete the pod and apply it again, or let a Deployment replace its pods"}}},
		{"pod labels cannot change", []string{podYAML}, nil,
			func(t *testing.T) string { return edit(t, podYAML, "app: web", "app: web2") }, "InvalidArgument",
			[]c{{"metadata", "Skiff cannot change the labels or annotations of an existing pod: delete the pod and apply it again"}}},
		{"pod being deleted", []string{podYAML},
			func(t *testing.T, cl *cluster, r *replica) {
				if resp := r.Delete(ctxT(t), &api.DeleteRequest{Kind: "pod", Name: "web"}); resp.Error != nil {
					t.Fatal(resp.Error)
				}
			},
			func(t *testing.T) string { return podYAML }, "Conflict",
			[]c{{"", "pod \"web\" is being deleted: wait until it is gone (`skiff get pods`), then apply it again"}}},
		{"new pod with nodeName", nil, nil,
			func(t *testing.T) string {
				return edit(t, podYAML, "  containers:\n", "  nodeName: n1\n  containers:\n")
			}, "InvalidArgument",
			[]c{{"spec.nodeName", "set by the scheduler when it places the pod: remove it, or choose nodes with nodeSelector"}}},
		{"uid of another incarnation", []string{namespaceYAML}, nil,
			func(t *testing.T) string {
				return edit(t, namespaceYAML, "  name: shop\n", "  name: shop\n  uid: 11111111-2222-4333-8444-555555555555\n")
			}, "Conflict",
			nil}, // reason holds the current uid; checked below
		{"ownerReferences from a manifest", nil, nil,
			func(t *testing.T) string {
				return edit(t, podYAML, "  name: web\n", "  name: web\n  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: x}]\n")
			}, "InvalidArgument",
			[]c{{"metadata.ownerReferences", "set by the controller that owns the object, not by manifests: remove it"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := newCluster(t)
			r := cl.replica(Config{})
			if len(tt.setup) > 0 {
				r.mustApply(t, tt.setup...)
			}
			if tt.prepare != nil {
				tt.prepare(t, cl, r)
			}
			head := cl.head()
			resp := r.apply(t, tt.manifest(t))
			if resp.Error == nil {
				t.Fatalf("apply succeeded: %v", actions(resp.Results))
			}
			if resp.Error.Code != tt.code {
				t.Errorf("code %s, want %s (%v)", resp.Error.Code, tt.code, resp.Error)
			}
			if tt.want != nil {
				var want []api.Cause
				for _, w := range tt.want {
					want = append(want, api.Cause{Document: "test.yaml#1", Field: w.field, Reason: w.reason})
				}
				if diff := cmp.Diff(want, resp.Error.Causes); diff != "" {
					t.Errorf("causes (-want +got):\n%s", diff)
				}
			} else if len(resp.Error.Causes) != 1 || resp.Error.Causes[0].Field != "metadata.uid" ||
				!strings.Contains(resp.Error.Causes[0].Reason, "deleted and created again") {
				t.Errorf("causes %v, want one about metadata.uid", resp.Error.Causes)
			}
			if h := cl.head(); h != head {
				t.Errorf("a rejected apply wrote %d events", h-head)
			}
		})
	}
}

// A request with one bad document writes nothing, and names every problem in every document.
func TestApplyAllOrNothing(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	head := c.head()
	resp := r.apply(t, namespaceYAML, shopDeployment, edit(t, shopService, "port: 80", "port: 0"), edit(t, podYAML, "name: app", "name: App"))
	if resp.Error == nil || resp.Error.Code != "InvalidArgument" {
		t.Fatalf("error %v, want InvalidArgument", resp.Error)
	}
	if len(resp.Results) != 0 {
		t.Errorf("results %v, want none", resp.Results)
	}
	if h := c.head(); h != head {
		t.Errorf("wrote %d events, want none", h-head)
	}
	var fields []string
	for _, cause := range resp.Error.Causes {
		fields = append(fields, cause.Document+" "+cause.Field)
	}
	want := []string{"test.yaml#3 spec.ports[0].port", "test.yaml#4 spec.containers[0].name"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("causes (-want +got):\n%s", diff)
	}
}

func TestApplyDryRun(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	head := c.head()
	resp := r.Apply(ctxT(t), &api.ApplyRequest{Documents: docs(t, namespaceYAML, shopService), DryRun: true})
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
	want := []string{"namespace/shop created", "service/web created"}
	if diff := cmp.Diff(want, actions(resp.Results)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if h := c.head(); h != head {
		t.Errorf("dry run wrote %d events", h-head)
	}
}

func TestApplyDuplicateInRequest(t *testing.T) {
	c := newCluster(t)
	r := c.replica(Config{})
	resp := r.apply(t, serviceYAML, edit(t, serviceYAML, "port: 80", "port: 81"))
	want := []api.Cause{{Document: "test.yaml#2", Field: "metadata.name", Reason: `Service "web" appears twice in this request (also test.yaml#1)`}}
	if resp.Error == nil {
		t.Fatal("apply succeeded")
	}
	if diff := cmp.Diff(want, resp.Error.Causes); diff != "" {
		t.Errorf("causes (-want +got):\n%s", diff)
	}
}

func TestApplyNamespaceOfDefault(t *testing.T) {
	// "default" always exists: labelling it configures it.
	c := newCluster(t)
	r := c.replica(Config{})
	resp := r.mustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n")
	if got := actions(resp.Results); !cmp.Equal(got, []string{"namespace/default unchanged"}) {
		t.Errorf("results %v", got)
	}
	resp = r.mustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {a: b}}\n")
	if got := actions(resp.Results); !cmp.Equal(got, []string{"namespace/default configured"}) {
		t.Errorf("results %v", got)
	}
	r.view(t, resp.Seq, func(st *state.State) {
		if st.Namespaces["default"].Metadata.Labels["a"] != "b" {
			t.Errorf("default namespace labels %v", st.Namespaces["default"].Metadata.Labels)
		}
	})
}

func TestApplyUnavailableUntilSynced(t *testing.T) {
	c := newCluster(t)
	// A projection that is never run never syncs.
	a := New(Config{Log: c.store, Projection: liveNew()})
	ctx, cancel := contextWithTimeout(50)
	defer cancel()
	resp := a.Apply(ctx, &api.ApplyRequest{Documents: docs(t, namespaceYAML)})
	if resp.Error == nil || resp.Error.Code != "Unavailable" {
		t.Fatalf("error %v, want Unavailable", resp.Error)
	}
}
