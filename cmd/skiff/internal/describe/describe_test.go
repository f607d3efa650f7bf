package describe

import (
	"bytes"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

var (
	t0  = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now = t0.Add(10 * time.Minute)
)

func ptr[T any](v T) *T { return &v }

func event(t *testing.T, at time.Duration, actor string, ref events.ObjectRef, node string, p events.Payload) *events.Event {
	t.Helper()
	ev, err := events.New(t0.Add(at), events.Meta{Actor: actor}, ref, node, p)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestDescribe(t *testing.T) {
	podRef := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "web-1", UID: "u1"}
	pod := &events.Pod{
		Metadata: events.ObjectMeta{Name: "web-1", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "web", "tier": "fe"},
			CreationTimestamp: ptr(t0), DeletionTimestamp: ptr(now.Add(-5 * time.Second)),
			OwnerReferences: []events.OwnerReference{{Kind: "Deployment", Name: "web", Controller: true}}},
		Spec: events.PodSpec{NodeName: "n1", InitContainers: []events.Container{{Name: "migrate", Image: "app:1", Args: []string{"migrate"}}},
			Containers: []events.Container{
				{Name: "web", Image: "nginx:1.25", Ports: []events.ContainerPort{{Name: "http", ContainerPort: 8080}},
					Env:       []events.EnvVar{{Name: "MODE", Value: "prod"}},
					Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "250m", "memory": "64Mi"}, Limits: events.ResourceList{"memory": "128Mi"}}},
				{Name: "log", Image: "busybox", Command: []string{"sh", "-c"}, Args: []string{"tail -f /dev/null"}},
			}, Tolerations: []events.Toleration{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}, {Operator: "Exists"}}},
		Status: events.PodStatus{Phase: "Running", HostIP: "10.0.0.1", PodIP: "10.88.1.5", StartTime: ptr(t0.Add(time.Second)),
			Conditions: []events.Condition{{Type: "PodScheduled", Status: "True", LastTransitionTime: ptr(t0)}, {Type: "Ready", Status: "False", LastTransitionTime: ptr(t0.Add(time.Minute))}},
			InitContainerStatuses: []events.ContainerStatus{{Name: "migrate", Ready: true,
				State: events.ContainerState{Terminated: &events.ContainerStateTerminated{Reason: "Completed", StartedAt: ptr(t0), FinishedAt: ptr(t0.Add(time.Second))}}}},
			ContainerStatuses: []events.ContainerStatus{
				{Name: "web", RestartCount: 2, State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s\nrestarting"}},
					LastTerminationState: events.ContainerState{Terminated: &events.ContainerStateTerminated{ExitCode: 1, Reason: "Error", StartedAt: ptr(t0.Add(time.Minute)), FinishedAt: ptr(t0.Add(2 * time.Minute))}}},
				{Name: "log", Ready: true, State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: ptr(t0.Add(time.Second))}}},
			}},
	}
	podEvents := Events{Omitted: 3, List: []*events.Event{
		event(t, 0, "scheduler/a", podRef, "", &events.PodScheduled{UID: "u1", Node: "n1", Score: 87, Feasible: 2, Nodes: 3}),
		event(t, time.Second, "scheduler/a", podRef, "n1", &events.PodBound{}),
		event(t, 2*time.Minute, "node/n1", podRef, "n1", &events.PodStatusReported{UID: "u1", Status: pod.Status}),
	}}

	dep := &events.Deployment{
		Metadata: events.ObjectMeta{Name: "web", Namespace: "default", Generation: 3, CreationTimestamp: ptr(t0)},
		Spec: events.DeploymentSpec{Replicas: ptr(int32(3)), Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: events.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &events.RollingUpdateDeployment{MaxSurge: events.FromInt(1)}},
			Template: events.PodTemplateSpec{Metadata: events.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: events.PodSpec{Containers: []events.Container{{Name: "web", Image: "nginx:1.25"}}}}},
		Status: events.DeploymentStatus{ObservedGeneration: 3, Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UnavailableReplicas: 1,
			Conditions: []events.Condition{{Type: "Available", Status: "False", Reason: "MinimumReplicasUnavailable", Message: "Deployment does not have minimum availability.", LastTransitionTime: ptr(t0)}}},
	}
	depPods := Table{Columns: []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}, Rows: [][]string{{"web-1", "1/2", "CrashLoopBackOff", "2", "10m"}, {"web-2", "2/2", "Running", "0", "10m"}}}

	svc := &events.Service{
		Metadata: events.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: ptr(t0)},
		Spec: events.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10",
			Ports: []events.ServicePort{{Name: "http", Port: 80, TargetPort: events.FromString("http")}, {Name: "dns", Port: 53, Protocol: "UDP"}}},
	}
	ep := &events.Endpoints{Metadata: events.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: ptr(t0)}, Addresses: []events.EndpointAddress{
		{IP: "10.88.1.5", PodName: "web-1", NodeName: "n1", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "UDP"}}},
		{IP: "10.88.2.7", PodName: "web-2", Ports: []events.EndpointPort{{Name: "http", Port: 8081, Protocol: "TCP"}}},
	}}

	node := &events.Node{
		Metadata: events.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}, CreationTimestamp: ptr(t0)},
		Spec:     events.NodeSpec{PodCIDR: "10.88.1.0/24", Unschedulable: true, Taints: []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}},
		Status: events.NodeStatus{Capacity: events.ResourceList{"cpu": "4000m", "memory": "8589934592", "pods": "110"},
			Allocatable: events.ResourceList{"cpu": "4000m", "memory": "8589934592", "pods": "110"},
			Addresses:   []events.NodeAddress{{Type: "InternalIP", Address: "10.0.0.1"}},
			Conditions:  []events.Condition{{Type: "Ready", Status: "True", Reason: "NodeRegistered", LastTransitionTime: ptr(t0)}}},
	}
	nodePods := Table{Columns: []string{"NAMESPACE", "NAME", "STATUS", "AGE"}, Rows: [][]string{{"default", "web-1", "Running", "10m"}}}
	nodeRef := events.ObjectRef{Kind: events.KindNode, Name: "n1"}

	tests := []struct {
		name   string
		render func(w *bytes.Buffer) error
	}{
		{"pod", func(w *bytes.Buffer) error { return Pod(w, pod, podEvents, now) }},
		{"pod-pending", func(w *bytes.Buffer) error {
			p := &events.Pod{Metadata: events.ObjectMeta{Name: "p", Namespace: "default"},
				Spec:   events.PodSpec{Containers: []events.Container{{Name: "c", Image: "i"}}},
				Status: events.PodStatus{Phase: "Pending", Conditions: []events.Condition{{Type: "PodScheduled", Status: "False", Reason: "Unschedulable", Message: "0/3 nodes are available: 3 insufficient memory"}}}}
			return Pod(w, p, Events{}, now)
		}},
		{"deployment", func(w *bytes.Buffer) error { return Deployment(w, dep, depPods, Events{}, now) }},
		{"service", func(w *bytes.Buffer) error { return Service(w, svc, ep, Events{}, now) }},
		{"service-without-endpoints", func(w *bytes.Buffer) error { return Service(w, svc, nil, Events{}, now) }},
		{"endpoints", func(w *bytes.Buffer) error { return Endpoints(w, ep, Events{}, now) }},
		{"node", func(w *bytes.Buffer) error {
			return Node(w, node, &NodeUsage{CPU: "250m/4", Memory: "64Mi/8Gi", Pods: "1/110"}, nodePods,
				Events{List: []*events.Event{event(t, 0, "node/n1", nodeRef, "", &events.NodeCordoned{})}}, now)
		}},
		{"namespace", func(w *bytes.Buffer) error {
			return Namespace(w, &events.Namespace{Metadata: events.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}}, Events{}, now)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.render(&b); err != nil {
				t.Fatal(err)
			}
			eventstest.Golden(t, "testdata/"+tt.name+".golden", b.String())
		})
	}
}
