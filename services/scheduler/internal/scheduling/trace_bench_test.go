package scheduling

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// discard is an exporter that drops what it gets: the benchmark measures the scheduler's side
// of tracing (spans, traceparents, the batch processor), not a transport.
type discard struct{ spans int }

func (d *discard) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	d.spans += len(spans)
	return nil
}
func (d *discard) Shutdown(context.Context) error { return nil }

// BenchmarkTracePod measures recording one placed pod's spans (schedule pod, filter, score) and
// producing the traceparent its events carry, with the SDK's batch processor as Setup builds it.
func BenchmarkTracePod(b *testing.B) {
	exp := &discard{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBlocking()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := New(Config{Tracer: tp.Tracer("bench")})
	pods := make([]podInfo, 1000)
	for i := range pods {
		pods[i] = podInfo{
			key:   state.Key{Namespace: "default", Name: fmt.Sprintf("deploy-%05d-%06d", i/100, i)},
			cause: events.Cause{ID: events.NewID(), Traceparent: fmt.Sprintf("00-%032x-%016x-01", i/100+1, i/100+1)},
		}
	}
	start := time.Now()
	pt := &podTrace{
		start: start, end: start.Add(40 * time.Microsecond), nodes: 1000, chosen: "node-00042",
		score: 87, feasible: 120, evaluated: 130, filterTime: 3 * time.Microsecond, scoreTime: time.Microsecond,
	}
	var tracing podTracing
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tp := s.tracePod(&tracing, &pods[i%len(pods)], pt)
		if len(tp) != 55 {
			b.Fatalf("traceparent %q", tp)
		}
	}
}
