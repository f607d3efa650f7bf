package events_test

import (
	"testing"

	"skiff.dev/events"
)

func TestFieldValue(t *testing.T) {
	pod := &events.Pod{Metadata: events.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "u1",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"team": "a b"}}, Spec: events.PodSpec{NodeName: "n1"}}
	for path, want := range map[string]string{
		"metadata.name": "web-1", "metadata.namespace": "shop", "metadata.uid": "u1", "spec.nodeName": "n1",
		"spec.serviceAccountName": "default", "status.podIP": "10.88.0.5", "status.podIPs": "10.88.0.5", "status.hostIP": "192.168.1.2",
		"metadata.labels['app']": "web", "metadata.annotations['team']": "a b", "metadata.labels['none']": "",
	} {
		if events.CheckFieldPath(path) != "" {
			t.Errorf("CheckFieldPath(%q) = %q", path, events.CheckFieldPath(path))
		}
		if got, err := events.FieldValue(pod, path, "10.88.0.5", "192.168.1.2"); err != nil || got != want {
			t.Errorf("FieldValue(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, bad := range []string{"metadata.labels", "spec.containers", "metadata.labels['']", "status.phase"} {
		if events.CheckFieldPath(bad) == "" {
			t.Errorf("CheckFieldPath(%q) accepts it", bad)
		}
	}
}

func TestResourceValue(t *testing.T) {
	c := &events.Container{Resources: events.ResourceRequirements{
		Requests: events.ResourceList{"cpu": "250m", "memory": "100Mi"},
		Limits:   events.ResourceList{"memory": "128Mi"},
	}}
	alloc := map[string]int64{"cpu": 4000, "memory": 8 << 30, "ephemeral-storage": 50 << 30}
	for _, tc := range []struct{ resource, divisor, want string }{
		{"requests.cpu", "", "1"}, // 0.25 core, rounded up
		{"requests.cpu", "1m", "250"},
		{"limits.cpu", "", "4"}, // no limit: the node's allocatable
		{"limits.cpu", "1m", "4000"},
		{"limits.memory", "", "134217728"},
		{"limits.memory", "1Mi", "128"},
		{"requests.memory", "1Mi", "100"},
		{"requests.ephemeral-storage", "", "0"},
		{"limits.ephemeral-storage", "1Gi", "50"},
	} {
		got, err := events.ResourceValue(c, tc.resource, tc.divisor, alloc)
		if err != nil || got != tc.want {
			t.Errorf("ResourceValue(%s, divisor %q) = %q, %v; want %s", tc.resource, tc.divisor, got, err, tc.want)
		}
	}
	for _, bad := range [][2]string{{"limits.gpu", ""}, {"requests.cpu", "0"}, {"limits.memory", "1MB"}} {
		if events.CheckResourceField(bad[0], bad[1]) == "" {
			t.Errorf("CheckResourceField(%q, %q) accepts it", bad[0], bad[1])
		}
	}
}
