package e2e_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
)

// Images the project builds (images/doc.go).
const (
	echoImage    = "skiff.dev/echo:v1"
	testboxImage = "skiff.dev/testbox:v1"
)

// podSpec is what the tests vary in a one-container pod.
type podSpec struct {
	name          string
	image         string
	args          []string // testbox behaviour and its arguments
	restartPolicy string
	grace         int64
	memoryLimit   string
	pullPolicy    string
	node          string // nodeSelector kubernetes.io/hostname
	labels        map[string]string
}

// manifest renders a Pod as JSON (the CLI reads JSON as YAML's subset).
func (p podSpec) manifest() string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q`, p.name)
	if len(p.labels) > 0 {
		b.WriteString(`,"labels":{`)
		keys := make([]string, 0, len(p.labels))
		for k := range p.labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%q", k, p.labels[k])
		}
		b.WriteString("}")
	}
	b.WriteString(`},"spec":{`)
	if p.restartPolicy != "" {
		fmt.Fprintf(&b, `"restartPolicy":%q,`, p.restartPolicy)
	}
	fmt.Fprintf(&b, `"terminationGracePeriodSeconds":%d,`, p.grace)
	if p.node != "" {
		fmt.Fprintf(&b, `"nodeSelector":{"kubernetes.io/hostname":%q},`, p.node)
	}
	image := p.image
	if image == "" {
		image = testboxImage
	}
	fmt.Fprintf(&b, `"containers":[{"name":"main","image":%q`, image)
	if p.pullPolicy != "" {
		fmt.Fprintf(&b, `,"imagePullPolicy":%q`, p.pullPolicy)
	}
	if len(p.args) > 0 {
		b.WriteString(`,"args":[`)
		for i, a := range p.args {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q", a)
		}
		b.WriteString("]")
	}
	if p.memoryLimit != "" {
		fmt.Fprintf(&b, `,"resources":{"limits":{"memory":%q}}`, p.memoryLimit)
	}
	b.WriteString("}]}}\n")
	return b.String()
}

// podNamed finds a pod of namespace default in a listing.
func podNamed(pods []events.Pod, name string) (events.Pod, bool) {
	for _, p := range pods {
		if p.Metadata.Name == name && p.Metadata.Namespace == "default" {
			return p, true
		}
	}
	return events.Pod{}, false
}

// running reports whether the pod runs with every container running and ready, and an IP.
func running(p events.Pod) bool {
	if p.Status.Phase != events.PodRunning || p.Status.PodIP == "" || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil || !c.Ready {
			return false
		}
	}
	return true
}

// waitRunning waits until the named pod runs and returns it.
func waitRunning(t testing.TB, c *cluster.Cluster, name string) events.Pod {
	t.Helper()
	var pod events.Pod
	c.WaitFor("pod "+name+" running", func() bool {
		pods, err := c.PodsErr()
		if err != nil {
			t.Logf("list pods: %v", err)
			return false
		}
		var ok bool
		pod, ok = podNamed(pods, name)
		return ok && running(pod)
	})
	return pod
}

// waitGone waits until no pod with the given name prefix is left.
func waitGone(t testing.TB, c *cluster.Cluster, prefix string) {
	t.Helper()
	c.WaitFor("no pod "+prefix+"* left", func() bool {
		pods, err := c.PodsErr()
		if err != nil {
			return false
		}
		for _, p := range pods {
			if strings.HasPrefix(p.Metadata.Name, prefix) {
				return false
			}
		}
		return true
	})
}

// firstEvent returns the first event of type typ in evs that matches (all when match is nil).
func firstEvent(evs []*events.Event, typ string, match func(*events.Event) bool) *events.Event {
	for _, ev := range evs {
		if ev.Type == typ && (match == nil || match(ev)) {
			return ev
		}
	}
	return nil
}

// containerID is the first container's ID as its status names it.
func containerID(p events.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 {
		return ""
	}
	return p.Status.ContainerStatuses[0].ContainerID
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// untilListening runs curl until it connects, for at most 10 s: a pod is Running once its
// process has started, which may be a moment before the process listens (no readiness probes
// here); on a loaded machine a test's first request can arrive in that moment (seen once in
// TestDeploymentPodsAnswerWithTheirOwnName). Only "connection refused" (curl's exit status 7)
// is tried again.
func untilListening(curl func() (string, error)) (string, error) {
	var out string
	var err error
	cluster.Poll(10*time.Second, func() bool {
		out, err = curl()
		return err == nil || !strings.Contains(err.Error(), "exit status 7")
	})
	return out, err
}
