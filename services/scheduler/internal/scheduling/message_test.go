package scheduling

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

func TestUnschedulableMessage(t *testing.T) {
	for _, c := range []struct {
		name        string
		nodes       int
		why         map[reason]int
		wantMsg     string
		wantReasons map[string]int
	}{
		{
			name:        "memory and a taint, sorted as kube-scheduler sorts them",
			nodes:       3,
			why:         map[reason]int{{code: reasonInsufficientMemory}: 2, {code: reasonUntoleratedTaint, key: "dedicated", value: "db"}: 1},
			wantMsg:     "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 Insufficient memory.",
			wantReasons: map[string]int{"Insufficient memory": 2, "node(s) had untolerated taint {dedicated: db}": 1},
		},
		{
			name:        "one reason",
			nodes:       5,
			why:         map[reason]int{{code: reasonInsufficientCPU}: 5},
			wantMsg:     "0/5 nodes are available: 5 Insufficient cpu.",
			wantReasons: map[string]int{"Insufficient cpu": 5},
		},
		{
			name:  "every constant reason",
			nodes: 12,
			why: map[reason]int{
				{code: reasonNotReady}: 1, {code: reasonUnschedulable}: 2, {code: reasonNodeSelector}: 3,
				{code: reasonTooManyPods}: 4, {code: reasonInsufficientCPU}: 1, {code: reasonInsufficientMemory}: 1,
			},
			wantMsg: "0/12 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) were not ready, " +
				"2 node(s) were unschedulable, 3 node(s) didn't match Pod's node affinity/selector, 4 Too many pods.",
			wantReasons: map[string]int{
				"node(s) were not ready": 1, "node(s) were unschedulable": 2, "node(s) didn't match Pod's node affinity/selector": 3,
				"Too many pods": 4, "Insufficient cpu": 1, "Insufficient memory": 1,
			},
		},
		{
			name:  "taints with and without value",
			nodes: 3,
			why: map[reason]int{
				{code: reasonUntoleratedTaint, key: "gpu"}:                              2,
				{code: reasonUntoleratedTaint, key: "node.kubernetes.io/disk-pressure"}: 1,
			},
			wantMsg:     "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }, 2 node(s) had untolerated taint {gpu: }.",
			wantReasons: map[string]int{"node(s) had untolerated taint {gpu: }": 2, "node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }": 1},
		},
		{
			name:    "no nodes at all",
			nodes:   0,
			why:     map[reason]int{},
			wantMsg: "no nodes available to schedule pods",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg, reasons := unschedulableMessage(c.nodes, c.why)
			if msg != c.wantMsg {
				t.Errorf("message:\n got %q\nwant %q", msg, c.wantMsg)
			}
			if diff := cmp.Diff(c.wantReasons, reasons); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlaceNowhere runs the whole chain over a small cluster where nothing fits, as in the
// package doc's example.
func TestPlaceNowhere(t *testing.T) {
	small := func(name string) nodeInfo {
		n := readyNode()
		n.name, n.memory = name, 1<<30
		return n
	}
	tainted := readyNode()
	tainted.name = "db-1"
	tainted.taints = []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}
	nodes := []nodeInfo{small("a"), small("b"), tainted}
	pl := placer{chain: defaultCheckers()}
	got := pl.place(&podInfo{memory: 2 << 30}, nodes, nil)
	if got.node != -1 || got.evaluated != 3 {
		t.Fatalf("placed on %d after %d nodes, want nowhere after all 3", got.node, got.evaluated)
	}
	msg, _ := unschedulableMessage(len(nodes), got.why)
	if want := "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 Insufficient memory."; msg != want {
		t.Errorf("message:\n got %q\nwant %q", msg, want)
	}
}

// A pod wanting a GPU on a cluster where one node has two, both taken, and two have none:
// kube-scheduler's words, one count per resource.
func TestUnschedulableMessageNamesExtendedResources(t *testing.T) {
	nodes := []nodeInfo{readyNode(), readyNode(), readyNode()}
	nodes[0].name, nodes[1].name, nodes[2].name = "a", "b", "gpu-1"
	nodes[2].extended, nodes[2].requestedExtended = map[string]int64{"nvidia.com/gpu": 2}, map[string]int64{"nvidia.com/gpu": 2}
	pl := placer{chain: defaultCheckers()}
	p := &podInfo{extra: &events.ExtraResources{Extended: map[string]int64{"nvidia.com/gpu": 1}}}
	res := pl.place(p, nodes, nil)
	if res.node >= 0 {
		t.Fatalf("placed on %s", nodes[res.node].name)
	}
	msg, _ := unschedulableMessage(len(nodes), res.why)
	if want := "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."; msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	// A decision counts its GPUs on the node, so a second pod of the same batch does not take
	// the same one.
	nodes[2].requestedExtended = map[string]int64{"nvidia.com/gpu": 1}
	shared := nodes[2].requestedExtended
	res = pl.place(p, nodes, nil)
	if res.node != 2 {
		t.Fatalf("one GPU free on gpu-1: placed on %d", res.node)
	}
	nodes[2].take(0, 0, p.extra)
	if got := pl.place(p, nodes, nil); got.node >= 0 {
		t.Errorf("after taking the last GPU, the next pod was placed on %s", nodes[got.node].name)
	}
	if shared["nvidia.com/gpu"] != 1 {
		t.Errorf("taking a GPU wrote into the map the state shares (now %d)", shared["nvidia.com/gpu"])
	}
}
