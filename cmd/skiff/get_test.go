package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
)

func TestGet(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	f.waitSeq(t, c.scenario())
	tests := []struct {
		name       string
		args       []string
		golden     string // stdout's golden file; "" when stdout must be empty
		wantStderr string
		wantCode   int
	}{
		{name: "pods", args: []string{"get", "pods"}, golden: "get-pods.golden"},
		{name: "short name and wide", args: []string{"get", "po", "-o", "wide"}, golden: "get-pods-wide.golden"},
		{name: "all namespaces", args: []string{"get", "pod", "-A"}, golden: "get-pods-all.golden"},
		{name: "other namespace", args: []string{"get", "pods", "-n", "shop"}, golden: "get-pods-shop.golden"},
		{name: "selector", args: []string{"get", "pods", "-A", "-l", "app=web"}, golden: "get-pods-selector.golden"},
		{name: "one pod by KIND/NAME", args: []string{"get", "pod/web-a"}, golden: "get-pod-web-a.golden"},
		{name: "names", args: []string{"get", "pods", "-o", "name"}, golden: "get-pods-name.golden"},
		{name: "deployments", args: []string{"get", "deploy", "-o", "wide"}, golden: "get-deployments-wide.golden"},
		{name: "one deployment as json is the object", args: []string{"get", "deployments.apps", "web", "-o", "json"}, golden: "get-deployment-web.json"},
		{name: "pods as a json list", args: []string{"get", "pods", "-o", "json"}, golden: "get-pods.json"},
		{name: "services as yaml", args: []string{"get", "svc", "-o", "yaml"}, golden: "get-services.yaml"},
		{name: "endpoints", args: []string{"get", "ep"}, golden: "get-endpoints.golden"},
		{name: "nodes", args: []string{"get", "nodes", "-o", "wide"}, golden: "get-nodes-wide.golden"},
		{name: "namespaces ignore -n", args: []string{"get", "ns", "-n", "shop"}, golden: "get-namespaces.golden"},
		{name: "empty namespace", args: []string{"get", "deploy", "-n", "empty"},
			wantStderr: "No resources found in empty namespace.\n"},
		{name: "empty cluster-wide", args: []string{"get", "deploy", "-A", "-l", "app=none"},
			wantStderr: "No resources found\n"},
		{name: "empty as json is an empty list", args: []string{"get", "deploy", "-n", "empty", "-o", "json"}, golden: "get-empty.json"},
		{name: "empty as yaml is an empty list", args: []string{"get", "pods", "-A", "-l", "app=none", "-o", "yaml"}, golden: "get-empty.yaml"},
		{name: "named pod that does not exist", args: []string{"get", "pods", "nope"},
			wantStderr: "Error from server (NotFound): pods \"nope\" not found\n", wantCode: 1},
		{name: "named deployment that does not exist", args: []string{"get", "deploy", "nope", "-o", "yaml"},
			wantStderr: "Error from server (NotFound): deployments.apps \"nope\" not found\n", wantCode: 1},
		{name: "unknown kind", args: []string{"get", "widgets"},
			wantStderr: "error: the server doesn't have a resource type \"widgets\" (known: nodes, namespaces, deployments, pods, services, endpoints)\nSee 'skiff get --help' for usage.\n", wantCode: 2},
		{name: "unknown output", args: []string{"get", "pods", "-o", "xml"},
			wantStderr: "error: unknown output format \"xml\": use wide, name, json or yaml\nSee 'skiff get --help' for usage.\n", wantCode: 2},
		{name: "set-based selector", args: []string{"get", "pods", "-l", "app in (web)"},
			wantStderr: "error: label selector \"app in (web)\": \"app in (web)\" is not of the form key=value (only equality selectors are supported)\n", wantCode: 1},
		{name: "no kind", args: []string{"get"},
			wantStderr: "error: skiff get takes KIND [NAME], got 0 arguments\nSee 'skiff get --help' for usage.\n", wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", r.code, r.stderr, tt.wantCode, tt.wantStderr)
			}
			if tt.golden == "" {
				if r.stdout != "" && !strings.HasPrefix(r.stdout, "NAME") {
					t.Errorf("stdout = %q, want nothing (or a header)", r.stdout)
				}
				return
			}
			if strings.HasSuffix(tt.golden, ".json") && !json.Valid([]byte(r.stdout)) {
				t.Errorf("stdout is not JSON:\n%s", r.stdout)
			}
			eventstest.Golden(t, "testdata/"+tt.golden, r.stdout)
		})
	}
}

// TestGetAsksForRows checks the query the CLI sends: rows, not objects, for tables, so that a
// big listing stays small on the wire.
func TestGetAsksForRows(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	tests := []struct {
		args []string
		want api.GetRequest
	}{
		{[]string{"get", "pods"}, api.GetRequest{Kind: "pods", Namespace: "default", Table: true}},
		{[]string{"get", "po", "-A", "-o", "wide", "-l", "app=web,tier=fe"}, api.GetRequest{Kind: "pods", Namespace: "default", AllNamespaces: true, Table: true, Wide: true,
			Selector: map[string]string{"app": "web", "tier": "fe"}}},
		{[]string{"get", "nodes", "-A"}, api.GetRequest{Kind: "nodes", Table: true}},
		{[]string{"get", "deploy", "-o", "json", "-n", "shop"}, api.GetRequest{Kind: "deployments", Namespace: "shop"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f.mu.Lock()
			f.queries = nil
			f.mu.Unlock()
			c.run(tt.args...)
			f.mu.Lock()
			defer f.mu.Unlock()
			if diff := cmp.Diff([]api.GetRequest{tt.want}, f.queries); diff != "" {
				t.Errorf("queries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGetWatch(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	f.waitSeq(t, c.scenario())

	w := c.start("get", "pods", "-w")
	w.waitFor(t, "web-b   0/1     ContainerCreating")

	// web-b starts running: its row is printed again, aligned under the header.
	c.append(40*time.Minute, "node/n1", podRef("default", "web-b", "u-b"), "n1", &events.PodStatusReported{UID: "u-b", Status: events.PodStatus{
		Phase: events.PodRunning, PodIP: "10.88.1.6", ContainerStatuses: []events.ContainerStatus{running(40 * time.Minute)}}})
	w.waitFor(t, "web-b   1/1     Running")
	// A new pod appears, though the scheduler is slow to see it; a pod in another namespace
	// does not appear.
	f.mu.Lock()
	f.unavailable = 2
	f.mu.Unlock()
	c.append(41*time.Minute, "user/alice", podRef("shop", "other", "u-o"), "", &events.PodCreated{Pod: events.Pod{
		Metadata: events.ObjectMeta{Namespace: "shop", Name: "other", UID: "u-o"}, Spec: events.PodSpec{Containers: []events.Container{{Name: "c", Image: "i"}}}}})
	c.append(42*time.Minute, "user/alice", podRef("default", "web-c", "u-c"), "", &events.PodCreated{Pod: webPod("web-c", "u-c")})
	w.waitFor(t, "web-c   0/1     Pending")

	if code := w.stop(t); code != 0 {
		t.Errorf("interrupted watch exit status = %d, want 0; stderr: %s", code, w.err.String())
	}
	want := []string{
		"NAME    READY   STATUS              RESTARTS   AGE",
		"web-a   1/1     Running             0          50m",
		"web-b   0/1     ContainerCreating   0          49m",
		"web-b   1/1     Running             0          49m",
		"web-c   0/1     Pending             0          18m",
	}
	if diff := cmp.Diff(want, lines(w.out.String())); diff != "" {
		t.Errorf("watch output (-want +got):\n%s", diff)
	}
}

func TestGetWatchAllNamespacesJSON(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	f.waitSeq(t, c.scenario())

	w := c.start("get", "deploy", "-A", "-w", "-o", "json")
	w.waitFor(t, `"name": "web"`)
	c.append(40*time.Minute, "user/alice", webRef, "", &events.DeploymentScaled{Replicas: 5, Generation: 2})
	w.waitFor(t, `"replicas": 5`)
	w.stop(t)
	// Every object printed is a whole JSON document.
	dec := json.NewDecoder(strings.NewReader(w.out.String()))
	n := 0
	for dec.More() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("object %d does not decode: %v\n%s", n, err, w.out.String())
		}
		n++
	}
	if n != 2 {
		t.Errorf("printed %d objects, want 2 (the listing, then the change)", n)
	}
}

// TestGetWatchEmpty starts a watch on an empty namespace: the header comes with the first row.
func TestGetWatchEmpty(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	f.waitSeq(t, c.scenario())
	w := c.start("get", "deploy", "-n", "shop", "-w")
	// Wait for the listing to be done before changing the log, so that the change is a watch
	// event and not part of the listing.
	eventstest.Eventually(t, 10*time.Second, "the empty listing", func() bool {
		return strings.Contains(w.err.String(), "No resources found in shop namespace.")
	})
	c.append(40*time.Minute, "user/alice", events.ObjectRef{Kind: events.KindDeployment, Namespace: "shop", Name: "cart"}, "", &events.DeploymentApplied{
		Deployment: events.Deployment{Metadata: events.ObjectMeta{Namespace: "shop", Name: "cart"}}})
	w.waitFor(t, "cart")
	w.stop(t)
	want := []string{
		"NAME   READY   UP-TO-DATE   AVAILABLE   AGE",
		"cart   0/1     0            0           20m",
	}
	if diff := cmp.Diff(want, lines(w.out.String())); diff != "" {
		t.Errorf("watch output (-want +got):\n%s", diff)
	}
}
