package events_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

func TestExtraRequests(t *testing.T) {
	spec := events.PodSpec{Containers: []events.Container{
		{Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "1", "ephemeral-storage": "1Gi"},
			Limits: events.ResourceList{"nvidia.com/gpu": "2"}}},
		{Resources: events.ResourceRequirements{Limits: events.ResourceList{"ephemeral-storage": "512Mi", "nvidia.com/gpu": "1", "example.com/fpga": "1"}}},
	}}
	got := spec.ExtraRequests()
	want := &events.ExtraResources{EphemeralStorage: 1<<30 + 512<<20, Extended: map[string]int64{"nvidia.com/gpu": 3, "example.com/fpga": 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExtraRequests (-want +got):\n%s", diff)
	}
	if x := (&events.PodSpec{Containers: []events.Container{{Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "1"}}}}}).ExtraRequests(); x != nil {
		t.Errorf("a pod of CPU only: %+v, want nil", x)
	}
	for name, want := range map[string]bool{
		"nvidia.com/gpu": true, "example.com/fpga": true, "gpu": false, "cpu": false,
		"kubernetes.io/foo": false, "hugepages-2Mi": false, "a.b/c/d": false, "/x": false,
	} {
		if got := events.IsExtendedResource(name); got != want {
			t.Errorf("IsExtendedResource(%q) = %v, want %v", name, got, want)
		}
	}
}
