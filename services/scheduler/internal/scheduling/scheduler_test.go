package scheduling

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

func TestSchedulerBindsPods(t *testing.T) {
	c := newTestCluster(t)
	c.append(
		nodeEvent(t, nodeSpec{name: "n1", milliCPU: 4000, memory: 8 << 30}),
		nodeEvent(t, nodeSpec{name: "n2", milliCPU: 4000, memory: 8 << 30}),
	)
	var pods []*events.Event
	for i := range 20 {
		pods = append(pods, podEvent(t, podSpec{name: podName(i), cpu: "100m", memory: "64Mi", owner: "web"}))
	}
	c.append(pods...)
	c.start(Config{})
	c.waitFor("20 pods bound", allBound(20))

	perNode := map[string]int{}
	c.proj.View(func(st *state.State) {
		for _, p := range st.Pods {
			perNode[p.Spec.NodeName]++
		}
	})
	if diff := cmp.Diff(map[string]int{"n1": 10, "n2": 10}, perNode); diff != "" {
		t.Errorf("replicas not spread evenly (-want +got):\n%s", diff)
	}
	for i := range 20 {
		var node string
		c.proj.View(func(st *state.State) { node = st.Pods[state.Key{Namespace: "default", Name: podName(i)}].Spec.NodeName })
		if got := c.history(events.ObjectSubject(events.KindPod, "default", podName(i))); !cmp.Equal(got, []string{"PodCreated", "PodScheduled"}) {
			t.Errorf("pod %s history = %v, want PodCreated, PodScheduled", podName(i), got)
		}
		if got := c.history(events.BindSubject(node, "default", podName(i))); !cmp.Equal(got, []string{"PodBound"}) {
			t.Errorf("bind %s history = %v, want PodBound", podName(i), got)
		}
	}
}
