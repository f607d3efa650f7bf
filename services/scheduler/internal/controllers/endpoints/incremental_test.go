package endpoints

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
)

// Under Run a pass computes only the endpoints of Services whose pods changed: one pod's
// readiness recomputes its own Service, a node's the Services of its pods, a deleted pod its
// Services'; a new Service makes the next pass look at every Service again.
func TestPassTouchesOnlyWhatChanged(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	c.RegisterNode("n2", "192.168.0.2")
	ctl := New(Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger})
	t.Cleanup(ctl.Watch()) // as Run does; the test takes the passes itself

	apply := func(i int, name string) {
		c.Append(events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: name, UID: "uid-" + name}, "",
			&events.ServiceApplied{Service: events.Service{
				Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name},
				Spec: events.ServiceSpec{Selector: map[string]string{"app": name}, ClusterIP: fmt.Sprintf("10.96.0.%d", 10+i),
					Ports: []events.ServicePort{{Name: "http", Port: 80}}},
			}})
	}
	pods := map[string][]events.ObjectRef{}
	for i, name := range []string{"web", "api", "db"} {
		apply(i, name)
		for j := range 2 {
			ref := c.CreatePod("default", fmt.Sprintf("%s-%d", name, j), map[string]string{"app": name})
			c.RunPod(ref, fmt.Sprintf("n%d", j+1), fmt.Sprintf("10.88.%d.%d", j, 10*i+j+2))
			pods[name] = append(pods[name], ref)
		}
	}
	step := func(what string, wantSynced int, want ...string) {
		t.Helper()
		before := ctl.synced
		_, wrote := c.Step(ctl.Sync)
		if got := ctl.synced - before; got != wantSynced {
			t.Errorf("%s: endpoints of %d Services computed, want %d", what, got, wantSynced)
		}
		if diff := cmp.Diff(want, ct.Describe(wrote)); diff != "" {
			t.Errorf("%s: pass wrote (-want +got):\n%s", what, diff)
		}
	}
	step("first pass", 3, "EndpointsUpdated skiff.ev.endpoints.default.api", "EndpointsUpdated skiff.ev.endpoints.default.db", "EndpointsUpdated skiff.ev.endpoints.default.web")
	step("its own writes", 3) // each Service's own Endpoints changed; nothing to write

	ref := pods["api"][0]
	c.Append(ref, "n1", &events.PodStatusReported{UID: ref.UID, Status: ct.RunningStatus("10.88.0.12", false)})
	step("one api pod not ready", 1, "EndpointsUpdated skiff.ev.endpoints.default.api")
	step("api's own write", 1)

	c.Append(ct.NodeRef("n2"), "", &events.NodeNotReady{Reason: "test"})
	step("node n2 not ready", 3, "EndpointsUpdated skiff.ev.endpoints.default.api", "EndpointsUpdated skiff.ev.endpoints.default.db", "EndpointsUpdated skiff.ev.endpoints.default.web")
	step("their own writes", 3)

	del := pods["web"][0]
	c.Append(del, "", &events.PodDeleted{UID: del.UID})
	step("a web pod deleted", 1, "EndpointsUpdated skiff.ev.endpoints.default.web")
	step("web's own write", 1)
	c.Projection.View(func(s *state.State) {
		if eps := s.Endpoints[state.Key{Namespace: "default", Name: "web"}]; eps == nil || len(eps.Addresses) != 0 {
			t.Errorf("web's endpoints after its pods went away: %+v, want none", eps)
		}
	})

	apply(3, "cache")
	step("a Service applied", 4, "EndpointsUpdated skiff.ev.endpoints.default.cache")
	step("nothing changed but cache's own write", 1)
	step("nothing changed", 0)
}
