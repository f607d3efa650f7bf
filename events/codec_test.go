package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// samples has one example of every event type, as it would be written.
func samples() map[string]struct {
	ref  events.ObjectRef
	node string
	p    events.Payload
} {
	pod := events.Pod{
		Metadata: events.ObjectMeta{Name: "web-abc", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "web"},
			OwnerReferences: []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d1", Controller: true}}},
		Spec: events.PodSpec{Containers: []events.Container{{Name: "echo", Image: "skiff.dev/echo:v1",
			Ports:     []events.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}},
			Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "100m", "memory": "64Mi"}}}},
			RestartPolicy: events.RestartAlways, TerminationGracePeriodSeconds: ptr(int64(5))},
	}
	bound := pod
	bound.Spec.NodeName = "n1"
	podRef := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "web-abc", UID: "u1"}
	dep := events.Deployment{TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: events.ObjectMeta{Name: "web", Namespace: "default", UID: "d1", Generation: 1},
		Spec: events.DeploymentSpec{Replicas: ptr(int32(3)), Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: events.PodTemplateSpec{Metadata: events.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: pod.Spec},
			Strategy: events.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &events.RollingUpdateDeployment{MaxSurge: events.FromString("25%"), MaxUnavailable: events.FromInt(0)}}}}
	depRef := events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "web", UID: "d1"}
	svcRef := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web", UID: "s1"}
	nodeRef := events.ObjectRef{Kind: events.KindNode, Name: "n1"}
	nsRef := events.ObjectRef{Kind: events.KindNamespace, Name: "team"}
	type s = struct {
		ref  events.ObjectRef
		node string
		p    events.Payload
	}
	return map[string]s{
		"NamespaceApplied":     {nsRef, "", &events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "team"}}}},
		"NamespaceDeleted":     {nsRef, "", &events.NamespaceDeleted{}},
		"NodeRegistered":       {nodeRef, "", &events.NodeRegistered{Labels: map[string]string{"zone": "a"}, Taints: []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}, Address: "10.0.0.1", MilliCPU: 2000, Memory: 4 << 30, MaxPods: 110}},
		"NodePodCIDRAssigned":  {nodeRef, "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.1.0/24"}},
		"NodeReady":            {nodeRef, "", &events.NodeReady{Reason: "KubeletReady"}},
		"NodeNotReady":         {nodeRef, "", &events.NodeNotReady{Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}},
		"NodeCordoned":         {nodeRef, "", &events.NodeCordoned{}},
		"NodeUncordoned":       {nodeRef, "", &events.NodeUncordoned{}},
		"NodeDeleted":          {nodeRef, "", &events.NodeDeleted{}},
		"PodCreated":           {podRef, "", &events.PodCreated{Pod: pod}},
		"PodScheduled":         {podRef, "", &events.PodScheduled{UID: "u1", Node: "n1", Score: 87, Feasible: 2, Nodes: 3}},
		"PodUnschedulable":     {podRef, "", &events.PodUnschedulable{UID: "u1", Message: "0/3 nodes are available: 3 Insufficient memory.", Reasons: map[string]int{"Insufficient memory": 3}}},
		"PodDeletionRequested": {podRef, "", &events.PodDeletionRequested{UID: "u1", GracePeriodSeconds: 30}},
		"PodDeleted":           {podRef, "", &events.PodDeleted{UID: "u1"}},
		"PodBound":             {podRef, "n1", &events.PodBound{Pod: bound}},
		"PodStopRequested":     {podRef, "n1", &events.PodStopRequested{UID: "u1", GracePeriodSeconds: 30}},
		"PodStatusReported": {podRef, "n1", &events.PodStatusReported{UID: "u1", Status: events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.1.5", StartTime: ptr(t0),
			ContainerStatuses: []events.ContainerStatus{{Name: "echo", Ready: true, RestartCount: 1, ContainerID: "containerd://abc",
				State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: ptr(t0)}}}}}}},
		"PodTerminated":               {podRef, "n1", &events.PodTerminated{UID: "u1"}},
		"DeploymentApplied":           {depRef, "", &events.DeploymentApplied{Deployment: dep}},
		"DeploymentScaled":            {depRef, "", &events.DeploymentScaled{Replicas: 5, Generation: 2}},
		"DeploymentRolloutProgressed": {depRef, "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}}},
		"DeploymentDeleted":           {depRef, "", &events.DeploymentDeleted{}},
		"ServiceApplied": {svcRef, "", &events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: "web", Namespace: "default", UID: "s1"},
			Spec: events.ServiceSpec{Type: "ClusterIP", ClusterIP: "10.96.0.10", Selector: map[string]string{"app": "web"},
				Ports: []events.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: events.FromString("http")}}}}}},
		"ServiceDeleted": {svcRef, "", &events.ServiceDeleted{}},
		"LeaderElected":  {events.TermRef, "", &events.LeaderElected{Replica: "sched-a", Term: 3}},
		"LeaderWrote":    {events.PassRef("deployments"), "", &events.LeaderWrote{Term: 3, Events: 12}},
		"EndpointsUpdated": {events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}, "", &events.EndpointsUpdated{Addresses: []events.EndpointAddress{
			{IP: "10.88.1.5", NodeName: "n1", PodName: "web-abc", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}}}},
	}
}

// Every event type has a golden JSON file: the wire format is a compatibility promise, so any
// change to it shows up here.
func TestEventJSONGolden(t *testing.T) {
	all := samples()
	types := events.Types()
	sort.Strings(types)
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			s, ok := all[typ]
			if !ok {
				t.Fatalf("no sample for event type %s: add one", typ)
			}
			ev, err := events.New(t0, events.Meta{Actor: "test", CorrelationID: "corr-1", CausationID: "cause-1"}, s.ref, s.node, s.p)
			if err != nil {
				t.Fatal(err)
			}
			ev.ID = "id-" + typ
			data, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			_ = json.Indent(&pretty, data, "", "  ")
			pretty.WriteByte('\n')
			eventstest.Golden(t, "testdata/events/"+typ+".json", pretty.Bytes()) // the wire format
			// What the golden file holds decodes back into the same payload.
			back, err := events.Decode(ev.Subject, 1, pretty.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Data, s.p) {
				t.Errorf("decoded payload differs:\n%s", cmp.Diff(s.p, back.Data))
			}
			if back.Subject != ev.Subject || events.KindOf(typ) == "" {
				t.Errorf("subject %s, kind %q", back.Subject, events.KindOf(typ))
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name, data string
	}{
		{"not json", `{nope`},
		{"unknown type", `{"id":"1","type":"PodTeleported","v":1,"object":{"kind":"pod","name":"a"},"payload":{}}`},
		{"future version", `{"id":"1","type":"PodDeleted","v":2,"object":{"kind":"pod","name":"a"},"payload":{}}`},
		{"version zero", `{"id":"1","type":"PodDeleted","v":0,"object":{"kind":"pod","name":"a"},"payload":{}}`},
		{"payload of wrong shape", `{"id":"1","type":"PodDeleted","v":1,"object":{"kind":"pod","name":"a"},"payload":{"uid":7}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := events.Decode("skiff.ev.pod.default.a", 9, []byte(tc.data))
			if !errors.Is(err, events.ErrInvalidArgument) {
				t.Fatalf("Decode = %v, want InvalidArgument", err)
			}
		})
	}
}

func TestNewRejectsValuePayload(t *testing.T) {
	_, err := events.New(t0, events.Meta{}, events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "a"}, "", events.PodDeleted{})
	if !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("New with a value payload = %v, want InvalidArgument", err)
	}
}

func TestSubjects(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    events.Subject
	}{
		{"skiff.ev.pod.default.web", events.Subject{Kind: "pod", Namespace: "default", Name: "web"}},
		{"skiff.ev.node._.n1", events.Subject{Kind: "node", Namespace: "_", Name: "n1"}},
		{"skiff.ev.bind.n1.default.web", events.Subject{Kind: "bind", Node: "n1", Namespace: "default", Name: "web"}},
		{"skiff.ev.status.n1.default.web", events.Subject{Kind: "status", Node: "n1", Namespace: "default", Name: "web"}},
	} {
		got, err := events.ParseSubject(tc.subject)
		if err != nil || got != tc.want || got.String() != tc.subject {
			t.Errorf("ParseSubject(%s) = %+v, %v", tc.subject, got, err)
		}
	}
	for _, bad := range []string{"other.pod.a.b", "skiff.ev.pod.a", "skiff.ev.bind.n.a", "skiff.ev.pod.a.b.c"} {
		if _, err := events.ParseSubject(bad); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("ParseSubject(%s) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestQuantities(t *testing.T) {
	for _, tc := range []struct {
		q      string
		cpu    int64
		cpuErr bool
		mem    int64
		memErr bool
	}{
		{q: "1", cpu: 1000, mem: 1},
		{q: "250m", cpu: 250, memErr: true},
		{q: "0.5", cpu: 500, mem: 1},
		{q: "128Mi", cpuErr: true, mem: 128 << 20},
		{q: "1G", cpuErr: true, mem: 1e9},
		{q: "1.5Gi", cpuErr: true, mem: 3 << 29},
		{q: "-1", cpuErr: true, memErr: true},
		{q: "abc", cpuErr: true, memErr: true},
		{q: "", cpuErr: true, memErr: true},
	} {
		cpu, err := events.ParseCPU(tc.q)
		if (err != nil) != tc.cpuErr || (err == nil && cpu != tc.cpu) {
			t.Errorf("ParseCPU(%q) = %d, %v", tc.q, cpu, err)
		}
		mem, err := events.ParseMemory(tc.q)
		if (err != nil) != tc.memErr || (err == nil && mem != tc.mem) {
			t.Errorf("ParseMemory(%q) = %d, %v", tc.q, mem, err)
		}
	}
}

// What a node writes is attributed to the node its subject names, the identity the servers let
// publish there, whatever the envelope claims; other events keep their envelope's actor.
func TestNodeEventsAreAttributedBySubject(t *testing.T) {
	for _, tc := range []struct {
		name string
		ref  events.ObjectRef
		node string
		p    events.Payload
		want string
	}{
		{"status", events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "a", UID: "u"}, "n1", &events.PodStatusReported{UID: "u"}, "node/n1"},
		{"terminated", events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "a", UID: "u"}, "n1", &events.PodTerminated{UID: "u"}, "node/n1"},
		{"registration", events.ObjectRef{Kind: events.KindNode, Name: "n2"}, "", &events.NodeRegistered{}, "node/n2"},
		{"cordon stays the user's", events.ObjectRef{Kind: events.KindNode, Name: "n2"}, "", &events.NodeCordoned{}, "user/alice"},
		{"binding stays the scheduler's", events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "a", UID: "u"}, "n1", &events.PodBound{}, "user/alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := events.New(time.Unix(1_800_000_000, 0), events.Meta{Actor: "user/alice"}, tc.ref, tc.node, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			data, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := events.Decode(ev.Subject, 7, data)
			if err != nil {
				t.Fatal(err)
			}
			if got.Actor != tc.want {
				t.Errorf("actor of %s on %s = %q, want %q", ev.Type, ev.Subject, got.Actor, tc.want)
			}
		})
	}
}
