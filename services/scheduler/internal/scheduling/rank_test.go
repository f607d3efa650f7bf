package scheduling

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLeastAllocated(t *testing.T) {
	for _, c := range []struct {
		name             string
		pod              podInfo
		cpuCap, memCap   int64
		cpuUsed, memUsed int64
		want             int64
	}{
		{name: "empty node, empty pod", cpuCap: 4000, memCap: 8000, want: 100},
		{name: "pod takes a quarter of each", pod: podInfo{milliCPU: 1000, memory: 2000}, cpuCap: 4000, memCap: 8000, want: 75},
		{name: "half cpu used, memory free", pod: podInfo{milliCPU: 0}, cpuCap: 4000, memCap: 8000, cpuUsed: 2000, want: 75},
		{name: "full after the pod", pod: podInfo{milliCPU: 1000, memory: 1000}, cpuCap: 1000, memCap: 1000, want: 0},
		{name: "over-committed counts as full", cpuCap: 1000, memCap: 1000, cpuUsed: 2000, memUsed: 2000, want: 0},
		{name: "no capacity counts as full", pod: podInfo{milliCPU: 100}, cpuCap: 0, memCap: 1000, want: 50},
		{name: "rounds down", pod: podInfo{milliCPU: 1, memory: 1}, cpuCap: 3, memCap: 3, want: 66},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := nodeInfo{milliCPU: c.cpuCap, memory: c.memCap, requestedCPU: c.cpuUsed, requestedMemory: c.memUsed}
			if got := leastAllocated(&c.pod, &n); got != c.want {
				t.Errorf("leastAllocated = %d, want %d", got, c.want)
			}
		})
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		owner     string
		sameOwner int
		want      int64
	}{
		{owner: "", sameOwner: 5, want: 100},
		{owner: "web", sameOwner: 0, want: 100},
		{owner: "web", sameOwner: 1, want: 50},
		{owner: "web", sameOwner: 2, want: 33},
		{owner: "web", sameOwner: 99, want: 1},
		{owner: "web", sameOwner: 100, want: 0},
	} {
		t.Run(fmt.Sprintf("owner=%q same=%d", c.owner, c.sameOwner), func(t *testing.T) {
			if got := spread(&podInfo{owner: c.owner}, c.sameOwner); got != c.want {
				t.Errorf("spread = %d, want %d", got, c.want)
			}
		})
	}
}

func TestNodesToFind(t *testing.T) {
	for _, c := range []struct{ all, percent, want int }{
		{all: 0, want: 0},
		{all: 3, want: 3},
		{all: 100, want: 100},
		{all: 101, want: 100},   // 49% of 101 = 49, but never fewer than 100
		{all: 1000, want: 420},  // 50-8 = 42%
		{all: 5000, want: 500},  // 50-40 = 10%
		{all: 10000, want: 500}, // floor of 5%
		{all: 5000, percent: 100, want: 5000},
		{all: 5000, percent: 1, want: 100},
	} {
		if got := nodesToFind(c.all, c.percent); got != c.want {
			t.Errorf("nodesToFind(%d, %d) = %d, want %d", c.all, c.percent, got, c.want)
		}
	}
}

func TestPlace(t *testing.T) {
	nodes := func(used ...int64) []nodeInfo {
		var ns []nodeInfo
		for i, u := range used {
			n := readyNode()
			n.name = fmt.Sprintf("n%d", i)
			n.requestedCPU, n.requestedMemory = u, u*n.memory/n.milliCPU // same share of both
			ns = append(ns, n)
		}
		return ns
	}
	for _, c := range []struct {
		name      string
		nodes     []nodeInfo
		pod       podInfo
		sameOwner map[int]int
		want      placement
	}{
		{name: "least allocated wins", nodes: nodes(2000, 1000, 3000),
			want: placement{node: 1, score: 175 + 0, feasible: 3, evaluated: 3}},
		{name: "spread beats a little more room", nodes: nodes(1000, 1200), pod: podInfo{owner: "web"}, sameOwner: map[int]int{0: 1},
			want: placement{node: 1, score: 70 + 100, feasible: 2, evaluated: 2}},
		{name: "ties go to the first looked at", nodes: nodes(0, 0, 0), pod: podInfo{start: 1},
			want: placement{node: 1, score: 200, feasible: 3, evaluated: 3}},
		{name: "infeasible nodes are skipped", nodes: nodes(4000, 3900, 1000), pod: podInfo{milliCPU: 200},
			want: placement{node: 2, score: (70+75)/2 + 100, feasible: 1, evaluated: 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pl := placer{chain: defaultCheckers()}
			got := pl.place(&c.pod, c.nodes, c.sameOwner)
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(placement{}, reason{})); diff != "" {
				t.Errorf("placement (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlaceStopsEarlyFromThePodsStart checks the limited search on a large cluster: it starts at
// the pod's own node (a hash of its UID), stops once it found enough feasible nodes, and decides
// the same whatever was placed before.
func TestPlaceStopsEarlyFromThePodsStart(t *testing.T) {
	ns := make([]nodeInfo, 1000)
	for i := range ns {
		ns[i] = readyNode()
		ns[i].name = fmt.Sprintf("n%04d", i)
	}
	ns[0].ready = false // one infeasible node is looked at but does not count
	pl := placer{chain: defaultCheckers()}
	first := pl.place(&podInfo{start: 1000}, ns, nil) // starts at node 0
	if first.feasible != 420 || first.evaluated != 421 || first.node != 1 {
		t.Errorf("first pod: feasible=%d evaluated=%d node=%d, want 420, 421, 1", first.feasible, first.evaluated, first.node)
	}
	a, b := podInfo{uid: "3f1c", start: searchStart("3f1c")}, podInfo{uid: "9e07", start: searchStart("9e07")}
	wantA, wantB := int(a.start%1000), int(b.start%1000)
	if wantA == wantB {
		t.Fatalf("test UIDs hash to the same start %d", wantA)
	}
	for range 2 {
		if got := pl.place(&a, ns, nil); got.node != wantA {
			t.Errorf("pod %s went to node %d, want %d (its start)", a.uid, got.node, wantA)
		}
		if got := pl.place(&b, ns, nil); got.node != wantB {
			t.Errorf("pod %s went to node %d, want %d (its start)", b.uid, got.node, wantB)
		}
	}
}
