package scheduling

import (
	"context"
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/telemetry"
)

// bigState folds nodes nodes and pods pending pods (owned by Deployments of 100) into a state,
// without a log: the pure parts of a pass are measured on it.
func bigState(b *testing.B, nodes, pods int) *state.State {
	b.Helper()
	st := state.New()
	seq := uint64(0)
	apply := func(ev *events.Event) {
		seq++
		ev.Seq = seq
		if err := st.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	for i := range nodes {
		apply(nodeEvent(b, nodeSpec{name: fmt.Sprintf("n%05d", i), milliCPU: 32000, memory: 256 << 30}))
	}
	for i := range pods {
		apply(podEvent(b, podSpec{name: fmt.Sprintf("p%06d", i), cpu: "100m", memory: "128Mi", owner: fmt.Sprintf("d%04d", i/100)}))
	}
	return st
}

// BenchmarkDecideBatch measures deciding one batch (default size) at 5,000 nodes: the two short
// read locks and the placement of every pod, without writing.
func BenchmarkDecideBatch(b *testing.B) { benchDecideBatch(b, nil) }

// BenchmarkDecideBatchTraced is BenchmarkDecideBatch with tracing on: what the loop adds (the
// clock reads of placement, each pod's noted times, the batch's span), not the writer's
// recording of the pods' spans (BenchmarkTracePod).
func BenchmarkDecideBatchTraced(b *testing.B) {
	spans, err := telemetry.NewSpanBatcher(b.Context(), &benchClient{}, telemetry.BatcherConfig{Scope: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = spans.Shutdown(context.Background()) })
	benchDecideBatch(b, spans)
}

func benchDecideBatch(b *testing.B, spans *telemetry.SpanBatcher) {
	st := bigState(b, 5000, 30000)
	proj := live.New(st, nil)
	s := New(Config{Projection: proj, Spans: spans})
	var cands []candidate
	proj.View(func(st *state.State) { cands = s.candidatesIn(st, nil) })
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := (i * s.cfg.BatchSize) % (len(cands) - s.cfg.BatchSize)
		batch := s.decide(cands[start:start+s.cfg.BatchSize], time.Now())
		clear(s.assumed) // as if the projection had caught up
		if len(batch.decisions) != s.cfg.BatchSize {
			b.Fatalf("decided %d of %d", len(batch.decisions), s.cfg.BatchSize)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*s.cfg.BatchSize), "ns/pod")
}

// BenchmarkLockHolds measures what a pass does under the projection's read lock on a cluster
// of 5,000 nodes and 150,000 pods: collecting the pending pods, copying the nodes, and the
// gap finisher's scan over every pod.
func BenchmarkLockHolds(b *testing.B) {
	st := bigState(b, 5000, 150000)
	s := New(Config{Projection: live.New(st, nil)})
	b.Run("candidates/150000-pending", func(b *testing.B) {
		var cands []candidate
		for b.Loop() {
			cands = s.candidatesIn(st, cands[:0])
		}
	})
	b.Run("nodes/5000", func(b *testing.B) {
		for b.Loop() {
			s.nodes.snapshot(st, s.assumed)
		}
	})
	b.Run("gaps/150000-pods", func(b *testing.B) {
		for b.Loop() {
			s.gapsIn(st, false)
		}
	})
}
