package summary

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ev(t *testing.T, node string, p events.Payload) *events.Event {
	t.Helper()
	e, err := events.New(t0, events.Meta{Actor: "test"}, events.ObjectRef{Kind: "pod", Namespace: "default", Name: "web-1"}, node, p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestOf(t *testing.T) {
	tp := events.FromString("http")
	tests := []struct {
		name string
		node string
		p    events.Payload
		want string
	}{
		{"scheduled", "", &events.PodScheduled{UID: "u", Node: "n1", Score: 87, Feasible: 2, Nodes: 3}, "node=n1 score=87 feasible=2/3"},
		{"unschedulable keeps the message on one line", "", &events.PodUnschedulable{Message: "0/3 nodes are available:\n 2 insufficient memory"}, "0/3 nodes are available: 2 insufficient memory"},
		{"created by a deployment", "", &events.PodCreated{Pod: events.Pod{
			Metadata: events.ObjectMeta{OwnerReferences: []events.OwnerReference{{Kind: "Deployment", Name: "web", Controller: true}}},
			Spec:     events.PodSpec{Containers: []events.Container{{Image: "nginx:1.25"}, {Image: "busybox"}}}}}, "owner=Deployment/web image=nginx:1.25,busybox"},
		{"bound", "n2", &events.PodBound{}, "node=n2"},
		{"stop requested", "n2", &events.PodStopRequested{GracePeriodSeconds: 30}, "node=n2 grace=30s"},
		{"deletion requested", "", &events.PodDeletionRequested{GracePeriodSeconds: 0}, "grace=0s"},
		{"status running", "n1", &events.PodStatusReported{Status: events.PodStatus{Phase: "Running", PodIP: "10.88.1.5",
			ContainerStatuses: []events.ContainerStatus{{Name: "web", Ready: true}}}}, "node=n1 phase=Running ip=10.88.1.5 ready=1/1"},
		{"status crashing", "n1", &events.PodStatusReported{Status: events.PodStatus{Phase: "Running",
			ContainerStatuses: []events.ContainerStatus{{Name: "web", RestartCount: 3, State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}},
				{Name: "log", State: events.ContainerState{Terminated: &events.ContainerStateTerminated{ExitCode: 2}}}}}},
			"node=n1 phase=Running ready=0/2 restarts=3 web:CrashLoopBackOff,log:exit 2"},
		{"terminated", "n1", &events.PodTerminated{}, "node=n1"},
		{"node registered", "", &events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110,
			Taints: []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}}, "address=10.0.0.1 cpu=4 memory=8Gi pods=110 taints=dedicated=db:NoSchedule"},
		{"node not ready", "", &events.NodeNotReady{Reason: "LeaseExpired", Message: "no heartbeat for 40s"}, "reason=LeaseExpired no heartbeat for 40s"},
		{"pod cidr", "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.1.0/24"}, "podCIDR=10.88.1.0/24"},
		{"cordoned", "", &events.NodeCordoned{}, ""},
		{"deployment applied", "", &events.DeploymentApplied{Deployment: events.Deployment{Metadata: events.ObjectMeta{Generation: 2},
			Spec: events.DeploymentSpec{Template: events.PodTemplateSpec{Spec: events.PodSpec{Containers: []events.Container{{Image: "nginx"}}}}}}}, "generation=2 replicas=1 image=nginx"},
		{"scaled", "", &events.DeploymentScaled{Replicas: 5, Generation: 3}, "replicas=5 generation=3"},
		{"rollout", "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{Replicas: 3, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1, ObservedGeneration: 2,
			Conditions: []events.Condition{{Type: "Available", Status: "False", Reason: "MinimumReplicasUnavailable"}, {Type: "Progressing", Status: "True", Reason: "ReplicaSetUpdated"}}}},
			"replicas=3 updated=2 ready=1 available=1 observedGeneration=2 Available=MinimumReplicasUnavailable"},
		{"service", "", &events.ServiceApplied{Service: events.Service{Spec: events.ServiceSpec{ClusterIP: "10.96.0.10", Selector: map[string]string{"app": "web"},
			Ports: []events.ServicePort{{Port: 80, TargetPort: tp}, {Port: 53, Protocol: "UDP", TargetPort: events.FromInt(53)}}}}}, "clusterIP=10.96.0.10 ports=80/TCP->http,53/UDP selector=app=web"},
		{"endpoints", "", &events.EndpointsUpdated{Addresses: []events.EndpointAddress{{IP: "10.88.2.3"}, {IP: "10.88.1.5"}}}, "2 addresses: 10.88.1.5,10.88.2.3"},
		{"no endpoints", "", &events.EndpointsUpdated{}, "no ready addresses"},
		{"term", "", &events.LeaderElected{Replica: "sched-a", Term: 3}, "term=3 replica=sched-a"},
		{"fence", "", &events.LeaderWrote{Term: 3, Events: 12}, "term=3 events=12"},
		{"long messages are cut", "", &events.PodUnschedulable{Message: strings.Repeat("x", 300)}, strings.Repeat("x", 157) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := tt.node
			if node == "" {
				node = "n1"
			}
			if got := Of(ev(t, node, tt.p)); got != tt.want {
				t.Errorf("Of = %q\n want %q", got, tt.want)
			}
		})
	}
}

// TestEveryType decodes every registered event type with an empty payload: a summary must never
// panic on an event that carries less than its writer usually puts in.
func TestEveryType(t *testing.T) {
	for _, typ := range events.Types() {
		t.Run(typ, func(t *testing.T) {
			kind := events.KindOf(typ)
			subject := events.ObjectSubject(kind, "default", "x")
			switch kind {
			case events.KindBind:
				subject = events.BindSubject("n1", "default", "x")
			case events.KindStatus:
				subject = events.StatusSubject("n1", "default", "x")
			}
			data := fmt.Sprintf(`{"id":"1","type":%q,"v":1,"time":"2025-03-01T12:00:00Z","actor":"a","object":{"kind":"pod","name":"x"},"payload":{}}`, typ)
			e, err := events.Decode(subject, 1, []byte(data))
			if err != nil {
				t.Fatal(err)
			}
			_ = Of(e)
		})
	}
	if got := Of(&events.Event{Subject: "skiff.ev.pod.default.x"}); got != "" {
		t.Errorf("Of(undecoded) = %q, want empty", got)
	}
}
