package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
	"skiff.dev/services/scheduler/internal/controllers/deployments"
)

// TestTogether runs every controller against fake nodes: a Deployment behind a Service, a
// rollout, and a node that is lost.
func TestTogether(t *testing.T) {
	c := ct.NewCluster(t)
	c.StartFakeNodes(&ct.FakeNodes{Nodes: []string{"n1", "n2"}})
	c.Go(func(ctx context.Context) error {
		return Run(ctx, Config{Log: c.Store, Projection: c.Projection, Clock: c.Clock.Now, Logger: c.Logger, Resync: 10 * time.Millisecond})
	})
	c.Eventually("pod CIDRs", func(s *state.State) bool {
		return s.Nodes["n1"].Spec.PodCIDR == "10.88.0.0/24" && s.Nodes["n2"].Spec.PodCIDR == "10.88.1.0/24"
	})
	c.Append(events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}, "",
		&events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.ServiceSpec{Selector: map[string]string{"app": "web"},
				Ports: []events.ServicePort{{Port: 80, TargetPort: events.FromString("http")}}}}})
	d := ct.Deployment("web", 4, "demo:v1")
	c.ApplyDeployment(d)
	c.Eventually("4 endpoints", endpointsFor(4, deployments.TemplateHash(d.Spec.Template)))

	d.Spec.Template.Spec.Containers[0].Image = "demo:v2"
	d.Metadata.Generation = 2
	c.ApplyDeployment(d)
	c.Eventually("4 endpoints of v2", endpointsFor(4, deployments.TemplateHash(d.Spec.Template)))
	c.Eventually("old pods deleted", func(s *state.State) bool { return len(s.PodsOwnedBy("uid-web")) == 4 })

	// n1 stops answering; after the eviction timeout its pods are replaced on n2.
	c.Append(ct.NodeRef("n1"), "", &events.NodeNotReady{Reason: "NodeStatusUnknown"})
	c.Clock.Advance(5 * time.Minute)
	c.Eventually("all 4 on n2, in the endpoints", func(s *state.State) bool {
		for _, p := range s.PodsOwnedBy("uid-web") {
			if p.Spec.NodeName != "n2" {
				return false
			}
		}
		return len(s.PodsOwnedBy("uid-web")) == 4 && endpointsFor(4, deployments.TemplateHash(d.Spec.Template))(s)
	})
}

func endpointsFor(n int, hash string) func(*state.State) bool {
	return func(s *state.State) bool {
		e := s.Endpoints[state.Key{Namespace: "default", Name: "web"}]
		if e == nil || len(e.Addresses) != n {
			return false
		}
		for _, a := range e.Addresses {
			p := s.Pods[state.Key{Namespace: "default", Name: a.PodName}]
			if p == nil || p.Metadata.Labels[deployments.TemplateHashLabel] != hash || a.Ports[0].Port != 8080 {
				return false
			}
		}
		return true
	}
}

func TestRunStopsOnBadConfig(t *testing.T) {
	c := ct.NewCluster(t)
	err := Run(c.Context(), Config{Log: c.Store, Projection: c.Projection, PodCIDRRange: "nonsense"})
	if !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("Run with a bad range = %v, want ErrInvalidArgument", err)
	}
}
