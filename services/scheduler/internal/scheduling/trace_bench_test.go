package scheduling

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/telemetry"
)

// benchClient is an OTLP client that sends nowhere: the benchmark measures the scheduler's side
// of tracing (spans, traceparents, the batcher), not a transport. With encode it marshals each
// request as the real clients do before sending.
type benchClient struct {
	encode bool
	spans  atomic.Int64
}

func (c *benchClient) Start(context.Context) error { return nil }
func (c *benchClient) Stop(context.Context) error  { return nil }
func (c *benchClient) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	for _, r := range rs {
		for _, ss := range r.ScopeSpans {
			c.spans.Add(int64(len(ss.Spans)))
		}
	}
	if c.encode {
		for _, r := range rs {
			if _, err := proto.Marshal(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// BenchmarkTracePod measures recording one placed pod's spans (schedule pod, filter, score) and
// producing the traceparent its events carry, through the batcher as Setup builds it, to a
// client that discards the requests or only encodes them.
func BenchmarkTracePod(b *testing.B) {
	for _, encode := range []bool{false, true} {
		name := "discard"
		if encode {
			name = "encode"
		}
		b.Run(name, func(b *testing.B) {
			client := &benchClient{encode: encode}
			batcher, err := telemetry.NewSpanBatcher(context.Background(), client, telemetry.BatcherConfig{Scope: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			s := New(Config{Spans: batcher})
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
				// Recording in a loop outruns the exporting goroutine, which would drop
				// batches (not encoding them): wait for it now and then, as the log's
				// round trips make the writer do.
				if i%4096 == 4095 {
					if err := batcher.ForceFlush(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := batcher.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
			if st := batcher.Stats(); st.Dropped > 0 {
				b.Fatalf("%d spans dropped", st.Dropped)
			}
		})
	}
}
