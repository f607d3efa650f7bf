package table

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// bigCluster folds 30,000 running pods over 100 nodes, the size `skiff get pods` must answer
// well under a second for.
func bigCluster(b *testing.B) *state.State {
	b.Helper()
	c := newCluster(b)
	for n := range 100 {
		c.apply(0, events.ObjectRef{Kind: events.KindNode, Name: fmt.Sprintf("n%03d", n)}, "",
			&events.NodeRegistered{Address: fmt.Sprintf("10.0.%d.1", n), MilliCPU: 64000, Memory: 256 << 30, MaxPods: 500})
	}
	for i := range 30000 {
		name, uid, node := fmt.Sprintf("web-%05d", i), fmt.Sprintf("uid-%d", i), fmt.Sprintf("n%03d", i%100)
		ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: uid}
		c.apply(time.Minute, ref, "", &events.PodCreated{Pod: pod("default", name, uid, map[string]string{"app": "web"}, "web")})
		c.apply(time.Minute, ref, "", &events.PodScheduled{UID: uid, Node: node})
		c.apply(2*time.Minute, ref, node, &events.PodStatusReported{UID: uid, Status: events.PodStatus{
			Phase: events.PodRunning, PodIP: fmt.Sprintf("10.88.%d.%d", i%100, i/100), ContainerStatuses: []events.ContainerStatus{running("web")}}})
	}
	return c.st
}

// BenchmarkRows30kPods measures what a query handler spends turning 30,000 pods into rows.
func BenchmarkRows30kPods(b *testing.B) {
	st := bigCluster(b)
	for _, wide := range []bool{false, true} {
		b.Run(fmt.Sprintf("wide=%v", wide), func(b *testing.B) {
			for b.Loop() {
				if rows := Rows(st, Pods, Options{Wide: wide}, now); len(rows) != 30000 {
					b.Fatalf("%d rows", len(rows))
				}
			}
		})
	}
	b.Run("one-by-name", func(b *testing.B) {
		for b.Loop() {
			if rows := Rows(st, Pods, Options{Name: "web-12345"}, now); len(rows) != 1 {
				b.Fatalf("%d rows", len(rows))
			}
		}
	})
}
