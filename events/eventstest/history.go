package eventstest

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
)

// HistoryStart is the time of History's first event; each next one is a second later.
var HistoryStart = time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)

// History returns a small cluster's history in which every event type occurs, in log order,
// as its writers would have appended it (Seq 0; number them with Number, or append them):
// leader terms and fences; a namespace made, changed and removed; nodes registering, getting
// pod CIDRs, going NotReady and Ready again, cordoned and uncordoned, one deleted; a Deployment
// applied, scaled, rolled out to a new template and deleted, its pods created, scheduled or
// unschedulable, bound, reporting status (one report from the wrong node, which the fold
// refuses), stopped, terminated and deleted; a pod without an owner; a Service applied,
// changed and deleted, its Endpoints updated before and after.
func History(t testing.TB) []*events.Event {
	t.Helper()
	h := &history{t: t}
	h.add(events.TermRef, "", &events.LeaderElected{Replica: "s1", Term: 1})
	h.add(events.PassRef("scheduling"), "", &events.LeaderWrote{Term: 1, Events: 2})

	team := events.ObjectRef{Kind: events.KindNamespace, Name: "team"}
	h.add(team, "", &events.NamespaceApplied{Namespace: events.Namespace{TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		Metadata: events.ObjectMeta{Name: "team", UID: "ns-team", Labels: map[string]string{"tier": "a"}}}})
	h.add(team, "", &events.NamespaceApplied{Namespace: events.Namespace{TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		Metadata: events.ObjectMeta{Name: "team", UID: "ns-team", Labels: map[string]string{"tier": "b"}}}})
	other := events.ObjectRef{Kind: events.KindNamespace, Name: "gone"}
	h.add(other, "", &events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "gone"}}})
	h.add(other, "", &events.NamespaceDeleted{})

	nodes := []string{"n1", "n2", "n3"}
	for i, n := range nodes {
		ref := events.ObjectRef{Kind: events.KindNode, Name: n}
		h.add(ref, "", &events.NodeRegistered{Address: fmt.Sprintf("10.0.0.%d", i+1), MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110,
			EphemeralStorage: 100 << 30, Extended: map[string]int64{"example.com/fpga": int64(i + 1)},
			Labels: map[string]string{"kubernetes.io/hostname": n, "zone": fmt.Sprint("z", i%2)},
			Taints: map[bool][]events.Taint{true: {{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}}[n == "n3"]})
		h.add(ref, "", &events.NodePodCIDRAssigned{PodCIDR: fmt.Sprintf("10.88.%d.0/24", i)})
	}
	n2 := events.ObjectRef{Kind: events.KindNode, Name: "n2"}
	h.add(n2, "", &events.NodeNotReady{Reason: "NodeLeaseExpired", Message: "no renewal for 40s"})
	h.add(n2, "", &events.NodeReady{Reason: "NodeLeaseRenewed"})
	h.add(n2, "", &events.NodeCordoned{})
	h.add(n2, "", &events.NodeUncordoned{})

	web := events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "web", UID: "d-web"}
	replicas := int32(3)
	grace := int64(10)
	deadline := int32(120)
	dep := events.Deployment{TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: events.ObjectMeta{Name: "web", Namespace: "default", UID: "d-web", Generation: 1},
		Spec: events.DeploymentSpec{Replicas: &replicas, Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: events.PodTemplateSpec{Metadata: events.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: podSpec("skiff.dev/echo:v1", &grace)},
			Strategy: events.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &events.RollingUpdateDeployment{
				MaxUnavailable: events.FromString("25%"), MaxSurge: events.FromInt(1)}},
			MinReadySeconds: 5, RevisionHistoryLimit: &replicas, ProgressDeadlineSeconds: &deadline}}
	h.add(web, "", &events.DeploymentApplied{Deployment: dep})

	svc := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web", UID: "s-web"}
	service := events.Service{TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Service"},
		Metadata: events.ObjectMeta{Name: "web", Namespace: "default", UID: "s-web"},
		Spec: events.ServiceSpec{Type: "ClusterIP", Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10",
			Ports: []events.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: events.FromString("http")}}}}
	h.add(svc, "", &events.ServiceApplied{Service: service})

	// Three pods of the first template, one of the second.
	pods := []string{"web-a", "web-b", "web-c"}
	for i, p := range pods {
		h.pod(p, "d-web", "v1", nodes[i%2])
	}
	unsched := h.create("web-d", "d-web", "v1")
	h.add(unsched, "", &events.PodUnschedulable{UID: unsched.UID, Message: "0/3 nodes are available: 3 insufficient cpu",
		Reasons: map[string]int{"insufficient cpu": 3}, NodeReasons: map[string]string{"insufficient cpu": "0-2"}, StateSeq: h.seq})
	// A status from a node the pod is not bound to: refused by the fold, its subject moves on.
	h.add(podRef("web-a"), "n2", &events.PodStatusReported{UID: "uid-web-a", Status: events.PodStatus{Phase: events.PodFailed}})

	h.add(events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}, "", &events.EndpointsUpdated{
		Addresses: []events.EndpointAddress{
			{IP: "10.88.0.2", NodeName: "n1", PodName: "web-a", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}},
			{IP: "10.88.1.2", NodeName: "n2", PodName: "web-b", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}}})

	h.add(web, "", &events.DeploymentScaled{Replicas: 4, Generation: 2})
	dep.Metadata.Generation = 3
	dep.Spec.Template.Spec = podSpec("skiff.dev/echo:v2", &grace)
	h.add(web, "", &events.DeploymentApplied{Deployment: dep})
	h.pod("web-e", "d-web", "v2", "n1")
	h.add(web, "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{ObservedGeneration: 3, Replicas: 5,
		UpdatedReplicas: 1, ReadyReplicas: 4, AvailableReplicas: 4, UnavailableReplicas: 1,
		Conditions: []events.Condition{{Type: "Progressing", Status: "True", Reason: "NewReplicaSetAvailable", LastTransitionTime: &HistoryStart, LastUpdateTime: &HistoryStart}}}})
	h.add(events.PassRef("controllers"), "", &events.LeaderWrote{Term: 1, Events: 4})

	// web-a goes: deletion, stop, terminated, deleted.
	a := podRef("web-a")
	h.add(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 30})
	h.add(a, "", &events.PodDeletionRequested{UID: a.UID, GracePeriodSeconds: 5})
	h.add(a, "n1", &events.PodStopRequested{UID: a.UID, GracePeriodSeconds: 5})
	h.add(a, "n1", &events.PodTerminated{UID: a.UID})
	h.add(a, "", &events.PodDeleted{UID: a.UID})

	// A pod of its own, in the other namespace.
	h.pod("lone", "", "v1", "n2")

	h.add(events.TermRef, "", &events.LeaderElected{Replica: "s2", Term: 2})
	h.add(svc, "", &events.ServiceApplied{Service: func() events.Service {
		s := service
		s.Spec.ClusterIP = "10.96.0.11"
		return s
	}()})
	h.add(svc, "", &events.ServiceDeleted{})
	// Endpoints written before the deletion but folded after it stay deleted; these come after.
	h.add(events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}, "", &events.EndpointsUpdated{})
	h.add(events.ObjectRef{Kind: events.KindNode, Name: "n3"}, "", &events.NodeDeleted{})
	h.add(web, "", &events.DeploymentDeleted{})
	return h.evs
}

// Number gives evs the sequences 1, 2, ... as a log holding only them would.
func Number(evs []*events.Event) []*events.Event {
	for i, ev := range evs {
		ev.Seq = uint64(i + 1)
	}
	return evs
}

type history struct {
	t   testing.TB
	seq uint64
	evs []*events.Event
}

func (h *history) add(ref events.ObjectRef, node string, p events.Payload) {
	h.t.Helper()
	ev, err := events.New(HistoryStart.Add(time.Duration(len(h.evs))*time.Second), events.Meta{Actor: "test"}, ref, node, p)
	if err != nil {
		h.t.Fatal(err)
	}
	h.seq++
	h.evs = append(h.evs, ev)
}

func podRef(name string) events.ObjectRef {
	ns := "default"
	if name == "lone" {
		ns = "team"
	}
	return events.ObjectRef{Kind: events.KindPod, Namespace: ns, Name: name, UID: "uid-" + name}
}

func podSpec(image string, grace *int64) events.PodSpec {
	return events.PodSpec{
		InitContainers: []events.Container{{Name: "setup", Image: image, Args: []string{"exit", "0"}, ImagePullPolicy: events.PullIfNotPresent}},
		Containers: []events.Container{{Name: "echo", Image: image, Args: []string{"-listen", ":8080"},
			Env: []events.EnvVar{{Name: "MODE", Value: "demo"},
				{Name: "POD", ValueFrom: &events.EnvVarSource{FieldRef: &events.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "MEM", ValueFrom: &events.EnvVarSource{ResourceFieldRef: &events.ResourceFieldSelector{Resource: "limits.memory", Divisor: "1Mi"}}}},
			Ports: []events.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}},
			Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "1Gi"},
				Limits: events.ResourceList{"memory": "128Mi", "example.com/fpga": "1"}}}},
		RestartPolicy: events.RestartAlways, TerminationGracePeriodSeconds: grace, Hostname: "echo", Subdomain: "web",
		NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:  []events.Toleration{{Key: "dedicated", Operator: "Equal", Value: "web", Effect: "NoSchedule"}},
	}
}

// create appends a PodCreated of a pod of owner (none: "") with the template version.
func (h *history) create(name, owner, version string) events.ObjectRef {
	ref := podRef(name)
	pod := events.Pod{Metadata: events.ObjectMeta{Name: name, Namespace: ref.Namespace, UID: ref.UID,
		Labels:      map[string]string{"app": "web", "version": version},
		Annotations: map[string]string{"skiff.dev/template": version}},
		Spec: podSpec("skiff.dev/echo:"+version, nil)}
	if owner != "" {
		pod.Metadata.OwnerReferences = []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: owner, Controller: true}}
	}
	h.add(ref, "", &events.PodCreated{Pod: pod})
	return ref
}

// pod creates a pod and takes it to Running and ready on node.
func (h *history) pod(name, owner, version, node string) {
	ref := h.create(name, owner, version)
	h.add(ref, "", &events.PodScheduled{UID: ref.UID, Node: node, Score: 80, Feasible: 2, Nodes: 3, StateSeq: h.seq})
	h.add(ref, node, &events.PodBound{Pod: events.Pod{Metadata: events.ObjectMeta{Name: name, Namespace: ref.Namespace, UID: ref.UID},
		Spec: func() events.PodSpec { s := podSpec("skiff.dev/echo:"+version, nil); s.NodeName = node; return s }()}})
	started := HistoryStart.Add(time.Duration(len(h.evs)) * time.Second)
	h.add(ref, node, &events.PodStatusReported{UID: ref.UID, Status: events.PodStatus{Phase: events.PodPending,
		ContainerStatuses: []events.ContainerStatus{{Name: "echo", Image: "skiff.dev/echo:" + version,
			State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}})
	h.add(ref, node, &events.PodStatusReported{UID: ref.UID, Status: events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.0." + fmt.Sprint(len(h.evs)),
		StartTime: &started,
		InitContainerStatuses: []events.ContainerStatus{{Name: "setup", Image: "skiff.dev/echo:" + version, Ready: true,
			State: events.ContainerState{Terminated: &events.ContainerStateTerminated{Reason: "Completed", StartedAt: &started, FinishedAt: &started}}}},
		ContainerStatuses: []events.ContainerStatus{{Name: "echo", Image: "skiff.dev/echo:" + version, Ready: true, RestartCount: 1,
			ContainerID: "containerd://" + name,
			State:       events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: &started}},
			LastTerminationState: events.ContainerState{Terminated: &events.ContainerStateTerminated{ExitCode: 137, Signal: 9,
				Reason: "OOMKilled", StartedAt: &started, FinishedAt: &started}}}}}})
}
