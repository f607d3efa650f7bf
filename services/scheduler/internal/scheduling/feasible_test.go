package scheduling

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

// readyNode is a Ready, empty node with 4 CPUs, 8 GiB and 10 pod slots.
func readyNode() nodeInfo {
	return nodeInfo{name: "n", ready: true, milliCPU: 4000, memory: 8 << 30, maxPods: 10,
		labels: map[string]string{"disk": "ssd", "zone": "a"}}
}

func TestCheckers(t *testing.T) {
	type tc struct {
		name    string
		checker checker
		pod     podInfo
		node    func(n *nodeInfo)
		want    []reason
	}
	untolerated := func(k, v string) []reason { return []reason{{code: reasonUntoleratedTaint, key: k, value: v}} }
	for _, c := range []tc{
		{name: "ready/ready node", checker: readyChecker{}},
		{name: "ready/not ready node", checker: readyChecker{}, node: func(n *nodeInfo) { n.ready = false }, want: []reason{{code: reasonNotReady}}},

		{name: "cordon/schedulable", checker: cordonChecker{}},
		{name: "cordon/cordoned", checker: cordonChecker{}, node: func(n *nodeInfo) { n.unschedulable = true }, want: []reason{{code: reasonUnschedulable}}},

		{name: "taints/none", checker: taintChecker{}},
		{name: "taints/NoSchedule untolerated", checker: taintChecker{},
			node: func(n *nodeInfo) { n.taints = []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}} },
			want: untolerated("dedicated", "db")},
		{name: "taints/NoExecute untolerated", checker: taintChecker{},
			node: func(n *nodeInfo) { n.taints = []events.Taint{{Key: "gpu", Effect: "NoExecute"}} },
			want: untolerated("gpu", "")},
		{name: "taints/PreferNoSchedule is not a rule", checker: taintChecker{},
			node: func(n *nodeInfo) { n.taints = []events.Taint{{Key: "spot", Value: "true", Effect: "PreferNoSchedule"}} }},
		{name: "taints/tolerated by Equal", checker: taintChecker{},
			pod:  podInfo{tolerations: []events.Toleration{{Key: "dedicated", Operator: "Equal", Value: "db", Effect: "NoSchedule"}}},
			node: func(n *nodeInfo) { n.taints = []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}} }},
		{name: "taints/tolerated by Exists on the key", checker: taintChecker{},
			pod:  podInfo{tolerations: []events.Toleration{{Key: "dedicated", Operator: "Exists"}}},
			node: func(n *nodeInfo) { n.taints = []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoExecute"}} }},
		{name: "taints/tolerated by Exists without key", checker: taintChecker{},
			pod: podInfo{tolerations: []events.Toleration{{Operator: "Exists"}}},
			node: func(n *nodeInfo) {
				n.taints = []events.Taint{{Key: "a", Effect: "NoSchedule"}, {Key: "b", Effect: "NoExecute"}}
			}},
		{name: "taints/other value not tolerated", checker: taintChecker{},
			pod:  podInfo{tolerations: []events.Toleration{{Key: "dedicated", Operator: "Equal", Value: "web", Effect: "NoSchedule"}}},
			node: func(n *nodeInfo) { n.taints = []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}} },
			want: untolerated("dedicated", "db")},
		{name: "taints/other effect not tolerated", checker: taintChecker{},
			pod:  podInfo{tolerations: []events.Toleration{{Key: "dedicated", Operator: "Exists", Effect: "NoSchedule"}}},
			node: func(n *nodeInfo) { n.taints = []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoExecute"}} },
			want: untolerated("dedicated", "db")},
		{name: "taints/first untolerated is named", checker: taintChecker{},
			pod: podInfo{tolerations: []events.Toleration{{Key: "a", Operator: "Exists"}}},
			node: func(n *nodeInfo) {
				n.taints = []events.Taint{{Key: "a", Effect: "NoSchedule"}, {Key: "b", Value: "1", Effect: "NoSchedule"}, {Key: "c", Effect: "NoSchedule"}}
			},
			want: untolerated("b", "1")},

		{name: "selector/empty matches all", checker: selectorChecker{}},
		{name: "selector/matches", checker: selectorChecker{}, pod: podInfo{selector: map[string]string{"disk": "ssd", "zone": "a"}}},
		{name: "selector/wrong value", checker: selectorChecker{}, pod: podInfo{selector: map[string]string{"disk": "hdd"}},
			want: []reason{{code: reasonNodeSelector}}},
		{name: "selector/missing label", checker: selectorChecker{}, pod: podInfo{selector: map[string]string{"gpu": "a100"}},
			want: []reason{{code: reasonNodeSelector}}},
		{name: "selector/empty value is not a missing label", checker: selectorChecker{}, pod: podInfo{selector: map[string]string{"gpu": ""}},
			want: []reason{{code: reasonNodeSelector}}},

		{name: "resources/fits", checker: resourceChecker{}, pod: podInfo{milliCPU: 1000, memory: 1 << 30}},
		{name: "resources/fits exactly", checker: resourceChecker{}, pod: podInfo{milliCPU: 1000, memory: 1 << 30},
			node: func(n *nodeInfo) { n.requestedCPU, n.requestedMemory, n.podCount = 3000, 7<<30, 9 }},
		{name: "resources/too many pods", checker: resourceChecker{},
			node: func(n *nodeInfo) { n.podCount = 10 }, want: []reason{{code: reasonTooManyPods}}},
		{name: "resources/insufficient cpu", checker: resourceChecker{}, pod: podInfo{milliCPU: 1001},
			node: func(n *nodeInfo) { n.requestedCPU = 3000 }, want: []reason{{code: reasonInsufficientCPU}}},
		{name: "resources/insufficient memory", checker: resourceChecker{}, pod: podInfo{memory: 1 << 30},
			node: func(n *nodeInfo) { n.requestedMemory = 7<<30 + 1 }, want: []reason{{code: reasonInsufficientMemory}}},
		{name: "resources/everything short is reported", checker: resourceChecker{}, pod: podInfo{milliCPU: 5000, memory: 9 << 30},
			node: func(n *nodeInfo) { n.podCount = 10 },
			want: []reason{{code: reasonTooManyPods}, {code: reasonInsufficientCPU}, {code: reasonInsufficientMemory}}},
		{name: "resources/extended resource the node advertises", checker: resourceChecker{},
			pod:  podInfo{extra: &events.ExtraResources{Extended: map[string]int64{"nvidia.com/gpu": 1}}},
			node: func(n *nodeInfo) { n.extended = map[string]int64{"nvidia.com/gpu": 2} }},
		{name: "resources/extended resource all taken", checker: resourceChecker{},
			pod: podInfo{extra: &events.ExtraResources{Extended: map[string]int64{"nvidia.com/gpu": 1}}},
			node: func(n *nodeInfo) {
				n.extended, n.requestedExtended = map[string]int64{"nvidia.com/gpu": 2}, map[string]int64{"nvidia.com/gpu": 2}
			},
			want: []reason{{code: reasonInsufficientResource, key: "nvidia.com/gpu"}}},
		{name: "resources/extended resource the node lacks", checker: resourceChecker{},
			pod:  podInfo{extra: &events.ExtraResources{Extended: map[string]int64{"example.com/fpga": 1}}},
			want: []reason{{code: reasonInsufficientResource, key: "example.com/fpga"}}},
		{name: "resources/ephemeral storage", checker: resourceChecker{},
			pod:  podInfo{extra: &events.ExtraResources{EphemeralStorage: 2 << 30}},
			node: func(n *nodeInfo) { n.ephemeral, n.requestedEphemeral = 10<<30, 9<<30 },
			want: []reason{{code: reasonInsufficientResource, key: "ephemeral-storage"}}},
		{name: "resources/zero request fits an overcommitted node", checker: resourceChecker{},
			node: func(n *nodeInfo) { n.requestedCPU, n.requestedMemory = 5000, 9<<30 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := readyNode()
			if c.node != nil {
				c.node(&n)
			}
			got := c.checker.check(&c.pod, &n, nil)
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(reason{})); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChainOrder checks that the first objecting checker decides, in the documented order.
func TestChainOrder(t *testing.T) {
	for _, c := range []struct {
		name string
		node func(n *nodeInfo)
		want []reason
	}{
		{name: "feasible", node: func(*nodeInfo) {}},
		{name: "not ready beats everything", node: func(n *nodeInfo) {
			n.ready, n.unschedulable, n.podCount = false, true, 10
		}, want: []reason{{code: reasonNotReady}}},
		{name: "cordon beats taints", node: func(n *nodeInfo) {
			n.unschedulable = true
			n.taints = []events.Taint{{Key: "k", Effect: "NoSchedule"}}
		}, want: []reason{{code: reasonUnschedulable}}},
		{name: "taints beat selector", node: func(n *nodeInfo) {
			n.taints = []events.Taint{{Key: "k", Value: "v", Effect: "NoSchedule"}}
			n.labels = nil
		}, want: []reason{{code: reasonUntoleratedTaint, key: "k", value: "v"}}},
		{name: "selector beats resources", node: func(n *nodeInfo) {
			n.labels = nil
			n.podCount = 10
		}, want: []reason{{code: reasonNodeSelector}}},
		{name: "resources last", node: func(n *nodeInfo) { n.podCount = 10 }, want: []reason{{code: reasonTooManyPods}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := readyNode()
			c.node(&n)
			p := podInfo{selector: map[string]string{"disk": "ssd"}, milliCPU: 100}
			got := feasible(defaultCheckers(), &p, &n, nil)
			if len(got) == 0 {
				got = nil
			}
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(reason{})); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
		})
	}
}
