package deployments

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
)

// fieldsCluster is a controller whose passes the test takes itself, on the fake clock.
func fieldsCluster(t *testing.T) (*ct.Cluster, *Controller, func()) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := New(Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger})
	t.Cleanup(ctl.Watch())
	return c, ctl, func() { t.Helper(); settle(t, c, ctl) }
}

// settle takes the controller's passes one at a time until one writes nothing.
func settle(t *testing.T, c *ct.Cluster, ctl *Controller) {
	t.Helper()
	for range 10 {
		if res, _ := c.Step(ctl.Sync); res.Written == 0 {
			return
		}
	}
	t.Fatal("the controller did not settle in 10 passes")
}

// runAll runs every pod of the Deployment that has not run yet, its container started now.
func runAll(c *ct.Cluster, uid string) {
	var refs []events.ObjectRef
	c.Projection.View(func(s *state.State) {
		for _, p := range s.PodsOwnedBy(uid) {
			if p.Spec.NodeName == "" && !p.Deleting() {
				refs = append(refs, ct.PodRef(p.Metadata.Namespace, p.Metadata.Name, p.Metadata.UID))
			}
		}
	})
	for i, ref := range refs {
		c.RunPod(ref, "n1", fmt.Sprintf("10.88.0.%d", i+2))
		started := c.Clock.Now()
		st := ct.RunningStatus(fmt.Sprintf("10.88.0.%d", i+2), true)
		st.ContainerStatuses[0].State.Running.StartedAt = &started
		c.Append(ref, "n1", &events.PodStatusReported{UID: ref.UID, Status: st})
	}
}

func deploymentStatus(c *ct.Cluster, name string) events.DeploymentStatus {
	var st events.DeploymentStatus
	c.Projection.View(func(s *state.State) { st = s.Deployments[state.Key{Namespace: "default", Name: name}].Status })
	return st
}

func progressing(st events.DeploymentStatus) events.Condition {
	for _, c := range st.Conditions {
		if c.Type == ConditionProgressing {
			return c
		}
	}
	return events.Condition{}
}

// A pod counts as available once it has been ready for minReadySeconds: until then the
// Deployment has ready but no available replicas, and it asks for a pass at the time the pods
// become available, which then says so without any event in between. A rollout that then
// makes no progress for progressDeadlineSeconds turns Progressing False.
func TestMinReadySecondsAndProgressDeadline(t *testing.T) {
	c, ctl, quiet := fieldsCluster(t)
	d := ct.Deployment("web", 2, "demo:v1")
	d.Spec.MinReadySeconds = 30
	deadline := int32(120)
	d.Spec.ProgressDeadlineSeconds = &deadline
	c.ApplyDeployment(d)
	quiet()
	runAll(c, d.Metadata.UID)
	started := c.Clock.Now()
	quiet()
	st := deploymentStatus(c, "web")
	if st.ReadyReplicas != 2 || st.AvailableReplicas != 0 {
		t.Fatalf("just started: ready %d, available %d; want 2 ready, 0 available", st.ReadyReplicas, st.AvailableReplicas)
	}
	res, _ := c.Step(ctl.Sync)
	if want := started.Add(30 * time.Second); !res.RequeueAt.Equal(want) {
		t.Fatalf("RequeueAt %v, want %v (when the pods have been ready for minReadySeconds)", res.RequeueAt, want)
	}
	c.Clock.Advance(31 * time.Second)
	quiet()
	st = deploymentStatus(c, "web")
	if st.AvailableReplicas != 2 || progressing(st).Reason != ReasonNewReplicaSetAvailable {
		t.Fatalf("after minReadySeconds: available %d, progressing %+v; want 2 and NewReplicaSetAvailable", st.AvailableReplicas, progressing(st))
	}

	// A new template whose pods never run: the rollout stalls.
	v2 := ct.Deployment("web", 2, "demo:v2")
	v2.Spec.MinReadySeconds, v2.Spec.ProgressDeadlineSeconds, v2.Metadata.Generation = 30, &deadline, 2
	c.ApplyDeployment(v2)
	quiet()
	if p := progressing(deploymentStatus(c, "web")); p.Status != "True" || p.Reason != ReasonReplicaSetUpdated {
		t.Fatalf("rolling out: %+v", p)
	}
	c.Clock.Advance(119 * time.Second)
	quiet()
	if p := progressing(deploymentStatus(c, "web")); p.Status != "True" {
		t.Fatalf("119 s without progress, deadline 120 s: %+v, want still True", p)
	}
	c.Clock.Advance(2 * time.Second)
	quiet()
	p := progressing(deploymentStatus(c, "web"))
	if p.Status != "False" || p.Reason != ReasonProgressDeadlineExceeded {
		t.Fatalf("121 s without progress: %+v, want False ProgressDeadlineExceeded", p)
	}
}

// A paused Deployment does not roll out a changed template and still scales, with the template
// its pods have; resumed, it rolls out.
func TestPausedDeployment(t *testing.T) {
	c, _, quiet := fieldsCluster(t)
	d := ct.Deployment("web", 2, "demo:v1")
	c.ApplyDeployment(d)
	quiet()
	runAll(c, d.Metadata.UID)
	quiet()
	v1 := TemplateHash(d.Spec.Template)

	paused := ct.Deployment("web", 3, "demo:v2")
	paused.Spec.Paused, paused.Metadata.Generation = true, 2
	c.ApplyDeployment(paused)
	quiet()
	v2 := TemplateHash(paused.Spec.Template)
	var byHash map[string][]*state.Pod
	c.Projection.View(func(s *state.State) { byHash = active(s, d.Metadata.UID) })
	if len(byHash[v2]) != 0 || len(byHash[v1]) != 3 {
		t.Fatalf("paused with a new template and 3 replicas: %d pods of the new template, %d of the old; want 0 and 3 (scaled, not rolled)", len(byHash[v2]), len(byHash[v1]))
	}
	if p := progressing(deploymentStatus(c, "web")); p.Status != "Unknown" || p.Reason != ReasonDeploymentPaused {
		t.Errorf("paused: Progressing %+v, want Unknown DeploymentPaused", p)
	}

	resumed := paused
	resumed.Spec.Paused, resumed.Metadata.Generation = false, 3
	c.ApplyDeployment(resumed)
	quiet()
	c.Projection.View(func(s *state.State) { byHash = active(s, d.Metadata.UID) })
	if len(byHash[v2]) == 0 {
		t.Errorf("resumed: no pod of the new template")
	}
}
