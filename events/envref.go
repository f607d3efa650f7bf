package events

import (
	"fmt"
	"strconv"
	"strings"
)

// Environment variables from the pod's own fields and its containers' resources (the downward
// API), as the kubelet resolves them.

// fieldPaths are the pod fields an environment variable may take (besides labels['k'] and
// annotations['k']).
var fieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
	"spec.serviceAccountName", "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs"}

// CheckFieldPath says what is wrong with a fieldRef's path for an environment variable, "" when
// nothing is.
func CheckFieldPath(path string) string {
	for _, p := range fieldPaths {
		if path == p {
			return ""
		}
	}
	if key, ok := mapKey(path, "metadata.labels"); ok {
		if key == "" {
			return "the label key in metadata.labels['...'] is empty"
		}
		return ""
	}
	if key, ok := mapKey(path, "metadata.annotations"); ok {
		if key == "" {
			return "the annotation key in metadata.annotations['...'] is empty"
		}
		return ""
	}
	return fmt.Sprintf("unsupported field path %q: supported: %s, metadata.labels['KEY'], metadata.annotations['KEY']", path, strings.Join(fieldPaths, ", "))
}

// mapKey reads "prefix['key']".
func mapKey(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// FieldValue is the value of a pod field a fieldRef names; podIP and hostIP are the pod's and
// its node's addresses as the node knows them.
func FieldValue(pod *Pod, path, podIP, hostIP string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Metadata.Name, nil
	case "metadata.namespace":
		return pod.Metadata.Namespace, nil
	case "metadata.uid":
		return pod.Metadata.UID, nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return "default", nil // every pod runs as its namespace's default account
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	if key, ok := mapKey(path, "metadata.labels"); ok {
		return pod.Metadata.Labels[key], nil
	}
	if key, ok := mapKey(path, "metadata.annotations"); ok {
		return pod.Metadata.Annotations[key], nil
	}
	return "", fmt.Errorf("field path %q: %s", path, CheckFieldPath(path))
}

// resourceFields are the resources a resourceFieldRef may name.
var resourceFields = []string{"limits.cpu", "requests.cpu", "limits.memory", "requests.memory",
	"limits.ephemeral-storage", "requests.ephemeral-storage"}

// CheckResourceField says what is wrong with a resourceFieldRef's resource and divisor, ""
// when nothing is.
func CheckResourceField(resource, divisor string) string {
	ok := false
	for _, r := range resourceFields {
		ok = ok || r == resource
	}
	if !ok {
		return fmt.Sprintf("unsupported resource %q: supported: %s", resource, strings.Join(resourceFields, ", "))
	}
	if divisor == "" {
		return ""
	}
	if _, err := parseDivisor(resource, divisor); err != nil {
		return err.Error()
	}
	return ""
}

func parseDivisor(resource, divisor string) (int64, error) {
	if divisor == "" {
		divisor = "1"
	}
	var v int64
	var err error
	if strings.HasSuffix(resource, ".cpu") {
		v, err = ParseCPU(divisor)
	} else {
		v, err = ParseMemory(divisor)
	}
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("divisor %q is not a positive quantity of %s", divisor, resource[strings.IndexByte(resource, '.')+1:])
	}
	return v, nil
}

// ResourceValue is a container's request or limit as a resourceFieldRef gives it: in units of
// the divisor, rounded up. A limit the container does not set is the node's allocatable amount
// (alloc: millicores for "cpu", bytes for the others); a request it does not set is 0, or its
// limit when it sets one, as for scheduling.
func ResourceValue(c *Container, resource, divisor string, alloc map[string]int64) (string, error) {
	if s := CheckResourceField(resource, divisor); s != "" {
		return "", fmt.Errorf("resourceFieldRef: %s", s)
	}
	kind, name, _ := strings.Cut(resource, ".")
	q := c.Resources.Limits[name]
	if kind == "requests" {
		if r := c.Resources.Requests[name]; r != "" {
			q = r
		}
	}
	var v int64
	switch {
	case q == "" && kind == "limits":
		v = alloc[name]
	case q == "":
		v = 0
	case name == "cpu":
		v, _ = ParseCPU(q)
	default:
		v, _ = ParseMemory(q)
	}
	d, err := parseDivisor(resource, divisor)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt((v+d-1)/d, 10), nil
}
