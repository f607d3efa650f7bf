package deployments

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

func TestRollingPlan(t *testing.T) {
	tests := []struct {
		name string
		c    Counts
		want Plan
	}{
		{"new deployment", Counts{Replicas: 3, MaxSurge: 1}, Plan{Create: 3}},
		{"scale up", Counts{Replicas: 5, MaxSurge: 1, New: 3, NewReady: 3}, Plan{Create: 2}},
		{"scale down", Counts{Replicas: 1, MaxSurge: 1, New: 5, NewReady: 5}, Plan{DeleteNew: 4}},
		{"steady", Counts{Replicas: 3, MaxSurge: 1, New: 3, NewReady: 2}, Plan{}},
		{"rollout starts, surge only", Counts{Replicas: 4, MaxSurge: 1, Old: 4, OldReady: 4}, Plan{Create: 1}},
		{"rollout starts, surge and unavailable", Counts{Replicas: 4, MaxSurge: 1, MaxUnavailable: 1, Old: 4, OldReady: 4},
			Plan{Create: 1, DeleteOldReady: 1}},
		{"unready new pod holds old ones", Counts{Replicas: 4, MaxSurge: 1, New: 1, Old: 4, OldReady: 4}, Plan{}},
		{"ready new pod lets one old go", Counts{Replicas: 4, MaxSurge: 1, New: 1, NewReady: 1, Old: 4, OldReady: 4},
			Plan{DeleteOldReady: 1}},
		{"after an old one went, surge again", Counts{Replicas: 4, MaxSurge: 1, New: 1, NewReady: 1, Old: 3, OldReady: 3},
			Plan{Create: 1}},
		{"surge 0 unavailable 1", Counts{Replicas: 3, MaxUnavailable: 1, Old: 3, OldReady: 3}, Plan{DeleteOldReady: 1}},
		{"surge 0 waits for the new pod", Counts{Replicas: 3, MaxUnavailable: 1, New: 1, Old: 2, OldReady: 2}, Plan{}},
		{"defaults of 10: 3 surge, 2 unavailable", Counts{Replicas: 10, MaxSurge: 3, MaxUnavailable: 2, Old: 10, OldReady: 10},
			Plan{Create: 3, DeleteOldReady: 2}},
		{"unready old pods go first, within what new pods owe", Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 1, Old: 3, OldReady: 1},
			Plan{Create: 1, DeleteOldUnready: 1}},
		{"unready old pods wait while new ones are unready", Counts{Replicas: 3, MaxSurge: 1, New: 1, Old: 3, OldReady: 0}, Plan{}},
		{"broken old pods leave as new ones get ready", Counts{Replicas: 3, MaxSurge: 1, New: 1, NewReady: 1, Old: 3, OldReady: 0},
			Plan{DeleteOldUnready: 1}},
		{"scaled down mid-rollout", Counts{Replicas: 2, MaxSurge: 1, New: 2, NewReady: 2, Old: 4, OldReady: 4},
			Plan{DeleteOldReady: 4}},
		{"new above replicas mid-rollout: unready new go first", Counts{Replicas: 2, MaxSurge: 1, New: 3, NewReady: 1, Old: 1, OldReady: 1},
			Plan{DeleteNew: 1}},
		{"new above replicas, deleting ready new costs availability", Counts{Replicas: 2, MaxSurge: 1, New: 3, NewReady: 3, Old: 1, OldReady: 1},
			Plan{DeleteNew: 1, DeleteOldReady: 1}},
		{"scaled to zero mid-rollout", Counts{Replicas: 0, MaxUnavailable: 1, New: 1, Old: 2, OldReady: 2},
			Plan{DeleteNew: 1, DeleteOldReady: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, RollingPlan(tt.c)); diff != "" {
				t.Errorf("RollingPlan(%+v) (-want +got):\n%s", tt.c, diff)
			}
		})
	}
}

// TestRollingPlanBounds drives whole rollouts with RollingPlan, pods getting ready one per
// step, and checks the bounds after every step and that every rollout finishes.
func TestRollingPlanBounds(t *testing.T) {
	for replicas := 0; replicas <= 10; replicas++ {
		for _, b := range []struct{ surge, unavailable string }{{"25%", "25%"}, {"1", "0"}, {"0", "1"}, {"2", "3"}, {"100%", "0"}, {"0", "100%"}} {
			t.Run(fmt.Sprintf("replicas=%d/surge=%s/unavailable=%s", replicas, b.surge, b.unavailable), func(t *testing.T) {
				strategy := events.DeploymentStrategy{RollingUpdate: &events.RollingUpdateDeployment{
					MaxSurge: parseIntOrString(b.surge), MaxUnavailable: parseIntOrString(b.unavailable)}}
				surge, unavailable := Bounds(strategy, replicas)
				c := Counts{Replicas: replicas, MaxSurge: surge, MaxUnavailable: unavailable, Old: replicas, OldReady: replicas}
				for step := 0; ; step++ {
					if step > 4*replicas+4 {
						t.Fatalf("rollout did not finish in %d steps: %+v", step, c)
					}
					p := RollingPlan(c)
					// Deletions take unready pods first.
					c.NewReady -= p.DeleteNew - min(p.DeleteNew, c.New-c.NewReady)
					c.New += p.Create - p.DeleteNew
					c.Old -= p.DeleteOldUnready + p.DeleteOldReady
					c.OldReady -= p.DeleteOldReady
					if total := c.New + c.Old; total > replicas+surge {
						t.Fatalf("step %d: %d pods, more than %d+%d: %+v", step, total, replicas, surge, c)
					}
					if ready := c.NewReady + c.OldReady; ready < replicas-unavailable {
						t.Fatalf("step %d: %d ready, fewer than %d-%d: %+v", step, ready, replicas, unavailable, c)
					}
					if c.New == replicas && c.NewReady == replicas && c.Old == 0 {
						return
					}
					// One new pod gets ready.
					if c.NewReady < c.New {
						c.NewReady++
					}
				}
			})
		}
	}
}

func parseIntOrString(s string) *events.IntOrString {
	var n int32
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && fmt.Sprint(n) == s {
		return events.FromInt(n)
	}
	return events.FromString(s)
}

func TestRecreatePlan(t *testing.T) {
	tests := []struct {
		name    string
		c       Counts
		oldLeft int
		want    Plan
	}{
		{"new deployment", Counts{Replicas: 3}, 0, Plan{Create: 3}},
		{"old pods go first", Counts{Replicas: 3, Old: 3, OldReady: 2}, 3, Plan{DeleteOldUnready: 1, DeleteOldReady: 2}},
		{"wait while old pods terminate", Counts{Replicas: 3}, 2, Plan{}},
		{"then create", Counts{Replicas: 3}, 0, Plan{Create: 3}},
		{"scale down", Counts{Replicas: 1, New: 3, NewReady: 3}, 0, Plan{DeleteNew: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, RecreatePlan(tt.c, tt.oldLeft)); diff != "" {
				t.Errorf("RecreatePlan(%+v, %d) (-want +got):\n%s", tt.c, tt.oldLeft, diff)
			}
		})
	}
}

func TestBounds(t *testing.T) {
	ru := func(surge, unavailable *events.IntOrString) events.DeploymentStrategy {
		return events.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &events.RollingUpdateDeployment{MaxSurge: surge, MaxUnavailable: unavailable}}
	}
	tests := []struct {
		name               string
		s                  events.DeploymentStrategy
		replicas           int
		surge, unavailable int
	}{
		{"defaults of 4", events.DeploymentStrategy{}, 4, 1, 1},
		{"defaults of 10: surge rounds up, unavailable down", events.DeploymentStrategy{}, 10, 3, 2},
		{"defaults of 1", events.DeploymentStrategy{}, 1, 1, 0},
		{"defaults of 0 never both zero", events.DeploymentStrategy{}, 0, 0, 1},
		{"integers", ru(events.FromInt(2), events.FromInt(0)), 5, 2, 0},
		{"percentages", ru(events.FromString("50%"), events.FromString("50%")), 5, 3, 2},
		{"only surge given", ru(events.FromInt(0), nil), 8, 0, 2},
		{"both zero becomes unavailable 1", ru(events.FromInt(0), events.FromInt(0)), 5, 0, 1},
		{"garbage falls back to defaults", ru(events.FromString("lots"), events.FromString("-")), 4, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			surge, unavailable := Bounds(tt.s, tt.replicas)
			if surge != tt.surge || unavailable != tt.unavailable {
				t.Errorf("Bounds(%d) = surge %d, unavailable %d; want %d, %d", tt.replicas, surge, unavailable, tt.surge, tt.unavailable)
			}
		})
	}
}
