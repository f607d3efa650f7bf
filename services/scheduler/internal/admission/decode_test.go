package admission

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events/api"
)

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: app
    image: nginx:1.27
    ports:
    - name: http
      containerPort: 80
    resources:
      requests:
        cpu: 100m
        memory: 64Mi
      limits:
        cpu: 500m
        memory: 128Mi
`

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports:
        - name: http
          containerPort: 80
        resources:
          limits:
            cpu: 500m
            memory: 128Mi
`

const serviceYAML = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
`

const namespaceYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
`

// edit replaces old with new in a manifest, failing the test if old is not there, so a case
// can never silently test the unmodified manifest.
func edit(t *testing.T, manifest, old, new string) string {
	t.Helper()
	if !strings.Contains(manifest, old) {
		t.Fatalf("edit: %q is not in the manifest", old)
	}
	return strings.Replace(manifest, old, new, 1)
}

func TestDecodeAcceptsBaseManifests(t *testing.T) {
	for _, m := range []string{podYAML, deploymentYAML, serviceYAML, namespaceYAML} {
		obj, causes := Decode(docs(t, m)[0])
		if len(causes) > 0 || obj == nil {
			t.Errorf("Decode(%s...) = %v, want no causes", m[:30], causes)
		}
	}
}

// Fields that change nothing in Skiff are accepted and dropped: the pod decodes as without them.
func TestDecodeDropsFieldsThatChangeNothing(t *testing.T) {
	plain, causes := Decode(docs(t, podYAML)[0])
	if len(causes) > 0 {
		t.Fatal(causes)
	}
	with := edit(t, podYAML, "    image: nginx:1.27\n",
		"    image: nginx:1.27\n    terminationMessagePath: /dev/termination-log\n    terminationMessagePolicy: FallbackToLogsOnError\n")
	with = edit(t, with, "  containers:\n", "  enableServiceLinks: false\n  containers:\n")
	obj, causes := Decode(docs(t, with)[0])
	if len(causes) > 0 {
		t.Fatalf("a pod with terminationMessagePath, terminationMessagePolicy and enableServiceLinks: %v", causes)
	}
	if diff := cmp.Diff(plain, obj); diff != "" {
		t.Errorf("the fields changed the pod (-without +with):\n%s", diff)
	}
}

// TestDecodeRejects has one case per rule: each breaks one thing in a valid manifest and wants
// exactly the one cause that names it.
func TestDecodeRejects(t *testing.T) {
	type c struct{ field, reason string }
	tests := []struct {
		name     string
		manifest func(t *testing.T) string
		want     []c
	}{
		// Shape.
		{"invalid JSON", nil, nil}, // filled below: YAML cannot produce it
		{"not an object", func(t *testing.T) string { return "- a\n- b\n" },
			[]c{{"", `a manifest must be an object with apiVersion, kind, metadata (and spec), not a list`}}},
		{"missing kind", func(t *testing.T) string { return edit(t, podYAML, "kind: Pod\n", "") },
			[]c{{"kind", "required value: one of Pod, Deployment, Service, Namespace"}}},
		{"unknown kind", func(t *testing.T) string { return edit(t, podYAML, "kind: Pod", "kind: StatefulSet") },
			[]c{{"kind", `unsupported kind "StatefulSet": Skiff supports Pod (v1), Deployment (apps/v1), Service (v1) and Namespace (v1)`}}},
		{"kind List", func(t *testing.T) string { return "apiVersion: v1\nkind: List\nitems: []\n" },
			[]c{{"kind", `unsupported kind "List": apply the items of a List as separate documents`}}},
		{"wrong apiVersion", func(t *testing.T) string { return edit(t, deploymentYAML, "apps/v1", "extensions/v1beta1") },
			[]c{{"apiVersion", `Deployment is served as apps/v1, not "extensions/v1beta1"`}}},
		{"missing apiVersion", func(t *testing.T) string { return edit(t, serviceYAML, "apiVersion: v1\n", "") },
			[]c{{"apiVersion", "required value: Service is served as v1"}}},
		{"unknown field with a suggestion", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    comand: [sleep]\n")
		}, []c{{"spec.containers[0].comand", `unknown field; did you mean "command"?`}}},
		{"unknown field without a suggestion", func(t *testing.T) string { return podYAML + "extra: 1\n" },
			[]c{{"extra", "unknown field; supported here: apiVersion, kind, metadata, spec"}}},
		{"Kubernetes field Skiff does not support", func(t *testing.T) string {
			return edit(t, deploymentYAML, "        image: nginx:1.27\n", "        image: nginx:1.27\n        stdin: true\n")
		}, []c{{"spec.template.spec.containers[0].stdin", "field not supported by Skiff (see docs/manifests.md for what is)"}}},
		{"duplicate field", func(t *testing.T) string {
			return "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\",\"name\":\"b\"}}"
		},
			[]c{{"metadata.name", "duplicate field"}}},

		// Types.
		{"string for an integer", func(t *testing.T) string { return edit(t, podYAML, "containerPort: 80", `containerPort: "80"`) },
			[]c{{"spec.containers[0].ports[0].containerPort", `expected an integer, got the string "80"`}}},
		{"fraction for an integer", func(t *testing.T) string { return edit(t, deploymentYAML, "replicas: 3", "replicas: 2.5") },
			[]c{{"spec.replicas", "expected an integer, got the number 2.5"}}},
		{"integer out of range", func(t *testing.T) string { return edit(t, deploymentYAML, "replicas: 3", "replicas: 3000000000") },
			[]c{{"spec.replicas", "3000000000 is out of range for a 32-bit integer"}}},
		{"number for a label value", func(t *testing.T) string { return edit(t, podYAML, "app: web", "version: 1") },
			[]c{{"metadata.labels[version]", `expected a string, got the number 1: quote it ("1")`}}},
		{"object for a list", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    args: {a: b}\n")
		}, []c{{"spec.containers[0].args", "expected a list, got an object"}}},
		{"number in a string list", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    command: [sleep, 10]\n")
		}, []c{{"spec.containers[0].command[1]", `expected a string, got the number 10: quote it ("10")`}}},
		{"list for a quantity", func(t *testing.T) string { return edit(t, podYAML, "cpu: 500m", "cpu: [1]") },
			[]c{{"spec.containers[0].resources.limits.cpu", `expected a quantity such as "250m" or "128Mi", got a list`}}},

		// Names, labels, annotations.
		{"missing name", func(t *testing.T) string { return edit(t, serviceYAML, "  name: web\n", "") },
			[]c{{"metadata.name", "required value"}}},
		{"name with a dot", func(t *testing.T) string { return edit(t, serviceYAML, "name: web", "name: web.v2") },
			[]c{{"metadata.name", `"web.v2" contains '.': must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. "my-name"); names become NATS subject tokens, so dots are not allowed`}}},
		{"name too long", func(t *testing.T) string {
			return edit(t, namespaceYAML, "name: shop", "name: "+strings.Repeat("a", 64))
		},
			[]c{{"metadata.name", `"` + strings.Repeat("a", 64) + `" is 64 characters long: must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. "my-name")`}}},
		{"name with upper case", func(t *testing.T) string { return edit(t, podYAML, "name: web", "name: Web") },
			[]c{{"metadata.name", `"Web" has upper-case letters: must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. "my-name")`}}},
		{"name ending in a dash", func(t *testing.T) string { return edit(t, podYAML, "name: web", "name: web-") },
			[]c{{"metadata.name", `"web-" must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. "my-name")`}}},
		{"bad namespace", func(t *testing.T) string {
			return edit(t, podYAML, "  name: web\n", "  name: web\n  namespace: my_ns\n")
		},
			[]c{{"metadata.namespace", `"my_ns" must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. "my-name")`}}},
		{"namespace on a Namespace", func(t *testing.T) string {
			return edit(t, namespaceYAML, "  name: shop\n", "  name: shop\n  namespace: default\n")
		},
			[]c{{"metadata.namespace", "a Namespace is cluster-scoped: remove metadata.namespace"}}},
		{"bad label key", func(t *testing.T) string { return edit(t, podYAML, "app: web", "my app: web") },
			[]c{{"metadata.labels[my app]", `key "my app": name part must be at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. "app.kubernetes.io/name")`}}},
		{"bad label key prefix", func(t *testing.T) string { return edit(t, podYAML, "app: web", "Example.com/app: web") },
			[]c{{"metadata.labels[Example.com/app]", `key "Example.com/app": prefix "Example.com" must be a DNS-1123 subdomain (e.g. "example.com")`}}},
		{"bad label value", func(t *testing.T) string { return edit(t, podYAML, "app: web", "app: web/v2") },
			[]c{{"metadata.labels[app]", `value "web/v2" must be empty or at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit`}}},
		{"bad annotation key", func(t *testing.T) string {
			return edit(t, serviceYAML, "  name: web\n", "  name: web\n  annotations:\n    \"-note\": x\n")
		},
			[]c{{"metadata.annotations[-note]", `key "-note": name part must be at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. "app.kubernetes.io/name")`}}},
		{"annotations too large", func(t *testing.T) string {
			return edit(t, serviceYAML, "  name: web\n", "  name: web\n  annotations:\n    note: "+strings.Repeat("x", 256<<10)+"\n")
		}, []c{{"metadata.annotations", "annotations hold 262148 bytes, more than the limit of 262144"}}},
		{"bad nodeSelector", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  nodeSelector:\n    disk: \"fast ssd\"\n  containers:\n")
		}, []c{{"spec.nodeSelector[disk]", `value "fast ssd" must be empty or at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit`}}},

		// Containers.
		{"no containers", func(t *testing.T) string {
			return "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: []\n"
		},
			[]c{{"spec.containers", "required value: a pod needs at least one container"}}},
		{"missing image", func(t *testing.T) string { return edit(t, deploymentYAML, "        image: nginx:1.27\n", "") },
			[]c{{"spec.template.spec.containers[0].image", "required value"}}},
		{"image with a space", func(t *testing.T) string { return edit(t, podYAML, "image: nginx:1.27", `image: "nginx :1.27"`) },
			[]c{{"spec.containers[0].image", `image "nginx :1.27" must not contain whitespace`}}},
		{"negative minReadySeconds", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  selector:\n", "  minReadySeconds: -1\n  selector:\n")
		}, []c{{"spec.minReadySeconds", "must be greater than or equal to 0 (got -1)"}}},
		{"progress deadline not above minReadySeconds", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  selector:\n", "  minReadySeconds: 30\n  progressDeadlineSeconds: 30\n  selector:\n")
		}, []c{{"spec.progressDeadlineSeconds", "must be greater than 0 and than spec.minReadySeconds (30) (got 30)"}}},
		{"negative revisionHistoryLimit", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  selector:\n", "  revisionHistoryLimit: -3\n  selector:\n")
		}, []c{{"spec.revisionHistoryLimit", "must be greater than or equal to 0 (got -3)"}}},
		{"extended resource requested without its limit", func(t *testing.T) string {
			return edit(t, podYAML, "        memory: 64Mi\n", "        memory: 64Mi\n        nvidia.com/gpu: 1\n")
		}, []c{{"spec.containers[0].resources.requests.nvidia.com/gpu", "must equal the nvidia.com/gpu limit: extended resources cannot be overcommitted (set the limit; a limit alone requests itself)"}}},
		{"extended resource, fractional", func(t *testing.T) string {
			return edit(t, podYAML, "        memory: 128Mi\n", "        memory: 128Mi\n        nvidia.com/gpu: \"0.5\"\n")
		}, []c{{"spec.containers[0].resources.limits.nvidia.com/gpu", `"0.5" is not a nvidia.com/gpu quantity: want a whole number of units ("1")`}}},
		{"env from an unsupported field", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    env:\n    - name: PHASE\n      valueFrom:\n        fieldRef:\n          fieldPath: status.phase\n")
		}, []c{{"spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", `unsupported field path "status.phase": supported: metadata.name, metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP, status.hostIPs, metadata.labels['KEY'], metadata.annotations['KEY']`}}},
		{"env from a value and a field", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    env:\n    - name: POD\n      value: x\n      valueFrom:\n        fieldRef:\n          fieldPath: metadata.name\n")
		}, []c{{"spec.containers[0].env[0].value", "may not be set when valueFrom is"}}},
		{"env from another container's resources", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    env:\n    - name: MEM\n      valueFrom:\n        resourceFieldRef:\n          containerName: nope\n          resource: limits.memory\n")
		}, []c{{"spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName", `no container "nope" in the pod`}}},
		{"env from a config map", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    env:\n    - name: C\n      valueFrom:\n        configMapKeyRef:\n          name: cfg\n          key: k\n")
		}, []c{{"spec.containers[0].env[0].valueFrom.configMapKeyRef", "field not supported by Skiff (see docs/manifests.md for what is)"}}},
		{"init container named like a container", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  initContainers:\n  - name: app\n    image: busybox\n  containers:\n")
		}, []c{{"spec.containers[0].name", `duplicate container name "app" (also initContainers[0])`}}},
		{"init container without an image", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  initContainers:\n  - name: migrate\n  containers:\n")
		}, []c{{"spec.initContainers[0].image", "required value"}}},
		{"hostname not a DNS label", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  hostname: Web_1\n  containers:\n")
		}, []c{{"spec.hostname", `"Web_1" must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. "my-name")`}}},
		{"bad imagePullPolicy", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    imagePullPolicy: Sometimes\n")
		}, []c{{"spec.containers[0].imagePullPolicy", `unsupported value "Sometimes": supported values: "Always", "IfNotPresent", "Never"`}}},
		{"image with upper case", func(t *testing.T) string { return edit(t, podYAML, "image: nginx:1.27", `image: "Nginx:1.27"`) },
			[]c{{"spec.containers[0].image", `invalid image reference "Nginx:1.27": invalid reference format: repository name (library/Nginx) must be lowercase`}}},
		{"image with a bad digest", func(t *testing.T) string { return edit(t, podYAML, "image: nginx:1.27", `image: "nginx@sha256:12"`) },
			[]c{{"spec.containers[0].image", `invalid image reference "nginx@sha256:12": invalid reference format`}}},
		{"bad container name", func(t *testing.T) string { return edit(t, podYAML, "name: app", "name: App") },
			[]c{{"spec.containers[0].name", `"App" has upper-case letters: must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. "my-name")`}}},
		{"duplicate container name", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  containers:\n  - name: app\n    image: busybox\n")
		}, []c{{"spec.containers[1].name", `duplicate container name "app" (also containers[0])`}}},
		{"env name with =", func(t *testing.T) string {
			return edit(t, podYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    env:\n    - name: A=B\n      value: c\n")
		}, []c{{"spec.containers[0].env[0].name", `"A=B" must not contain '='`}}},
		{"container port out of range", func(t *testing.T) string { return edit(t, podYAML, "containerPort: 80", "containerPort: 70000") },
			[]c{{"spec.containers[0].ports[0].containerPort", "must be between 1 and 65535, inclusive (got 70000)"}}},
		{"container port protocol", func(t *testing.T) string {
			return edit(t, podYAML, "      containerPort: 80\n", "      containerPort: 80\n      protocol: HTTP\n")
		}, []c{{"spec.containers[0].ports[0].protocol", `unsupported value "HTTP": supported values: "TCP", "UDP"`}}},
		{"duplicate container port", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  containers:\n  - name: side\n    image: busybox\n    ports:\n    - containerPort: 80\n")
		}, []c{{"spec.containers[1].ports[0].containerPort", "duplicate port 80/TCP (also spec.containers[0].ports[0]): the containers of a pod share one network namespace"}}},
		{"duplicate port name", func(t *testing.T) string {
			return edit(t, podYAML, "      containerPort: 80\n", "      containerPort: 80\n    - name: http\n      containerPort: 8080\n")
		}, []c{{"spec.containers[0].ports[1].name", `duplicate port name "http" (also spec.containers[0].ports[0]): named target ports of Services must be unambiguous`}}},
		{"bad port name", func(t *testing.T) string { return edit(t, podYAML, "name: http", "name: http-web-frontend") },
			[]c{{"spec.containers[0].ports[0].name", `port name "http-web-frontend" must be at most 15 lowercase letters, digits and '-', with at least one letter, no '-' at either end and no "--" (e.g. "http")`}}},

		// Resources.
		{"bad memory quantity", func(t *testing.T) string { return edit(t, deploymentYAML, "memory: 128Mi", "memory: 128MB") },
			[]c{{"spec.template.spec.containers[0].resources.limits.memory", `"128MB" is not a memory quantity: want bytes ("1048576") or a number with a suffix Ki, Mi, Gi, Ti, Pi, k, M, G, T, P ("128Mi")`}}},
		{"bad cpu quantity", func(t *testing.T) string { return edit(t, podYAML, "cpu: 100m", "cpu: 1 core") },
			[]c{{"spec.containers[0].resources.requests.cpu", `"1 core" is not a cpu quantity: want cores ("0.5", "2") or millicores ("500m")`}}},
		{"unsupported resource", func(t *testing.T) string {
			return edit(t, podYAML, "        memory: 128Mi\n", "        memory: 128Mi\n        hugepages-2Mi: 1Gi\n")
		},
			[]c{{"spec.containers[0].resources.limits.hugepages-2Mi", `unsupported resource "hugepages-2Mi": Skiff schedules cpu, memory, ephemeral-storage and extended resources named by a domain ("example.com/device")`}}},
		{"request above limit", func(t *testing.T) string { return edit(t, podYAML, "memory: 64Mi", "memory: 1Gi") },
			[]c{{"spec.containers[0].resources.requests.memory", "must be less than or equal to the memory limit (128Mi)"}}},

		// Pod spec.
		{"unknown restartPolicy", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  restartPolicy: Sometimes\n  containers:\n")
		},
			[]c{{"spec.restartPolicy", `unsupported value "Sometimes": supported values: "Always", "OnFailure", "Never"`}}},
		{"Deployment pods not Always", func(t *testing.T) string {
			return edit(t, deploymentYAML, "      containers:\n", "      restartPolicy: OnFailure\n      containers:\n")
		}, []c{{"spec.template.spec.restartPolicy", `unsupported value "OnFailure": a Deployment's pods must have restartPolicy "Always"`}}},
		{"negative grace period", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  terminationGracePeriodSeconds: -1\n  containers:\n")
		}, []c{{"spec.terminationGracePeriodSeconds", "must be greater than or equal to 0 (got -1)"}}},
		{"toleration operator", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  tolerations:\n  - key: dedicated\n    operator: In\n    value: db\n  containers:\n")
		}, []c{{"spec.tolerations[0].operator", `unsupported value "In": supported values: "Equal", "Exists"`}}},
		{"toleration effect", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  tolerations:\n  - key: dedicated\n    value: db\n    effect: NoRun\n  containers:\n")
		}, []c{{"spec.tolerations[0].effect", `unsupported value "NoRun": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute" (or empty for all)`}}},
		{"toleration Exists with a value", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  tolerations:\n  - key: dedicated\n    operator: Exists\n    value: db\n  containers:\n")
		}, []c{{"spec.tolerations[0].value", `must be empty when operator is "Exists"`}}},
		{"toleration without key must be Exists", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  tolerations:\n  - effect: NoSchedule\n  containers:\n")
		}, []c{{"spec.tolerations[0].operator", `must be "Exists" when key is empty (a toleration of every taint)`}}},
		{"tolerationSeconds without NoExecute", func(t *testing.T) string {
			return edit(t, podYAML, "  containers:\n", "  tolerations:\n  - key: a\n    operator: Exists\n    effect: NoSchedule\n    tolerationSeconds: 5\n  containers:\n")
		}, []c{{"spec.tolerations[0].tolerationSeconds", `may only be set when effect is "NoExecute"`}}},

		// Deployment.
		{"negative replicas", func(t *testing.T) string { return edit(t, deploymentYAML, "replicas: 3", "replicas: -1") },
			[]c{{"spec.replicas", "must be greater than or equal to 0 (got -1)"}}},
		{"missing selector", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  selector:\n    matchLabels:\n      app: web\n", "")
		},
			[]c{{"spec.selector.matchLabels", "required value: the labels that select the Deployment's pods (and that spec.template.metadata.labels must have)"}}},
		{"selector does not match template", func(t *testing.T) string {
			return edit(t, deploymentYAML, "      app: web\n  template", "      app: shop\n  template")
		},
			[]c{{"spec.template.metadata.labels", "selector does not match template labels: the template needs app=shop (from spec.selector.matchLabels)"}}},
		{"matchExpressions", func(t *testing.T) string {
			return edit(t, deploymentYAML, "    matchLabels:\n", "    matchExpressions: []\n    matchLabels:\n")
		},
			[]c{{"spec.selector.matchExpressions", "field not supported by Skiff (see docs/manifests.md for what is)"}}},
		{"template with a name", func(t *testing.T) string {
			return edit(t, deploymentYAML, "    metadata:\n      labels:", "    metadata:\n      name: x\n      labels:")
		},
			[]c{{"spec.template.metadata.name", "not allowed in a pod template: the Deployment sets it on each pod"}}},
		{"template with nodeName", func(t *testing.T) string {
			return edit(t, deploymentYAML, "      containers:\n", "      nodeName: n1\n      containers:\n")
		},
			[]c{{"spec.template.spec.nodeName", "must not be set in a pod template: the scheduler places a Deployment's pods; use nodeSelector"}}},
		{"strategy type", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  replicas: 3\n", "  replicas: 3\n  strategy:\n    type: BlueGreen\n")
		},
			[]c{{"spec.strategy.type", `unsupported value "BlueGreen": supported values: "RollingUpdate", "Recreate"`}}},
		{"rollingUpdate with Recreate", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  replicas: 3\n", "  replicas: 3\n  strategy:\n    type: Recreate\n    rollingUpdate:\n      maxSurge: 1\n")
		}, []c{{"spec.strategy.rollingUpdate", `may not be set when strategy type is "Recreate"`}}},
		{"maxSurge not a percentage", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  replicas: 3\n", "  replicas: 3\n  strategy:\n    rollingUpdate:\n      maxSurge: \"1\"\n")
		}, []c{{"spec.strategy.rollingUpdate.maxSurge", `"1" must be an integer or a percentage ("25%")`}}},
		{"maxUnavailable above 100%", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  replicas: 3\n", "  replicas: 3\n  strategy:\n    rollingUpdate:\n      maxUnavailable: 150%\n")
		}, []c{{"spec.strategy.rollingUpdate.maxUnavailable", `"150%" must not be greater than 100%`}}},
		{"maxSurge and maxUnavailable both 0", func(t *testing.T) string {
			return edit(t, deploymentYAML, "  replicas: 3\n", "  replicas: 3\n  strategy:\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 0%\n")
		}, []c{{"spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0: the rollout could never make progress"}}},

		// Service.
		{"service type", func(t *testing.T) string {
			return edit(t, serviceYAML, "  selector:\n", "  type: NodePort\n  selector:\n")
		},
			[]c{{"spec.type", `unsupported value "NodePort": Skiff supports only "ClusterIP" Services`}}},
		{"service without ports", func(t *testing.T) string {
			return "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
		},
			[]c{{"spec.ports", "required value: a Service needs at least one port"}}},
		{"service port out of range", func(t *testing.T) string { return edit(t, serviceYAML, "port: 80", "port: 0") },
			[]c{{"spec.ports[0].port", "must be between 1 and 65535, inclusive (got 0)"}}},
		{"service port protocol", func(t *testing.T) string {
			return edit(t, serviceYAML, "    port: 80\n", "    port: 80\n    protocol: SCTP\n")
		},
			[]c{{"spec.ports[0].protocol", `unsupported value "SCTP": supported values: "TCP", "UDP"`}}},
		{"unnamed port among several", func(t *testing.T) string { return serviceYAML + "  - port: 443\n" },
			[]c{{"spec.ports[1].name", "required value: every port of a Service with several ports needs a name"}}},
		{"duplicate service port", func(t *testing.T) string { return serviceYAML + "  - name: alt\n    port: 80\n" },
			[]c{{"spec.ports[1].port", "duplicate port 80/TCP (also spec.ports[0])"}}},
		{"targetPort not a port name", func(t *testing.T) string { return edit(t, serviceYAML, "targetPort: http", `targetPort: "8080"`) },
			[]c{{"spec.ports[0].targetPort", `port name "8080" must be at most 15 lowercase letters, digits and '-', with at least one letter, no '-' at either end and no "--" (e.g. "http"); or give the port number as an integer`}}},
		{"targetPort out of range", func(t *testing.T) string { return edit(t, serviceYAML, "targetPort: http", "targetPort: 65536") },
			[]c{{"spec.ports[0].targetPort", "must be between 1 and 65535, inclusive (got 65536)"}}},
		{"clusterIP not an address", func(t *testing.T) string {
			return edit(t, serviceYAML, "  selector:\n", "  clusterIP: 10.96.0.300\n  selector:\n")
		},
			[]c{{"spec.clusterIP", `"10.96.0.300" is not an IPv4 address`}}},
		{"headless service", func(t *testing.T) string {
			return edit(t, serviceYAML, "  selector:\n", "  clusterIP: None\n  selector:\n")
		},
			[]c{{"spec.clusterIP", "headless Services (clusterIP: None) are not supported by Skiff"}}},
		{"bad selector", func(t *testing.T) string { return edit(t, serviceYAML, "app: web", "app: -web") },
			[]c{{"spec.selector[app]", `value "-web" must be empty or at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc api.Document
			cases := tt.want
			if tt.manifest == nil {
				doc = api.Document{Source: "test.yaml", Object: []byte(`{"kind": "Pod",`)}
				cases = []c{{"", "not valid JSON: unexpected end of input"}}
			} else if m := tt.manifest(t); strings.HasPrefix(m, "{") {
				// Raw JSON: the YAML converter would drop the duplicate key itself.
				doc = api.Document{Source: "test.yaml", Object: []byte(m)}
			} else {
				doc = docs(t, tt.manifest(t))[0]
			}
			var want []api.Cause
			for _, w := range cases {
				want = append(want, api.Cause{Document: "test.yaml#1", Field: w.field, Reason: w.reason})
			}
			obj, got := Decode(doc)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("causes (-want +got):\n%s", diff)
			}
			if obj != nil {
				t.Errorf("Decode returned an object along with causes")
			}
		})
	}
}

// Ephemeral storage and extended resources decode, as Kubernetes writes them.
func TestDecodeAcceptsExtraResources(t *testing.T) {
	m := edit(t, podYAML, "        memory: 64Mi\n", "        memory: 64Mi\n        ephemeral-storage: 1Gi\n")
	m = edit(t, m, "        memory: 128Mi\n", "        memory: 128Mi\n        ephemeral-storage: 2Gi\n        nvidia.com/gpu: 2\n")
	obj, causes := Decode(docs(t, m)[0])
	if len(causes) > 0 || obj == nil {
		t.Fatalf("Decode = %v", causes)
	}
}
