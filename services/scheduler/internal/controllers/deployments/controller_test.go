package deployments

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
)

// start runs a deployment controller on c writing through log (c.Store if nil).
func start(c *ct.Cluster, log interface {
	AppendAll(context.Context, []store.Write) []error
}) *Controller {
	if log == nil {
		log = c.Store
	}
	ctl := New(Config{Log: log, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger})
	c.Go(ctl.Run)
	return ctl
}

// active returns the deployment's pods that are not being deleted, by template hash.
func active(s *state.State, uid string) map[string][]*state.Pod {
	out := map[string][]*state.Pod{}
	for _, p := range s.PodsOwnedBy(uid) {
		if !p.Deleting() {
			h := p.Metadata.Labels[TemplateHashLabel]
			out[h] = append(out[h], p)
		}
	}
	return out
}

func countReady(ps []*state.Pod) int {
	n := 0
	for _, p := range ps {
		if p.Ready() {
			n++
		}
	}
	return n
}

// rolledOut holds when the deployment has exactly n pods, all of the current template and ready,
// and its status says so.
func rolledOut(name string, n int) func(*state.State) bool {
	return func(s *state.State) bool {
		d := s.Deployments[state.Key{Namespace: "default", Name: name}]
		if d == nil {
			return false
		}
		hash := TemplateHash(d.Spec.Template)
		a := active(s, d.Metadata.UID)
		if len(a) > 1 || len(a[hash]) != n || countReady(a[hash]) != n || len(s.PodsOwnedBy(d.Metadata.UID)) != n {
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == ConditionProgressing && c.Reason == ReasonNewReplicaSetAvailable {
				return d.Status.ObservedGeneration == d.Metadata.Generation && d.Status.AvailableReplicas == int32(n)
			}
		}
		return false
	}
}

var podNameRE = regexp.MustCompile(`^web-[bcdfghjklmnpqrstvwxz2456789]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`)

func TestDeploymentGetsItsPods(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1", "n2"}, FinishDeletions: true})
	start(c, nil)
	d := ct.Deployment("web", 3, "demo:v1")
	d.Spec.Template.Metadata.Annotations = map[string]string{"note": "kept"}
	c.ApplyDeployment(d)
	c.Eventually("3 ready pods", rolledOut("web", 3))

	hash := TemplateHash(d.Spec.Template)
	c.Projection.View(func(s *state.State) {
		for _, p := range s.PodsOwnedBy(d.Metadata.UID) {
			if !podNameRE.MatchString(p.Metadata.Name) {
				t.Errorf("pod name %q does not look like web-<hash>-<random>", p.Metadata.Name)
			}
			if got := p.Metadata.Name[4:14]; got != hash {
				t.Errorf("pod %s: hash in name %q, want %q", p.Metadata.Name, got, hash)
			}
			want := events.ObjectMeta{
				Name: p.Metadata.Name, Namespace: "default", UID: p.Metadata.UID,
				Labels:            map[string]string{"app": "web", TemplateHashLabel: hash},
				Annotations:       map[string]string{"note": "kept"},
				CreationTimestamp: p.Metadata.CreationTimestamp,
				OwnerReferences:   []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-web", Controller: true}},
			}
			if diff := cmp.Diff(want, p.Metadata); diff != "" {
				t.Errorf("pod metadata (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(d.Spec.Template.Spec.Containers, p.Spec.Containers); diff != "" {
				t.Errorf("pod containers (-want +got):\n%s", diff)
			}
		}
		st := s.Deployments[state.Key{Namespace: "default", Name: "web"}].Status
		st.Conditions = slices.Clone(st.Conditions) // the state is shared: change only a copy
		for i := range st.Conditions {
			st.Conditions[i].LastTransitionTime, st.Conditions[i].LastUpdateTime = nil, nil
		}
		want := events.DeploymentStatus{
			ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3,
			Conditions: []events.Condition{
				{Type: "Available", Status: "True", Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."},
				{Type: "Progressing", Status: "True", Reason: "NewReplicaSetAvailable",
					Message: fmt.Sprintf("ReplicaSet \"web-%s\" has successfully progressed.", hash)},
			},
		}
		if diff := cmp.Diff(want, st); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	})
}

func TestDeletedAndFailedPodsAreReplaced(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1"}, FinishDeletions: true})
	start(c, nil)
	d := ct.Deployment("web", 3, "demo:v1")
	c.ApplyDeployment(d)
	c.Eventually("3 ready pods", rolledOut("web", 3))

	var victims []*state.Pod
	c.Projection.View(func(s *state.State) {
		for _, p := range s.PodsOwnedBy(d.Metadata.UID) {
			cp := *p
			victims = append(victims, &cp)
		}
	})
	// A user deletes one pod; the node reports another one failed.
	deleted, failed := victims[0], victims[1]
	c.Append(ct.PodRef("default", deleted.Metadata.Name, deleted.Metadata.UID), "",
		&events.PodDeletionRequested{UID: deleted.Metadata.UID, GracePeriodSeconds: 30})
	c.Append(ct.PodRef("default", failed.Metadata.Name, failed.Metadata.UID), failed.Spec.NodeName,
		&events.PodStatusReported{UID: failed.Metadata.UID, Status: events.PodStatus{Phase: events.PodFailed, PodIP: failed.Status.PodIP}})

	c.Eventually("both replaced", func(s *state.State) bool {
		_, a := s.Pods[deleted.Key()]
		_, b := s.Pods[failed.Key()]
		return !a && !b && rolledOut("web", 3)(s)
	})
}

func TestScale(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1", "n2"}, FinishDeletions: true})
	start(c, nil)
	c.ApplyDeployment(ct.Deployment("web", 3, "demo:v1"))
	c.Eventually("3 pods", rolledOut("web", 3))
	c.ScaleDeployment("default", "web", 5)
	c.Eventually("5 pods", rolledOut("web", 5))

	// Scaling down deletes the newest pods first (all are ready and running).
	var newest []string
	c.Projection.View(func(s *state.State) {
		ps := classify(s.PodsOwnedBy("uid-web"), "", time.Time{}, 0)
		for _, p := range firstToDelete(ps.oldReady, 4) {
			newest = append(newest, p.Metadata.Name)
		}
	})
	c.ScaleDeployment("default", "web", 1)
	c.Eventually("1 pod", rolledOut("web", 1))
	for _, name := range newest {
		if c.Pod(state.Key{Namespace: "default", Name: name}) != nil {
			t.Errorf("pod %s survived the scale-down; the newest pods should go first", name)
		}
	}
}

// TestRollingUpdateBounds changes the template of a running Deployment and checks, after every
// event of the log, that the rollout never had more than replicas+maxSurge pods nor fewer than
// replicas−maxUnavailable ready ones.
func TestRollingUpdateBounds(t *testing.T) {
	tests := []struct {
		name                   string
		replicas               int32
		surge, unavailable     *events.IntOrString
		wantSurge, wantUnavail int
	}{
		{"defaults", 4, nil, nil, 1, 1},
		{"surge only", 3, events.FromInt(1), events.FromInt(0), 1, 0},
		{"unavailable only", 3, events.FromInt(0), events.FromInt(1), 0, 1},
		{"wide", 5, events.FromString("40%"), events.FromString("40%"), 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ct.NewCluster(t)
			c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1", "n2"}, FinishDeletions: true})
			start(c, nil)
			d := ct.Deployment("web", tt.replicas, "demo:v1")
			d.Spec.Strategy.RollingUpdate = &events.RollingUpdateDeployment{MaxSurge: tt.surge, MaxUnavailable: tt.unavailable}
			c.ApplyDeployment(d)
			c.Eventually("first rollout", rolledOut("web", int(tt.replicas)))

			d.Spec.Template.Spec.Containers[0].Image = "demo:v2"
			d.Metadata.Generation = 2
			changed := c.ApplyDeployment(d)
			c.Eventually("second rollout", rolledOut("web", int(tt.replicas)))

			r := int(tt.replicas)
			s := state.New()
			maxPods, minReady := 0, r
			for _, ev := range c.History() {
				s.Apply(ev)
				if ev.Seq < changed {
					continue
				}
				a := active(s, "uid-web")
				total, ready := 0, 0
				for _, ps := range a {
					total += len(ps)
					ready += countReady(ps)
				}
				maxPods, minReady = max(maxPods, total), min(minReady, ready)
				if total > r+tt.wantSurge {
					t.Errorf("after seq %d (%s): %d pods, more than %d+%d", ev.Seq, ev.Type, total, r, tt.wantSurge)
				}
				if ready < r-tt.wantUnavail {
					t.Errorf("after seq %d (%s): %d ready, fewer than %d-%d", ev.Seq, ev.Type, ready, r, tt.wantUnavail)
				}
			}
			t.Logf("rollout of %d: at most %d pods, at least %d ready", r, maxPods, minReady)
		})
	}
}

func TestRecreateDeletesOldPodsFirst(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1"}, FinishDeletions: true})
	start(c, nil)
	d := ct.Deployment("web", 3, "demo:v1")
	d.Spec.Strategy.Type = "Recreate"
	c.ApplyDeployment(d)
	c.Eventually("first rollout", rolledOut("web", 3))
	oldHash := TemplateHash(d.Spec.Template)
	d.Spec.Template.Spec.Containers[0].Image = "demo:v2"
	d.Metadata.Generation = 2
	changed := c.ApplyDeployment(d)
	c.Eventually("second rollout", rolledOut("web", 3))

	s := state.New()
	oldPods := 0
	for _, ev := range c.History() {
		s.Apply(ev)
		if ev.Seq < changed {
			continue
		}
		if pc, ok := ev.Data.(*events.PodCreated); ok {
			for _, p := range s.PodsOwnedBy("uid-web") {
				if p.Metadata.Labels[TemplateHashLabel] == oldHash {
					oldPods++
				}
			}
			if oldPods > 0 {
				t.Fatalf("seq %d created %s while %d old pods were still there", ev.Seq, pc.Pod.Metadata.Name, oldPods)
			}
		}
	}
}

func TestDeletedDeploymentLosesItsPods(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1"}, FinishDeletions: true})
	start(c, nil)
	c.ApplyDeployment(ct.Deployment("web", 2, "demo:v1"))
	c.ApplyDeployment(ct.Deployment("api", 1, "demo:v1"))
	c.Eventually("pods", func(s *state.State) bool { return rolledOut("web", 2)(s) && rolledOut("api", 1)(s) })
	// A bare pod (no owner) must survive.
	c.CreatePod("default", "bare", nil)
	c.Append(events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "web", UID: "uid-web"}, "", &events.DeploymentDeleted{})
	c.Eventually("web's pods gone", func(s *state.State) bool { return len(s.PodsOwnedBy("uid-web")) == 0 })
	c.Projection.View(func(s *state.State) {
		if len(s.PodsOwnedBy("uid-api")) != 1 || s.Pods[state.Key{Namespace: "default", Name: "bare"}] == nil {
			t.Errorf("pods of others were touched: api has %d, bare exists: %v", len(s.PodsOwnedBy("uid-api")),
				s.Pods[state.Key{Namespace: "default", Name: "bare"}] != nil)
		}
	})
}

// TestSyncStepByStep runs single passes, with the test playing the nodes, and checks exactly what
// each pass writes.
func TestSyncStepByStep(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := New(Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger})
	ctx := c.Context()
	sync := func() []string {
		t.Helper()
		head := c.Head()
		res, err := ctl.Sync(ctx)
		if err != nil || res.Conflicts > 0 {
			t.Fatalf("Sync = %+v, %v", res, err)
		}
		if res.Seq > 0 {
			if err := c.Projection.WaitSeq(ctx, res.Seq); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for _, ev := range c.History() {
			if ev.Seq > head {
				got = append(got, ev.Type)
			}
		}
		return got
	}
	runAll := func() {
		var pending []events.ObjectRef
		c.Projection.View(func(s *state.State) {
			for _, p := range s.PodsOwnedBy("uid-web") {
				if p.Spec.NodeName == "" {
					pending = append(pending, ct.PodRef("default", p.Metadata.Name, p.Metadata.UID))
				}
			}
		})
		for i, ref := range pending {
			c.RunPod(ref, "n1", fmt.Sprintf("10.88.0.%d", 10+i))
		}
	}
	d := ct.Deployment("web", 2, "demo:v1")
	d.Spec.Strategy.RollingUpdate = &events.RollingUpdateDeployment{MaxSurge: events.FromInt(1), MaxUnavailable: events.FromInt(0)}
	c.ApplyDeployment(d)

	steps := []struct {
		name   string
		before func()
		want   []string
	}{
		{"create two pods", nil, []string{"DeploymentRolloutProgressed", "PodCreated", "PodCreated"}},
		{"count them", nil, []string{"DeploymentRolloutProgressed"}},
		{"quiet", nil, nil},
		{"they run", runAll, []string{"DeploymentRolloutProgressed"}},
		{"quiet again", nil, nil},
		{"new template: one surge pod", func() {
			d.Spec.Template.Spec.Containers[0].Image = "demo:v2"
			d.Metadata.Generation = 2
			c.ApplyDeployment(d)
		}, []string{"DeploymentRolloutProgressed", "PodCreated"}},
		{"status counts it", nil, []string{"DeploymentRolloutProgressed"}},
		{"wait for it to be ready", nil, nil},
		{"ready: one old pod goes", runAll, []string{"DeploymentRolloutProgressed", "PodDeletionRequested"}},
		{"next surge pod", nil, []string{"DeploymentRolloutProgressed", "PodCreated"}},
		{"status counts it too", nil, []string{"DeploymentRolloutProgressed"}},
		{"wait again", nil, nil},
		{"ready: the last old pod goes", runAll, []string{"DeploymentRolloutProgressed", "PodDeletionRequested"}},
		{"status: complete", nil, []string{"DeploymentRolloutProgressed"}},
		{"done", nil, nil},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		if diff := cmp.Diff(st.want, sync()); diff != "" {
			t.Fatalf("step %q wrote (-want +got):\n%s", st.name, diff)
		}
	}
	c.Projection.View(func(s *state.State) {
		st := s.Deployments[state.Key{Namespace: "default", Name: "web"}].Status
		if st.UpdatedReplicas != 2 || st.Replicas != 2 || st.AvailableReplicas != 2 || st.Conditions[1].Reason != ReasonNewReplicaSetAvailable {
			t.Errorf("final status %+v, want a finished rollout of 2", st)
		}
	})
}

// conflictingLog lets a user scale the Deployment right before the controller's first status
// write lands, so that write is rejected and the controller has to decide again (as Nomad's test
// harness rejects plans).
type conflictingLog struct {
	c     *ct.Cluster
	fired atomic.Bool
	hits  atomic.Int32
}

func (l *conflictingLog) AppendAll(ctx context.Context, ws []store.Write) []error {
	for _, w := range ws {
		if w.Event.Type == "DeploymentRolloutProgressed" && l.fired.CompareAndSwap(false, true) {
			l.c.ScaleDeployment("default", "web", 2)
		}
	}
	errs := l.c.Store.AppendAll(ctx, ws)
	for _, err := range errs {
		if err != nil {
			l.hits.Add(1)
		}
	}
	return errs
}

func TestStatusConflictIsDecidedAgain(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1"}, FinishDeletions: true})
	log := &conflictingLog{c: c}
	start(c, log)
	c.ApplyDeployment(ct.Deployment("web", 4, "demo:v1"))
	c.Eventually("scaled to 2, status of generation 2", rolledOut("web", 2))
	if log.hits.Load() == 0 {
		t.Fatal("no write was rejected; the test did not exercise the conflict")
	}
}

// TestStatusOnlyWhenChanged checks that no two consecutive status events say the same.
func TestStatusOnlyWhenChanged(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1"}, FinishDeletions: true})
	ctl := start(c, nil)
	c.ApplyDeployment(ct.Deployment("web", 3, "demo:v1"))
	c.Eventually("rolled out", rolledOut("web", 3))
	res, err := ctl.Sync(c.Context())
	if err != nil || res.Written != 0 {
		t.Errorf("a pass after the rollout wrote %d events (err %v), want none", res.Written, err)
	}
	var last *events.DeploymentStatus
	for _, ev := range c.History() {
		if p, ok := ev.Data.(*events.DeploymentRolloutProgressed); ok {
			if last != nil && statusEqual(*last, p.Status) {
				t.Errorf("seq %d repeats the previous status %+v", ev.Seq, p.Status)
			}
			last = &p.Status
		}
	}
}
