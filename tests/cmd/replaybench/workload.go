package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// shape is the cluster the log ends with.
type shape struct {
	events, pods, nodes, deployments int
}

// batch is how many pods a controller pass creates, schedules or deletes at once, each behind
// one fence, as the leader's loops write them.
const batch = 100

// namespaces the Deployments are spread over.
const namespaces = 10

// Event counts of the workload's steps (see writer): creating n pods takes 5n+6 events (a fence
// and n PodCreated; a fence, n PodScheduled and n PodBound; n reports Pending, n Running; a
// fence, the Endpoints, a fence, the rollout's progress); replacing c pods 9c+11 (deletion
// requested behind a fence, the Endpoints without them behind a fence, stop requested behind a
// fence, terminated, deleted behind a fence, and c new pods).
func createCost(n int) int  { return 5*n + 6 }
func replaceCost(c int) int { return 4*c + 5 + createCost(c) }

// plan returns how many pods of each Deployment are replaced (churn) and how many node
// readiness events pad the log to exactly s.events.
func (s shape) plan() (churn, pad int, err error) {
	if s.deployments < 1 || s.pods < s.deployments || s.nodes < 1 {
		return 0, 0, errors.New("want at least one node and one Deployment, and a pod per Deployment")
	}
	perDep := s.pods / s.deployments
	base := 1 + namespaces + 2*s.nodes // a term, namespaces, nodes registered with their CIDRs
	for d := range s.deployments {
		n := perDep
		if d < s.pods%s.deployments {
			n++
		}
		base += 2 // Deployment and Service applied
		for done := 0; done < n; done += batch {
			base += createCost(min(batch, n-done))
		}
	}
	if base > s.events {
		return 0, 0, fmt.Errorf("%d events are too few for %d pods on %d nodes (they take %d)", s.events, s.pods, s.nodes, base)
	}
	left := s.events - base
	// Replace c pods of each Deployment, c as large as the events allow, in batches.
	for c := 1; c <= perDep; c++ {
		if cost := s.deployments * replaceCostBatched(c); cost > left {
			break
		} else {
			churn = c
		}
	}
	if churn > 0 {
		left -= s.deployments * replaceCostBatched(churn)
	}
	return churn, left, nil
}

func replaceCostBatched(c int) int {
	total := 0
	for done := 0; done < c; done += batch {
		total += replaceCost(min(batch, c-done))
	}
	return total
}

// writer appends the workload to the log, each write conditional on its subject's last
// sequence, as Skiff's writers do, through store.AppendAll (the real headers on disk).
type writer struct {
	ctx    context.Context
	st     *store.Store
	last   map[string]uint64
	n      int
	t0     time.Time
	term   uint64
	ws     []store.Write
	report func(n int)
}

func (w *writer) event(ref events.ObjectRef, node string, p events.Payload) {
	ev, err := events.New(w.t0.Add(time.Duration(w.n+len(w.ws))*10*time.Millisecond), events.Meta{Actor: "scheduler/replaybench"}, ref, node, p)
	if err != nil {
		panic(err) // only for unregistered payloads
	}
	w.ws = append(w.ws, store.Write{Event: ev, Expect: w.last[ev.Subject]})
}

// fence opens a batch of the leader's loop as its fenced writer does.
func (w *writer) fence(loop string, n int) {
	w.event(events.PassRef(loop), "", &events.LeaderWrote{Term: w.term, Events: n})
}

// flush appends what was queued: no subject twice in one call.
func (w *writer) flush() error {
	if len(w.ws) == 0 {
		return nil
	}
	if err := errors.Join(w.st.AppendAll(w.ctx, w.ws)...); err != nil {
		return fmt.Errorf("append the workload at event %d: %w", w.n, err)
	}
	for _, x := range w.ws {
		w.last[x.Event.Subject] = x.Event.Seq
	}
	w.n += len(w.ws)
	w.ws = w.ws[:0]
	if w.report != nil {
		w.report(w.n)
	}
	return nil
}

type pod struct {
	name, ns, uid, node, ip string
}

func (p pod) ref() events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: p.ns, Name: p.name, UID: p.uid}
}

// write appends the whole workload.
func (s shape) write(ctx context.Context, st *store.Store, report func(int)) (int, error) {
	churn, pad, err := s.plan()
	if err != nil {
		return 0, err
	}
	w := &writer{ctx: ctx, st: st, last: map[string]uint64{}, t0: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), term: 1, report: report}
	w.event(events.TermRef, "", &events.LeaderElected{Replica: "replaybench", Term: 1})
	for i := range namespaces {
		name := fmt.Sprintf("team-%d", i)
		w.event(events.ObjectRef{Kind: events.KindNamespace, Name: name}, "", &events.NamespaceApplied{Namespace: events.Namespace{
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, Metadata: events.ObjectMeta{Name: name, UID: "ns-" + name}}})
	}
	if err := w.flush(); err != nil {
		return w.n, err
	}
	nodeName := func(i int) string { return fmt.Sprintf("node-%04d", i) }
	for i := range s.nodes {
		ref := events.ObjectRef{Kind: events.KindNode, Name: nodeName(i)}
		w.event(ref, "", &events.NodeRegistered{Address: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), MilliCPU: 64000, Memory: 256 << 30, MaxPods: 110,
			Labels: map[string]string{"kubernetes.io/hostname": nodeName(i), "topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%3)}})
		if len(w.ws) >= 1000 {
			if err := w.flush(); err != nil {
				return w.n, err
			}
		}
	}
	if err := w.flush(); err != nil {
		return w.n, err
	}
	for i := range s.nodes {
		w.event(events.ObjectRef{Kind: events.KindNode, Name: nodeName(i)}, "", &events.NodePodCIDRAssigned{
			PodCIDR: fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256)})
		if len(w.ws) >= 1000 {
			if err := w.flush(); err != nil {
				return w.n, err
			}
		}
	}
	if err := w.flush(); err != nil {
		return w.n, err
	}

	nextPod := 0
	perDep := s.pods / s.deployments
	for d := range s.deployments {
		n := perDep
		if d < s.pods%s.deployments {
			n++
		}
		dep := deployment(d)
		w.event(dep.ref(), "", &events.DeploymentApplied{Deployment: dep.object(n)})
		w.event(events.ObjectRef{Kind: events.KindService, Namespace: dep.ns, Name: dep.name, UID: "svc-" + dep.uid}, "",
			&events.ServiceApplied{Service: dep.service(d)})
		if err := w.flush(); err != nil {
			return w.n, err
		}
		var live []pod
		newPods := func(k int) []pod {
			ps := make([]pod, k)
			for j := range ps {
				i := nextPod
				nextPod++
				node := i % s.nodes
				ps[j] = pod{name: fmt.Sprintf("%s-%s-%06d", dep.name, dep.hash, i), ns: dep.ns, uid: fmt.Sprintf("pod-%07d", i),
					node: nodeName(node), ip: fmt.Sprintf("10.%d.%d.%d", 100+node/256, node%256, (i/s.nodes)%250+2)}
			}
			return ps
		}
		for done := 0; done < n; done += batch {
			ps := newPods(min(batch, n-done))
			if err := w.create(dep, ps); err != nil {
				return w.n, err
			}
			live = append(live, ps...)
			if err := w.endpoints(dep, live); err != nil {
				return w.n, err
			}
		}
		for done := 0; done < churn; done += batch {
			k := min(batch, churn-done)
			gone := live[:k]
			live = live[k:]
			if err := w.remove(dep, gone, live); err != nil {
				return w.n, err
			}
			ps := newPods(k)
			if err := w.create(dep, ps); err != nil {
				return w.n, err
			}
			live = append(live, ps...)
			if err := w.endpoints(dep, live); err != nil {
				return w.n, err
			}
		}
	}
	// Node leases lapse and come back: pads the log to its size, NotReady for up to a group of
	// nodes at once, then Ready for them.
	group := 2 * min(500, s.nodes)
	for i := 0; i < pad; i += group {
		k := min(group, pad-i)
		for half := range 2 {
			for j := half; j < k; j += 2 {
				ref := events.ObjectRef{Kind: events.KindNode, Name: nodeName(((i + j) / 2) % s.nodes)}
				if half == 0 {
					w.event(ref, "", &events.NodeNotReady{Reason: "NodeLeaseExpired", Message: "no lease renewal for 40s"})
				} else {
					w.event(ref, "", &events.NodeReady{Reason: "NodeLeaseRenewed"})
				}
			}
			if err := w.flush(); err != nil {
				return w.n, err
			}
		}
	}
	return w.n, w.flush()
}

// create writes pods' lives up to Running and ready: created, scheduled and bound, reported.
func (w *writer) create(dep dep, ps []pod) error {
	w.fence("deployments", len(ps))
	for _, p := range ps {
		w.event(p.ref(), "", &events.PodCreated{Pod: dep.pod(p)})
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.fence("scheduling", 2*len(ps))
	for _, p := range ps {
		w.event(p.ref(), "", &events.PodScheduled{UID: p.uid, Node: p.node, Score: 87, Feasible: 5000, Nodes: 5000, StateSeq: uint64(w.n)})
		bound := dep.pod(p)
		bound.Spec.NodeName = p.node
		w.event(p.ref(), p.node, &events.PodBound{Pod: bound})
	}
	if err := w.flush(); err != nil {
		return err
	}
	started := w.t0.Add(time.Duration(w.n) * 10 * time.Millisecond)
	for _, p := range ps {
		w.event(p.ref(), p.node, &events.PodStatusReported{UID: p.uid, Status: events.PodStatus{Phase: events.PodPending, HostIP: "",
			ContainerStatuses: []events.ContainerStatus{{Name: "app", Image: dep.image,
				State: events.ContainerState{Waiting: &events.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}})
	}
	if err := w.flush(); err != nil {
		return err
	}
	for _, p := range ps {
		w.event(p.ref(), p.node, &events.PodStatusReported{UID: p.uid, Status: events.PodStatus{Phase: events.PodRunning, PodIP: p.ip,
			StartTime: &started,
			ContainerStatuses: []events.ContainerStatus{{Name: "app", Image: dep.image, Ready: true,
				ContainerID: "containerd://" + p.uid + "-0123456789abcdef0123456789abcdef",
				State:       events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: &started}}}}}})
	}
	return w.flush()
}

// endpoints writes the Service's ready addresses and the Deployment's progress.
func (w *writer) endpoints(dep dep, live []pod) error {
	addrs := make([]events.EndpointAddress, len(live))
	for i, p := range live {
		addrs[i] = events.EndpointAddress{IP: p.ip, NodeName: p.node, PodName: p.name,
			Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}
	}
	w.fence("endpoints", 1)
	w.event(events.ObjectRef{Kind: events.KindEndpoints, Namespace: dep.ns, Name: dep.name}, "", &events.EndpointsUpdated{Addresses: addrs})
	w.fence("deployments", 1)
	n := int32(len(live))
	w.event(dep.ref(), "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{ObservedGeneration: 1, Replicas: n,
		UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []events.Condition{{Type: "Available", Status: "True", Reason: "MinimumReplicasAvailable"}}}})
	return w.flush()
}

// remove deletes pods as the controllers do: deletion requested, the Endpoints without them,
// stop requested, the node's PodTerminated, PodDeleted.
func (w *writer) remove(dep dep, gone, live []pod) error {
	w.fence("deployments", len(gone))
	for _, p := range gone {
		w.event(p.ref(), "", &events.PodDeletionRequested{UID: p.uid, GracePeriodSeconds: 30})
	}
	if err := w.flush(); err != nil {
		return err
	}
	addrs := make([]events.EndpointAddress, len(live))
	for i, p := range live {
		addrs[i] = events.EndpointAddress{IP: p.ip, NodeName: p.node, PodName: p.name,
			Ports: []events.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}
	}
	w.fence("endpoints", 1)
	w.event(events.ObjectRef{Kind: events.KindEndpoints, Namespace: dep.ns, Name: dep.name}, "", &events.EndpointsUpdated{Addresses: addrs})
	if err := w.flush(); err != nil {
		return err
	}
	w.fence("podlifecycle", len(gone))
	for _, p := range gone {
		w.event(p.ref(), p.node, &events.PodStopRequested{UID: p.uid, GracePeriodSeconds: 30})
	}
	if err := w.flush(); err != nil {
		return err
	}
	for _, p := range gone {
		w.event(p.ref(), p.node, &events.PodTerminated{UID: p.uid})
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.fence("podlifecycle", len(gone))
	for _, p := range gone {
		w.event(p.ref(), "", &events.PodDeleted{UID: p.uid})
	}
	return w.flush()
}

// dep is one Deployment of the workload, with its Service of the same name.
type dep struct {
	name, ns, uid, hash, image string
}

func deployment(d int) dep {
	return dep{name: fmt.Sprintf("app-%03d", d), ns: fmt.Sprintf("team-%d", d%namespaces), uid: fmt.Sprintf("dep-%04d", d),
		hash: fmt.Sprintf("%010x", uint64(d)*0x9e3779b97f4a7c15%(1<<40)), image: fmt.Sprintf("registry.local/team/app-%03d:v1", d)}
}

func (d dep) ref() events.ObjectRef {
	return events.ObjectRef{Kind: events.KindDeployment, Namespace: d.ns, Name: d.name, UID: d.uid}
}

func (d dep) labels() map[string]string {
	return map[string]string{"app": d.name, "pod-template-hash": d.hash}
}

func (d dep) spec() events.PodSpec {
	grace := int64(30)
	return events.PodSpec{
		Containers: []events.Container{{Name: "app", Image: d.image, Args: []string{"--listen=:8080", "--log-format=json"},
			Env:   []events.EnvVar{{Name: "APP_NAME", Value: d.name}, {Name: "LOG_LEVEL", Value: "info"}},
			Ports: []events.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}},
			Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "100m", "memory": "128Mi"},
				Limits: events.ResourceList{"memory": "256Mi"}}}},
		RestartPolicy: events.RestartAlways, TerminationGracePeriodSeconds: &grace,
	}
}

func (d dep) object(replicas int) events.Deployment {
	r := int32(replicas)
	return events.Deployment{TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: events.ObjectMeta{Name: d.name, Namespace: d.ns, UID: d.uid, Generation: 1},
		Spec: events.DeploymentSpec{Replicas: &r, Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": d.name}},
			Template: events.PodTemplateSpec{Metadata: events.ObjectMeta{Labels: map[string]string{"app": d.name}}, Spec: d.spec()}}}
}

func (d dep) service(i int) events.Service {
	return events.Service{TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Service"},
		Metadata: events.ObjectMeta{Name: d.name, Namespace: d.ns, UID: "svc-" + d.uid},
		Spec: events.ServiceSpec{Type: "ClusterIP", Selector: map[string]string{"app": d.name},
			ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1),
			Ports:     []events.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: events.FromString("http")}}}}
}

func (d dep) pod(p pod) events.Pod {
	return events.Pod{Metadata: events.ObjectMeta{Name: p.name, Namespace: p.ns, UID: p.uid, Labels: d.labels(),
		OwnerReferences: []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.name, UID: d.uid, Controller: true}}},
		Spec: d.spec()}
}
