package main

import (
	"time"

	"skiff.dev/events"
)

const scheduler = "scheduler/s1"

func podRef(ns, name, uid string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: ns, Name: name, UID: uid}
}

func nodeRef(name string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindNode, Name: name}
}

var webRef = events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "web", UID: "d-web"}

func webDeployment(generation int64, replicas int32, image string) events.Deployment {
	return events.Deployment{
		TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: events.ObjectMeta{Namespace: "default", Name: "web", UID: "d-web", Generation: generation, Labels: map[string]string{"app": "web"}},
		Spec: events.DeploymentSpec{Replicas: ptr(replicas), Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: events.PodTemplateSpec{Metadata: events.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: events.PodSpec{Containers: []events.Container{{Name: "web", Image: image, Ports: []events.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}},
	}
}

func webPod(name, uid string) events.Pod {
	d := webDeployment(1, 2, "nginx:1.25")
	return events.Pod{
		TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: events.ObjectMeta{Namespace: "default", Name: name, UID: uid, Labels: map[string]string{"app": "web"},
			OwnerReferences: []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d-web", Controller: true}}},
		Spec: d.Spec.Template.Spec,
	}
}

func running(at time.Duration) events.ContainerStatus {
	return events.ContainerStatus{Name: "web", Ready: true, Image: "nginx:1.25", State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: ptr(t0.Add(at))}}}
}

// scenario writes a small cluster's history: two nodes (one cordoned), a Deployment with a
// running and a starting pod, a Service with endpoints, an unschedulable pod in another
// namespace, and a pod that came and went. It returns the last sequence.
func (c *cluster) scenario() uint64 {
	c.t.Helper()
	c.append(0, "user/alice", events.ObjectRef{Kind: events.KindNamespace, Name: "shop"}, "", &events.NamespaceApplied{
		Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop"}}}})
	c.append(time.Minute, "node/n1", nodeRef("n1"), "", &events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110,
		Labels: map[string]string{"kubernetes.io/hostname": "n1"}})
	c.append(time.Minute, scheduler, nodeRef("n1"), "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.1.0/24"})
	c.append(2*time.Minute, "node/n2", nodeRef("n2"), "", &events.NodeRegistered{Address: "10.0.0.2", MilliCPU: 2000, Memory: 4 << 30, MaxPods: 110})
	c.append(2*time.Minute, scheduler, nodeRef("n2"), "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.2.0/24"})
	c.append(3*time.Minute, "user/alice", nodeRef("n2"), "", &events.NodeCordoned{})

	c.append(10*time.Minute, "user/alice", webRef, "", &events.DeploymentApplied{Deployment: webDeployment(1, 2, "nginx:1.25")})
	for i, p := range []struct{ name, uid string }{{"web-a", "u-a"}, {"web-b", "u-b"}} {
		at := 10*time.Minute + time.Duration(i)*time.Second
		ref := podRef("default", p.name, p.uid)
		c.append(at, scheduler, ref, "", &events.PodCreated{Pod: webPod(p.name, p.uid)})
		c.append(at, scheduler, ref, "", &events.PodScheduled{UID: p.uid, Node: "n1", Score: 87, Feasible: 1, Nodes: 2})
		bound := webPod(p.name, p.uid)
		bound.Spec.NodeName = "n1"
		c.append(at, scheduler, ref, "n1", &events.PodBound{Pod: bound})
	}
	c.append(11*time.Minute, "node/n1", podRef("default", "web-a", "u-a"), "n1", &events.PodStatusReported{UID: "u-a", Status: events.PodStatus{
		Phase: events.PodRunning, PodIP: "10.88.1.5", StartTime: ptr(t0.Add(11 * time.Minute)), ContainerStatuses: []events.ContainerStatus{running(11 * time.Minute)}}})
	c.append(11*time.Minute, "node/n1", podRef("default", "web-b", "u-b"), "n1", &events.PodStatusReported{UID: "u-b", Status: events.PodStatus{
		Phase: events.PodPending, ContainerStatuses: []events.ContainerStatus{{Name: "web", State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}})
	c.append(11*time.Minute, scheduler, webRef, "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{
		ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1, UnavailableReplicas: 1}})

	svcRef := events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}
	c.append(12*time.Minute, "user/alice", svcRef, "", &events.ServiceApplied{Service: events.Service{
		TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Service"},
		Metadata: events.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: events.ServiceSpec{Type: "ClusterIP", ClusterIP: "10.96.0.10", Selector: map[string]string{"app": "web"},
			Ports: []events.ServicePort{{Name: "http", Port: 80, Protocol: "TCP", TargetPort: events.FromString("http")}}}}})
	c.append(12*time.Minute, scheduler, events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "web"}, "", &events.EndpointsUpdated{
		Addresses: []events.EndpointAddress{{IP: "10.88.1.5", NodeName: "n1", PodName: "web-a", Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}}})

	cart := podRef("shop", "cart", "u-cart")
	c.append(20*time.Minute, "user/alice", cart, "", &events.PodCreated{Pod: events.Pod{
		Metadata: events.ObjectMeta{Namespace: "shop", Name: "cart", UID: "u-cart"},
		Spec: events.PodSpec{Containers: []events.Container{{Name: "cart", Image: "cart:2",
			Resources: events.ResourceRequirements{Requests: events.ResourceList{"memory": "64Gi"}}}}}}})
	c.append(20*time.Minute, scheduler, cart, "", &events.PodUnschedulable{UID: "u-cart",
		Message: "0/2 nodes are available: 1 insufficient memory, 1 node(s) were unschedulable", Reasons: map[string]int{"insufficient memory": 1, "unschedulable": 1}})

	old := podRef("default", "old", "u-old")
	c.append(30*time.Minute, "user/alice", old, "", &events.PodCreated{Pod: events.Pod{
		Metadata: events.ObjectMeta{Namespace: "default", Name: "old", UID: "u-old"},
		Spec:     events.PodSpec{Containers: []events.Container{{Name: "c", Image: "busybox"}}}}})
	c.append(31*time.Minute, "user/alice", old, "", &events.PodDeletionRequested{UID: "u-old", GracePeriodSeconds: 30})
	return c.append(31*time.Minute, scheduler, old, "", &events.PodDeleted{UID: "u-old"})
}
