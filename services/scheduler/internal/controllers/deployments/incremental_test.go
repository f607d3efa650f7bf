package deployments

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// Under Run a pass looks only at what changed: a pod's status change syncs its own Deployment
// and no other; a deleted Deployment's pods are collected without syncing any Deployment; after
// a pass whose writes did not land, the next one looks at everything again.
func TestPassTouchesOnlyWhatChanged(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	ctl := New(Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger})
	// What Run does, without its loop: the test takes the passes one at a time.
	t.Cleanup(ctl.Watch()) // as Run does; the test takes the passes itself

	names := []string{"web", "api", "db"}
	for _, n := range names {
		c.ApplyDeployment(ct.Deployment(n, 2, "demo:v1"))
	}
	quiet := func() { t.Helper(); settle(t, c, ctl) }
	quiet()
	// Every pod runs, ready.
	var refs []events.ObjectRef
	c.Projection.View(func(s *state.State) {
		for _, p := range s.Pods {
			refs = append(refs, ct.PodRef(p.Metadata.Namespace, p.Metadata.Name, p.Metadata.UID))
		}
	})
	if len(refs) != 6 {
		t.Fatalf("%d pods, want 6", len(refs))
	}
	slices.SortFunc(refs, func(a, b events.ObjectRef) int { return strings.Compare(a.Name, b.Name) })
	for i, ref := range refs {
		c.RunPod(ref, "n1", fmt.Sprintf("10.88.0.%d", i+2))
	}
	quiet()

	// One of api's pods stops being ready: api, and only api, is synced; it writes its status.
	var apiPod events.ObjectRef
	for _, ref := range refs {
		if strings.HasPrefix(ref.Name, "api-") {
			apiPod = ref
		}
	}
	c.Append(apiPod, "n1", &events.PodStatusReported{UID: apiPod.UID, Status: ct.RunningStatus("10.88.0.99", false)})
	before := ctl.synced
	_, wrote := c.Step(ctl.Sync)
	if got := ctl.synced - before; got != 1 {
		t.Errorf("one pod changed: %d Deployments synced, want 1", got)
	}
	if diff := cmp.Diff([]string{"DeploymentRolloutProgressed skiff.ev.deployment.default.api"}, ct.Describe(wrote)); diff != "" {
		t.Errorf("pass after one pod changed (-want +got):\n%s", diff)
	}

	quiet() // the next pass sees api's own status write; it writes nothing

	// db is deleted: its two pods are asked to go, no Deployment is synced.
	c.Append(events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "db", UID: "uid-db"}, "", &events.DeploymentDeleted{})
	before = ctl.synced
	_, wrote = c.Step(ctl.Sync)
	if got := ctl.synced - before; got != 0 {
		t.Errorf("a Deployment deleted: %d Deployments synced, want 0", got)
	}
	var want []string
	for _, ref := range refs {
		if strings.HasPrefix(ref.Name, "db-") {
			want = append(want, "PodDeletionRequested skiff.ev.pod.default."+ref.Name)
		}
	}
	got := ct.Describe(wrote)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pass after db was deleted (-want +got):\n%s", diff)
	}

	// Nothing changed: nothing synced. Redo: everything.
	quiet()
	before = ctl.synced
	c.Step(ctl.Sync)
	if got := ctl.synced - before; got != 0 {
		t.Errorf("nothing changed: %d Deployments synced, want 0", got)
	}
	ctl.changes.Done(reconcile.Result{}, errors.New("a write did not land"))
	before = ctl.synced
	c.Step(ctl.Sync)
	if got := ctl.synced - before; got != 2 {
		t.Errorf("after a pass whose writes did not land: %d Deployments synced, want 2 (web and api)", got)
	}
}

// A large Deployment gets its pods in passes of CreateBurst, each creating exactly that many
// (the last one the rest): random names that repeat (about 30 among 30,000) are drawn again
// instead of waiting for a later pass, which showed as a tail of about 30 pods created seconds
// after the rest.
func TestPassesCreateEveryPod(t *testing.T) {
	const replicas = 30000
	m := ct.NewMemLog()
	d := ct.Deployment("big", replicas, "demo:v1")
	m.Add(events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "big", UID: d.Metadata.UID}, "", &events.DeploymentApplied{Deployment: d})
	ctl := New(Config{Log: m, Projection: m.P, Clock: ct.NewClock(ct.T0).Now})
	for pass := 1; pass <= replicas/CreateBurst; pass++ {
		res, err := ctl.Sync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var pods int
		m.P.View(func(s *state.State) { pods = len(s.PodsOwnedBy(d.Metadata.UID)) })
		if pods != pass*CreateBurst || res.Conflicts != 0 {
			t.Fatalf("after pass %d: %d pods (%d conflicts), want %d", pass, pods, res.Conflicts, pass*CreateBurst)
		}
	}
}
