package table

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/state"
)

// t0 is when the test cluster's log begins; now is when the tables are printed.
var (
	t0  = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now = t0.Add(26 * time.Hour)
)

// cluster folds events into a state through the real projection, so the rows are printed from
// exactly what a scheduler replica would hold.
type cluster struct {
	t   testing.TB
	st  *state.State
	seq uint64
}

func newCluster(t testing.TB) *cluster { return &cluster{t: t, st: state.New()} }

func (c *cluster) apply(at time.Duration, ref events.ObjectRef, node string, p events.Payload) {
	c.t.Helper()
	ev, err := events.New(t0.Add(at), events.Meta{Actor: "test"}, ref, node, p)
	if err != nil {
		c.t.Fatalf("new %T: %v", p, err)
	}
	c.seq++
	ev.Seq = c.seq
	if err := c.st.Apply(ev); err != nil {
		c.t.Fatalf("apply %s: %v", ev.Type, err)
	}
}

func ptr[T any](v T) *T { return &v }

func pod(ns, name, uid string, labels map[string]string, containers ...string) events.Pod {
	p := events.Pod{Metadata: events.ObjectMeta{Namespace: ns, Name: name, UID: uid, Labels: labels}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, events.Container{Name: c, Image: c + ":1",
			Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "250m", "memory": "64Mi"}}})
	}
	return p
}

func running(name string) events.ContainerStatus {
	return events.ContainerStatus{Name: name, Ready: true, State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: ptr(t0)}}}
}

// scenario is a small cluster with one object in every interesting state.
func scenario(t testing.TB) *state.State {
	c := newCluster(t)
	nodeRef := func(n string) events.ObjectRef { return events.ObjectRef{Kind: events.KindNode, Name: n} }
	c.apply(0, events.ObjectRef{Kind: events.KindNamespace, Name: "shop"}, "", &events.NamespaceApplied{
		Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}}})
	c.apply(time.Minute, nodeRef("n1"), "", &events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110,
		Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", VersionLabel: "v0.1.0"}})
	c.apply(time.Minute, nodeRef("n1"), "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.1.0/24"})
	c.apply(2*time.Minute, nodeRef("n2"), "", &events.NodeRegistered{Address: "10.0.0.2", MilliCPU: 2500, Memory: 3 << 29, MaxPods: 10})
	c.apply(2*time.Minute, nodeRef("n2"), "", &events.NodeCordoned{})
	c.apply(3*time.Minute, nodeRef("n3"), "", &events.NodeRegistered{Address: "10.0.0.3", MilliCPU: 1000, Memory: 1 << 30, MaxPods: 10})
	c.apply(20*time.Hour, nodeRef("n3"), "", &events.NodeNotReady{Reason: "LeaseExpired"})

	web := events.Deployment{Metadata: events.ObjectMeta{Namespace: "default", Name: "web", UID: "d1", Generation: 2, Labels: map[string]string{"app": "web"}},
		Spec: events.DeploymentSpec{Replicas: ptr(int32(3)), Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "fe"}},
			Template: events.PodTemplateSpec{Spec: events.PodSpec{Containers: []events.Container{{Name: "web", Image: "nginx:1.25"}, {Name: "log", Image: "busybox"}}}}}}
	depRef := events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "web", UID: "d1"}
	c.apply(time.Hour, depRef, "", &events.DeploymentApplied{Deployment: web})
	c.apply(time.Hour, depRef, "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1}})
	c.apply(25*time.Hour, events.ObjectRef{Kind: events.KindDeployment, Namespace: "shop", Name: "cart"}, "", &events.DeploymentApplied{Deployment: events.Deployment{
		Metadata: events.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec:     events.DeploymentSpec{Template: events.PodTemplateSpec{Spec: events.PodSpec{Containers: []events.Container{{Name: "cart", Image: "cart:2"}}}}}}})

	type podCase struct {
		name, node string
		at         time.Duration
		status     *events.PodStatus
		deleting   bool
		containers []string
	}
	term := func(reason string, code, signal int32) events.ContainerState {
		return events.ContainerState{Terminated: &events.ContainerStateTerminated{Reason: reason, ExitCode: code, Signal: signal}}
	}
	crash := events.ContainerStatus{Name: "web", RestartCount: 4,
		State:                events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: events.ContainerState{Terminated: &events.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: ptr(now.Add(-90 * time.Second))}}}
	pods := []podCase{
		{name: "web-a", node: "n1", at: time.Hour, containers: []string{"web", "log"},
			status: &events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.1.5", ContainerStatuses: []events.ContainerStatus{running("web"), running("log")}}},
		{name: "web-b", node: "n1", at: time.Hour + 5*time.Second, containers: []string{"web", "log"},
			status: &events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.1.6", ContainerStatuses: []events.ContainerStatus{crash, running("log")}}},
		{name: "web-c", node: "n1", at: 25*time.Hour + 58*time.Minute, containers: []string{"web"},
			status: &events.PodStatus{Phase: events.PodPending, ContainerStatuses: []events.ContainerStatus{{Name: "web", State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}},
		{name: "pending", at: 26*time.Hour - 30*time.Second, containers: []string{"web"}},
		{name: "bad-image", node: "n1", at: 26*time.Hour - 3*time.Minute - 2*time.Second, containers: []string{"web"},
			status: &events.PodStatus{Phase: events.PodPending, ContainerStatuses: []events.ContainerStatus{{Name: "web", State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "ErrImageNotFound"}}}}}},
		{name: "job-done", node: "n1", at: 2 * time.Hour, containers: []string{"job"},
			status: &events.PodStatus{Phase: events.PodSucceeded, ContainerStatuses: []events.ContainerStatus{{Name: "job", State: term("Completed", 0, 0)}}}},
		{name: "job-failed", node: "n1", at: 3 * time.Hour, containers: []string{"job"},
			status: &events.PodStatus{Phase: events.PodFailed, ContainerStatuses: []events.ContainerStatus{{Name: "job", State: term("Error", 2, 0)}}}},
		{name: "oom", node: "n1", at: 4 * time.Hour, containers: []string{"job"},
			status: &events.PodStatus{Phase: events.PodFailed, ContainerStatuses: []events.ContainerStatus{{Name: "job", State: term("OOMKilled", 137, 0)}}}},
		{name: "going", node: "n1", at: 5 * time.Hour, containers: []string{"web"}, deleting: true,
			status: &events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.1.9", ContainerStatuses: []events.ContainerStatus{running("web")}}},
	}
	for i, p := range pods {
		uid := fmt.Sprintf("p%d", i)
		labels := map[string]string{"app": "web"}
		if strings.HasPrefix(p.name, "job") || p.name == "oom" {
			labels = map[string]string{"app": "batch"}
		}
		ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: p.name, UID: uid}
		c.apply(p.at, ref, "", &events.PodCreated{Pod: pod("default", p.name, uid, labels, p.containers...)})
		if p.node == "" {
			c.apply(p.at, ref, "", &events.PodUnschedulable{UID: uid, Message: "0/3 nodes are available"})
			continue
		}
		c.apply(p.at, ref, "", &events.PodScheduled{UID: uid, Node: p.node})
		if p.status != nil {
			c.apply(p.at+time.Second, ref, p.node, &events.PodStatusReported{UID: uid, Status: *p.status})
		}
		if p.deleting {
			c.apply(p.at+time.Minute, ref, "", &events.PodDeletionRequested{UID: uid, GracePeriodSeconds: 30})
		}
	}
	shopRef := events.ObjectRef{Kind: events.KindPod, Namespace: "shop", Name: "cart-1", UID: "s1"}
	c.apply(25*time.Hour, shopRef, "", &events.PodCreated{Pod: pod("shop", "cart-1", "s1", nil, "cart")})

	svcRef := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}
	c.apply(time.Hour, svcRef, "", &events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: events.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10",
			Ports: []events.ServicePort{{Name: "http", Port: 80, TargetPort: events.FromInt(8080)}, {Name: "dns", Port: 53, Protocol: "UDP"}}}}})
	c.apply(time.Hour, svcRef, "", &events.EndpointsUpdated{Addresses: []events.EndpointAddress{
		{IP: "10.88.1.5", PodName: "web-a", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "UDP"}}},
		{IP: "10.88.1.6", PodName: "web-b", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "UDP"}}},
	}})
	emptyRef := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "empty"}
	c.apply(25*time.Hour+59*time.Minute, emptyRef, "", &events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Namespace: "default", Name: "empty"}}})
	c.apply(25*time.Hour+59*time.Minute, emptyRef, "", &events.EndpointsUpdated{})
	return c.st
}

// render aligns a header and rows the way a terminal would show them.
func render(cols []string, rows [][]string) string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
	return b.String()
}

func TestRowsGolden(t *testing.T) {
	st := scenario(t)
	tests := []struct {
		name string
		kind string
		opts Options
	}{
		{"pods", Pods, Options{}},
		{"pods-wide", Pods, Options{Wide: true}},
		{"pods-all-namespaces", Pods, Options{AllNamespaces: true}},
		{"pods-selector", Pods, Options{Selector: map[string]string{"app": "batch"}}},
		{"pods-name", Pods, Options{Name: "web-b", Wide: true}},
		{"pods-shop", Pods, Options{Namespace: "shop"}},
		{"deployments", Deployments, Options{AllNamespaces: true}},
		{"deployments-wide", Deployments, Options{Wide: true}},
		{"services", Services, Options{}},
		{"services-wide", Services, Options{Wide: true}},
		{"endpoints", Endpoints, Options{}},
		{"nodes", Nodes, Options{AllNamespaces: true}},
		{"nodes-wide", Nodes, Options{Wide: true}},
		{"namespaces", Namespaces, Options{}},
		{"namespaces-selector", Namespaces, Options{Selector: map[string]string{"team": "a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cols := Columns(tt.kind, tt.opts.Wide, tt.opts.AllNamespaces)
			rows := Rows(st, tt.kind, tt.opts, now)
			for i, r := range rows {
				if len(r) != len(cols) {
					t.Errorf("row %d has %d cells, the header %d: %q", i, len(r), len(cols), r)
				}
			}
			eventstest.Golden(t, "testdata/"+tt.name+".golden", render(cols, rows))
		})
	}
}

func TestRowsMissing(t *testing.T) {
	st := scenario(t)
	tests := []struct {
		name string
		kind string
		opts Options
	}{
		{"unknown name", Pods, Options{Name: "nope"}},
		{"name in another namespace", Pods, Options{Name: "cart-1"}},
		{"name not matching selector", Pods, Options{Name: "web-a", Selector: map[string]string{"app": "batch"}}},
		{"empty namespace", Deployments, Options{Namespace: "nope"}},
		{"unknown kind", "widgets", Options{}},
		{"unknown node", Nodes, Options{Name: "n9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rows := Rows(st, tt.kind, tt.opts, now); len(rows) != 0 {
				t.Errorf("Rows = %q, want none", rows)
			}
		})
	}
}

func TestColumns(t *testing.T) {
	tests := []struct {
		kind        string
		wide, allNS bool
		want        string
	}{
		{Pods, false, false, "NAME READY STATUS RESTARTS AGE"},
		{Pods, true, true, "NAMESPACE NAME READY STATUS RESTARTS AGE IP NODE"},
		{Nodes, true, true, "NAME STATUS ROLES AGE VERSION INTERNAL-IP POD-CIDR CPU MEMORY PODS"},
		{Namespaces, false, true, "NAME STATUS AGE"},
		{Services, true, false, "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR"},
		{"widgets", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/wide=%v/all=%v", tt.kind, tt.wide, tt.allNS), func(t *testing.T) {
			if got := strings.Join(Columns(tt.kind, tt.wide, tt.allNS), " "); got != tt.want {
				t.Errorf("Columns = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-5 * time.Second, "<invalid>"},
		{-1500 * time.Millisecond, "0s"},
		{0, "0s"},
		{59 * time.Second, "59s"},
		{119 * time.Second, "119s"},
		{2 * time.Minute, "2m"},
		{3*time.Minute + 2*time.Second, "3m2s"},
		{9*time.Minute + 59*time.Second, "9m59s"},
		{10*time.Minute + 30*time.Second, "10m"},
		{179 * time.Minute, "179m"},
		{3 * time.Hour, "3h"},
		{4*time.Hour + 5*time.Minute, "4h5m"},
		{8*time.Hour + 5*time.Minute, "8h"},
		{47 * time.Hour, "47h"},
		{48 * time.Hour, "2d"},
		{51 * time.Hour, "2d3h"},
		{8 * 24 * time.Hour, "8d"},
		{729 * 24 * time.Hour, "729d"},
		{(730 + 8) * 24 * time.Hour, "2y8d"},
		{8 * 365 * 24 * time.Hour, "8y"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := Age(tt.d); got != tt.want {
				t.Errorf("Age(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestPodStatus(t *testing.T) {
	waiting := func(r string) events.ContainerState {
		return events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: r}}
	}
	term := func(r string, code, sig int32) events.ContainerState {
		return events.ContainerState{Terminated: &events.ContainerStateTerminated{Reason: r, ExitCode: code, Signal: sig}}
	}
	run := events.ContainerState{Running: &events.ContainerStateRunning{}}
	tests := []struct {
		name     string
		status   events.PodStatus
		deleting bool
		want     string
	}{
		{"no status yet", events.PodStatus{}, false, "Pending"},
		{"pending", events.PodStatus{Phase: "Pending"}, false, "Pending"},
		{"running", events.PodStatus{Phase: "Running", ContainerStatuses: []events.ContainerStatus{{Ready: true, State: run}}}, false, "Running"},
		{"creating", events.PodStatus{Phase: "Pending", ContainerStatuses: []events.ContainerStatus{{State: waiting("ContainerCreating")}}}, false, "ContainerCreating"},
		{"first container wins", events.PodStatus{Phase: "Running", ContainerStatuses: []events.ContainerStatus{{State: waiting("CrashLoopBackOff")}, {State: waiting("ErrImageNotFound")}}}, false, "CrashLoopBackOff"},
		{"completed", events.PodStatus{Phase: "Succeeded", ContainerStatuses: []events.ContainerStatus{{State: term("Completed", 0, 0)}}}, false, "Completed"},
		{"error", events.PodStatus{Phase: "Failed", ContainerStatuses: []events.ContainerStatus{{State: term("Error", 1, 0)}}}, false, "Error"},
		{"oom", events.PodStatus{Phase: "Failed", ContainerStatuses: []events.ContainerStatus{{State: term("OOMKilled", 137, 0)}}}, false, "OOMKilled"},
		{"exit code without reason", events.PodStatus{Phase: "Failed", ContainerStatuses: []events.ContainerStatus{{State: term("", 3, 0)}}}, false, "ExitCode:3"},
		{"signal without reason", events.PodStatus{Phase: "Failed", ContainerStatuses: []events.ContainerStatus{{State: term("", 0, 9)}}}, false, "Signal:9"},
		{"sidecar still running, ready", events.PodStatus{Phase: "Running",
			Conditions:        []events.Condition{{Type: "Ready", Status: "True"}},
			ContainerStatuses: []events.ContainerStatus{{State: term("Completed", 0, 0)}, {Ready: true, State: run}}}, false, "Running"},
		{"sidecar still running, not ready", events.PodStatus{Phase: "Running",
			ContainerStatuses: []events.ContainerStatus{{State: term("Completed", 0, 0)}, {Ready: true, State: run}}}, false, "NotReady"},
		{"pod reason", events.PodStatus{Phase: "Failed", Reason: "Evicted"}, false, "Evicted"},
		{"second init container running", events.PodStatus{Phase: "Pending",
			InitContainerStatuses: []events.ContainerStatus{{State: term("Completed", 0, 0)}, {State: run}},
			ContainerStatuses:     []events.ContainerStatus{{State: waiting("PodInitializing")}}}, false, "Init:1/2"},
		{"init container crash-looping", events.PodStatus{Phase: "Pending",
			InitContainerStatuses: []events.ContainerStatus{{State: waiting("CrashLoopBackOff")}}}, false, "Init:CrashLoopBackOff"},
		{"init container failed", events.PodStatus{Phase: "Failed",
			InitContainerStatuses: []events.ContainerStatus{{State: term("Error", 1, 0)}}}, false, "Init:Error"},
		{"initialized", events.PodStatus{Phase: "Running",
			InitContainerStatuses: []events.ContainerStatus{{State: term("Completed", 0, 0)}},
			ContainerStatuses:     []events.ContainerStatus{{Ready: true, State: run}}}, false, "Running"},
		{"deleting", events.PodStatus{Phase: "Running", ContainerStatuses: []events.ContainerStatus{{Ready: true, State: run}}}, true, "Terminating"},
		{"deleting while crashing", events.PodStatus{Phase: "Running", ContainerStatuses: []events.ContainerStatus{{State: waiting("CrashLoopBackOff")}}}, true, "Terminating"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &events.Pod{Status: tt.status}
			if tt.deleting {
				p.Metadata.DeletionTimestamp = ptr(t0)
			}
			if got := PodStatus(p); got != tt.want {
				t.Errorf("PodStatus = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"po", Pods}, {"pod", Pods}, {"pods", Pods}, {"Pod", Pods},
		{"deploy", Deployments}, {"deployment", Deployments}, {"deployments.apps", Deployments}, {"deployment.apps", Deployments},
		{"svc", Services}, {"service", Services}, {"ep", Endpoints}, {"endpoints", Endpoints},
		{"no", Nodes}, {"node", Nodes}, {"NODES", Nodes}, {"ns", Namespaces}, {"namespace", Namespaces},
		{"pods.apps", ""}, {"widget", ""}, {"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, ok := Lookup(tt.in)
			if ok != (tt.want != "") || r.Plural != tt.want {
				t.Errorf("Lookup(%q) = %q, %v; want %q", tt.in, r.Plural, ok, tt.want)
			}
		})
	}
}

func TestResourceNames(t *testing.T) {
	d, _ := Lookup("deploy")
	p, _ := Lookup("po")
	got := []string{d.Qualified(), d.Ref("web"), p.Qualified(), p.Ref("x")}
	want := []string{"deployments.apps", "deployment.apps/web", "pods", "pod/x"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("names = %q, want %q", got, want)
	}
}

func TestFormatQuantities(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{FormatCPU(0), "0"}, {FormatCPU(4000), "4"}, {FormatCPU(1500), "1500m"}, {FormatCPU(250), "250m"},
		{FormatMemory(0), "0"}, {FormatMemory(1000), "1000"}, {FormatMemory(64 << 20), "64Mi"},
		{FormatMemory(3 << 29), "1.5Gi"}, {FormatMemory(8 << 30), "8Gi"}, {FormatMemory(1536), "1.5Ki"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}
