package scheduling

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"skiff.dev/events"
)

// BenchmarkUnschedulableRecord measures what naming the nodes behind each reason costs at 5,000
// nodes: the encoded PodUnschedulable's size (bytes/event) and the full pass that finds the
// reasons (ns/op), for a cluster where one reason covers every node, for a realistic mix (racks
// of tainted, cordoned and not-ready nodes, the rest full at random), and for the worst case,
// where neighbouring nodes never share a reason.
func BenchmarkUnschedulableRecord(b *testing.B) {
	const n = 5000
	for _, tc := range []struct {
		name string
		set  func(i int, nd *nodeInfo, rng *rand.Rand)
	}{
		{"one-reason", func(_ int, nd *nodeInfo, _ *rand.Rand) { nd.requestedCPU = nd.milliCPU }},
		{"mixed", func(i int, nd *nodeInfo, rng *rand.Rand) {
			switch rack := i / 40; {
			case rack%10 == 3:
				nd.taints = []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}
			case rack%25 == 7:
				nd.unschedulable = true
			case rng.IntN(100) < 2:
				nd.ready = false
			case rng.IntN(2) == 0:
				nd.requestedCPU = nd.milliCPU
			default:
				nd.requestedMemory = nd.memory
			}
		}},
		{"alternating", func(i int, nd *nodeInfo, _ *rand.Rand) {
			if i%2 == 0 {
				nd.requestedCPU = nd.milliCPU
			} else {
				nd.requestedMemory = nd.memory
			}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			nodes := make([]nodeInfo, n)
			for i := range nodes {
				nodes[i] = readyNode()
				nodes[i].name = fmt.Sprintf("node-%05d", i)
				tc.set(i, &nodes[i], rng)
			}
			ns := nodeSet{nodes: nodes}
			p := &podInfo{milliCPU: 100, memory: 64 << 20}
			chain := defaultCheckers()
			var reasons map[string]string
			for b.Loop() {
				reasons = nodeReasons(chain, p, nodes)
			}
			pl := placer{chain: chain}
			msg, counts := unschedulableMessage(n, pl.place(p, nodes, nil).why)
			ev, err := events.New(testTime, events.Meta{Actor: "scheduler/r1"}, events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "big-7d4b9c6f5-x2x9q", UID: "c0ffee"}, "",
				&events.PodUnschedulable{UID: "c0ffee", Message: msg, Reasons: counts, NodeReasons: reasons, NodeSet: ns.digest(), StateSeq: 123456})
			if err != nil {
				b.Fatal(err)
			}
			data, err := ev.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			without := *ev.Data.(*events.PodUnschedulable)
			without.NodeReasons, without.NodeSet = nil, ""
			ev2, _ := events.New(testTime, events.Meta{Actor: "scheduler/r1"}, ev.Object, "", &without)
			data2, _ := ev2.Marshal()
			b.ReportMetric(float64(len(data)), "bytes/event")
			b.ReportMetric(float64(len(data2)), "bytes-without-nodes/event")
			b.ReportMetric(float64(len(reasons)), "reasons")
		})
	}
}
