package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
)

// fpgaPod asks for one unit of an extended resource the test's node advertises.
func fpgaPod(name string) string {
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q},"spec":{"terminationGracePeriodSeconds":1,`+
		`"containers":[{"name":"main","image":%q,"args":["sleep"],"resources":{"limits":{"example.com/fpga":"1"}}}]}}`+"\n", name, testboxImage)
}

// A node advertises one unit of an extended resource (--extended-resources): a pod asking for it
// runs there; a second waits Pending with kube-scheduler's reason, which skiff explain names the
// node for, and runs once the first is gone.
func TestExtendedResources(t *testing.T) {
	c := cluster.New(t, cluster.Options{AgentArgs: []string{"--extended-resources", "example.com/fpga=1"}})
	c.Apply(fpgaPod("fpga-a"))
	waitRunning(t, c, "fpga-a")
	node, err := c.Skiff("get", "node", "node1", "-o", "json")
	if err != nil || !strings.Contains(node, `"example.com/fpga": "1"`) || !strings.Contains(node, `"ephemeral-storage"`) {
		t.Errorf("node1's capacity lacks the extended resource or ephemeral storage (%v):\n%s", err, node)
	}

	c.Apply(fpgaPod("fpga-b"))
	want := "0/1 nodes are available: 1 Insufficient example.com/fpga."
	c.WaitFor("fpga-b unschedulable", func() bool {
		p, ok := c.Pod("fpga-b")
		if !ok {
			return false
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == "PodScheduled" && cond.Status == "False" && cond.Message == want {
				return true
			}
		}
		return false
	})
	out, err := c.Skiff("explain", "pod", "fpga-b")
	if err != nil || !strings.Contains(out, "Insufficient example.com/fpga  1      node1") {
		t.Errorf("skiff explain pod fpga-b (%v):\n%s", err, out)
	}

	if _, err := c.Skiff("delete", "pod", "fpga-a"); err != nil {
		t.Fatal(err)
	}
	p := waitRunning(t, c, "fpga-b")
	if p.Spec.NodeName != "node1" || p.Status.Phase != events.PodRunning {
		t.Errorf("fpga-b: %s on %q", p.Status.Phase, p.Spec.NodeName)
	}
}

// A container's environment takes the pod's own fields and its resources (the downward API), as
// the kubelet gives them: its name, namespace, IP, node and a label; its memory limit in MiB. The
// pod's hostname is spec.hostname.
func TestEnvFromThePod(t *testing.T) {
	c := cluster.New(t, cluster.Options{})
	c.Apply(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"downward","labels":{"app":"dw"}},"spec":{"hostname":"dw-host","subdomain":"dws",` +
		`"terminationGracePeriodSeconds":1,"containers":[{"name":"main","image":"` + testboxImage + `","args":["env"],` +
		`"resources":{"limits":{"memory":"64Mi"}},"env":[` +
		`{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},` +
		`{"name":"POD_NAMESPACE","valueFrom":{"fieldRef":{"fieldPath":"metadata.namespace"}}},` +
		`{"name":"POD_IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}},` +
		`{"name":"NODE_NAME","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}},` +
		`{"name":"APP","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['app']"}}},` +
		`{"name":"MEM_MI","valueFrom":{"resourceFieldRef":{"resource":"limits.memory","divisor":"1Mi"}}}]}]}}` + "\n")
	p := waitRunning(t, c, "downward") // testbox env prints its environment, then sleeps
	var out string
	c.WaitFor("downward's environment in its log", func() bool {
		var err error
		out, err = c.Skiff("logs", "downward")
		return err == nil && strings.Contains(out, "PWD=")
	})
	for _, want := range []string{"POD_NAME=downward", "POD_NAMESPACE=default", "POD_IP=" + p.Status.PodIP, "NODE_NAME=node1", "APP=dw", "MEM_MI=64", "HOSTNAME=dw-host"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("environment lacks %s:\n%s", want, out)
		}
	}
	if p.Status.PodIP == "" {
		t.Error("the pod reported no IP")
	}
}
