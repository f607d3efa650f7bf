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
