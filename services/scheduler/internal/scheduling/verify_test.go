package scheduling

import (
	"fmt"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// Every decision the scheduler wrote is made again, from the log alone, on the same node: nodes
// of different sizes and labels, two Deployments (spread), pods with selectors, taints, pods
// that fit nowhere until a node joins, and batches small enough that decisions are assumed
// across batches, in flight, while the state lags behind.
func TestVerifyRerunsEveryDecision(t *testing.T) {
	c := newTestCluster(t)
	var evs []*events.Event
	for i := range 12 {
		evs = append(evs, nodeEvent(t, nodeSpec{name: fmt.Sprintf("n%02d", i), milliCPU: int64(2000 + 500*(i%3)), memory: int64(4+i%4) << 30,
			labels: map[string]string{"zone": fmt.Sprint("z", i%3)}}))
	}
	evs = append(evs, nodeEvent(t, nodeSpec{name: "db", milliCPU: 8000, memory: 32 << 30, taints: []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}}))
	c.append(evs...)
	c.start(Config{BatchSize: 7})
	pods := 0
	for i := range 60 {
		p := podSpec{name: fmt.Sprintf("web-%02d", i), cpu: "100m", memory: "128Mi", owner: "web"}
		switch i % 5 {
		case 1:
			p.owner = "api"
		case 2:
			p.selector = map[string]string{"zone": "z1"}
		case 3:
			p.tolerations = []events.Toleration{{Key: "dedicated", Operator: "Exists"}}
		}
		c.append(podEvent(t, p))
		pods++
	}
	c.append(podEvent(t, podSpec{name: "huge", cpu: "6", memory: "1Gi"}))
	c.waitFor("the huge pod is unschedulable", func(st *state.State) bool {
		return newPodInfo(st, st.Pods[state.Key{Namespace: "default", Name: "huge"}]).unschedulable != ""
	})
	c.append(nodeEvent(t, nodeSpec{name: "big", milliCPU: 16000, memory: 64 << 30}))
	pods++
	c.waitFor("every pod bound", func(st *state.State) bool {
		for _, p := range st.Pods {
			if p.Spec.NodeName == "" {
				return false
			}
		}
		return len(st.Pods) == pods
	})

	var verdicts []Verdict
	if err := Verify(c.ctx, c.log, 0, RerunOptions{}, func(v Verdict) error { verdicts = append(verdicts, v); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(verdicts) != pods {
		t.Fatalf("%d verdicts, want one per pod (%d)", len(verdicts), pods)
	}
	assumed := 0
	for _, v := range verdicts {
		if !v.Same() {
			t.Errorf("decision at seq %d (state at %d): %s on %s, re-run says %q (%v)", v.Seq, v.StateSeq, v.Pod, v.Node, v.Rerun.Node, v.Err)
		}
		if len(v.Rerun.Candidates) == 0 || v.Rerun.Candidates[0].Node != v.Rerun.Node {
			t.Errorf("%s: candidates %+v do not start with the chosen %s", v.Pod, v.Rerun.Candidates, v.Rerun.Node)
		}
		assumed += v.Rerun.Assumed
	}
	if assumed == 0 {
		t.Error("no decision was re-run with earlier ones assumed: the test does not exercise the assume cache")
	}

	// A decision the scheduler would not make (the node with least room, for a pod on an empty
	// cluster of two) is reported as diverging.
	c2 := newTestCluster(t)
	c2.append(nodeEvent(t, nodeSpec{name: "roomy", milliCPU: 8000, memory: 16 << 30}), nodeEvent(t, nodeSpec{name: "tight", milliCPU: 1000, memory: 1 << 30}))
	c2.append(podEvent(t, podSpec{name: "lone", cpu: "500m", memory: "256Mi"}))
	var seq uint64
	c2.proj.View(func(st *state.State) { seq = st.Seq })
	c2.append(mustEvent(t, events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "lone", UID: "uid-lone"}, "",
		&events.PodScheduled{UID: "uid-lone", Node: "tight", StateSeq: seq}))
	verdicts = nil
	if err := Verify(c2.ctx, c2.log, 0, RerunOptions{}, func(v Verdict) error { verdicts = append(verdicts, v); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(verdicts) != 1 || verdicts[0].Same() || verdicts[0].Rerun.Node != "roomy" {
		t.Errorf("verdicts %+v, want one diverging: recorded tight, re-run roomy", verdicts)
	}
}
