package deployments

import (
	"encoding/json"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/state"
)

// TestStatusGolden pins the JSON of DeploymentRolloutProgressed, the shape `skiff rollout status`
// reads, for a rollout under way, one short of minimum availability, and a finished one.
func TestStatusGolden(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	replicas := int32(4)
	d := &state.Deployment{Deployment: events.Deployment{
		Metadata: events.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web", Generation: 2},
		Spec:     events.DeploymentSpec{Replicas: &replicas},
	}}
	tests := []struct {
		name string
		c    Counts
	}{
		{"progressing", Counts{Replicas: 4, MaxSurge: 1, MaxUnavailable: 1, New: 2, NewReady: 1, Old: 3, OldReady: 3}},
		{"unavailable", Counts{Replicas: 4, MaxSurge: 1, MaxUnavailable: 1, New: 4, NewReady: 2}},
		{"complete", Counts{Replicas: 4, MaxSurge: 1, MaxUnavailable: 1, New: 4, NewReady: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := computeStatus(d, tt.c, 0, "bcdfghjklm", now)
			got, err := json.MarshalIndent(events.DeploymentRolloutProgressed{Status: st}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			eventstest.Golden(t, "testdata/status-"+tt.name+".json", got)
		})
	}
}

// TestConditionTimesHold: a condition keeps its transition time while its status holds.
func TestConditionTimesHold(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := &state.Deployment{}
	c := Counts{Replicas: 2, MaxUnavailable: 0, MaxSurge: 1, New: 2}
	first, _ := computeStatus(d, c, 0, "h", t0)
	d.Status = first
	c.NewReady = 2
	second, _ := computeStatus(d, c, 0, "h", t0.Add(time.Minute))
	if !second.Conditions[0].LastTransitionTime.Equal(t0.Add(time.Minute)) {
		t.Errorf("Available flipped to True but kept time %v", second.Conditions[0].LastTransitionTime)
	}
	if !second.Conditions[1].LastTransitionTime.Equal(t0) {
		t.Errorf("Progressing stayed True but its time moved to %v", second.Conditions[1].LastTransitionTime)
	}
}
