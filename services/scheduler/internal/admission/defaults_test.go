package admission

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

func ptr[T any](v T) *T { return &v }

func TestDecodeDefaults(t *testing.T) {
	grace30 := ptr(int64(30))
	tests := []struct {
		name     string
		manifest string
		want     Object
	}{
		{"pod", `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: nginx
    ports: [{containerPort: 80}]
`, &events.Pod{
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.PodSpec{
				Containers: []events.Container{{Name: "app", Image: "nginx",
					Ports: []events.ContainerPort{{ContainerPort: 80, Protocol: "TCP"}}}},
				RestartPolicy:                 "Always",
				TerminationGracePeriodSeconds: grace30,
			},
		}},
		{"pod keeps what it sets", `apiVersion: v1
kind: Pod
metadata: {name: job, namespace: batch}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: busybox
    ports: [{containerPort: 53, protocol: UDP}]
`, &events.Pod{
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			Metadata: events.ObjectMeta{Name: "job", Namespace: "batch"},
			Spec: events.PodSpec{
				Containers: []events.Container{{Name: "app", Image: "busybox",
					Ports: []events.ContainerPort{{ContainerPort: 53, Protocol: "UDP"}}}},
				RestartPolicy:                 "Never",
				TerminationGracePeriodSeconds: ptr(int64(0)),
			},
		}},
		{"get -o yaml output drops system-owned fields", `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  uid: 0b5c4a4e-0000-4000-8000-000000000000
  creationTimestamp: "2026-01-01T00:00:00Z"
  resourceVersion: "42"
  generation: 1
spec:
  containers: [{name: app, image: nginx, resources: {}}]
  nodeName: node-1
status:
  phase: Running
  podIP: 10.88.0.5
`, &events.Pod{
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.PodSpec{
				Containers:                    []events.Container{{Name: "app", Image: "nginx"}},
				RestartPolicy:                 "Always",
				TerminationGracePeriodSeconds: grace30,
			},
		}},
		{"deployment", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      creationTimestamp: null
    spec:
      containers: [{name: app, image: nginx}]
`, &events.Deployment{
			TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.DeploymentSpec{
				Replicas: ptr(int32(1)),
				Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: events.PodTemplateSpec{
					Metadata: events.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: events.PodSpec{
						Containers:                    []events.Container{{Name: "app", Image: "nginx"}},
						RestartPolicy:                 "Always",
						TerminationGracePeriodSeconds: grace30,
					},
				},
				Strategy: events.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &events.RollingUpdateDeployment{
					MaxSurge: events.FromString("25%"), MaxUnavailable: events.FromString("25%")}},
			},
		}},
		{"deployment fills the missing half of rollingUpdate", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 0
  strategy: {rollingUpdate: {maxSurge: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx}]}
`, &events.Deployment{
			TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.DeploymentSpec{
				Replicas: ptr(int32(0)),
				Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: events.PodTemplateSpec{
					Metadata: events.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: events.PodSpec{
						Containers:                    []events.Container{{Name: "app", Image: "nginx"}},
						RestartPolicy:                 "Always",
						TerminationGracePeriodSeconds: grace30,
					},
				},
				Strategy: events.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &events.RollingUpdateDeployment{
					MaxSurge: events.FromInt(1), MaxUnavailable: events.FromString("25%")}},
			},
		}},
		{"deployment with Recreate has no rollingUpdate", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx}]}
`, &events.Deployment{
			TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.DeploymentSpec{
				Replicas: ptr(int32(1)),
				Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: events.PodTemplateSpec{
					Metadata: events.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: events.PodSpec{
						Containers:                    []events.Container{{Name: "app", Image: "nginx"}},
						RestartPolicy:                 "Always",
						TerminationGracePeriodSeconds: grace30,
					},
				},
				Strategy: events.DeploymentStrategy{Type: "Recreate"},
			},
		}},
		{"service", `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80}
  - {name: dns, port: 53, protocol: UDP, targetPort: dns}
`, &events.Service{
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Service"},
			Metadata: events.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: events.ServiceSpec{
				Type:     "ClusterIP",
				Selector: map[string]string{"app": "web"},
				Ports: []events.ServicePort{
					{Name: "http", Protocol: "TCP", Port: 80, TargetPort: events.FromInt(80)},
					{Name: "dns", Protocol: "UDP", Port: 53, TargetPort: events.FromString("dns")},
				},
			},
		}},
		{"namespace", `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
status: {phase: Active}
`, &events.Namespace{
			TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			Metadata: events.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, causes := Decode(docs(t, tt.manifest)[0])
			if len(causes) > 0 {
				t.Fatalf("unexpected causes: %v", causes)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decoded object (-want +got):\n%s", diff)
			}
		})
	}
}
