package podlifecycle

import (
	"fmt"
	"testing"

	"skiff.dev/events"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
)

// A pass looks at the pods that changed, those on a node that changed and those still on their
// way out; never at every pod.
func TestPassLooksOnlyAtWhatChanged(t *testing.T) {
	c := ct.NewCluster(t)
	c.RegisterNode("n1", "192.168.0.1")
	c.RegisterNode("n2", "192.168.0.2")
	ctl := newController(c, Config{})
	var pods []events.ObjectRef
	for i := range 6 {
		ref := c.CreatePod("default", fmt.Sprintf("p%d", i), nil)
		c.RunPod(ref, fmt.Sprintf("n%d", i%2+1), fmt.Sprintf("10.88.0.%d", i+2))
		pods = append(pods, ref)
	}
	step := func(what string, wantLooked int, want ...string) {
		t.Helper()
		before := ctl.looked
		expectStep(t, c, ctl, what, want...)
		if got := ctl.looked - before; got != wantLooked {
			t.Errorf("%s: looked at %d pods, want %d", what, got, wantLooked)
		}
	}
	step("first pass", 6)
	step("nothing changed", 0)
	c.Append(pods[0], "", &events.PodDeletionRequested{UID: pods[0].UID, GracePeriodSeconds: 5})
	step("p0 deleted", 1, "PodStopRequested skiff.ev.bind.n1.default.p0")
	step("p0 on its way out, its stop written", 1)
	c.Append(ct.NodeRef("n2"), "", &events.NodeNotReady{Reason: "NodeStatusUnknown"})
	// n2's three pods, and p0 still waiting for its node.
	step("n2 not ready", 4)
	step("n2's pods wait for their toleration", 4)
}
