package telemetry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"skiff.dev/events/eventstest"
	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
)

// A rollout's traceparent, sampled, as the deployments controller writes it on a PodCreated.
const (
	rolloutTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	rolloutSpan   = "00f067aa0ba902b7"
	rolloutParent = "00-" + rolloutTrace + "-" + rolloutSpan + "-01"
)

// batched is a provider with a batcher, exporting over protocol to a fresh receiver, with env
// (KEY=VALUE) set on top of the receiver's.
func batched(t *testing.T, protocol string, env ...string) (*telemetrytest.Receiver, *telemetry.Provider) {
	t.Helper()
	clearEnv(t)
	for _, k := range []string{"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
	r := telemetrytest.New(t)
	setEnv(t, r.Env(protocol))
	setEnv(t, env)
	p, err := telemetry.Setup(context.Background(), telemetry.Config{Service: telemetry.ServiceScheduler, Instance: "replica-a", Batcher: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Batcher() == nil {
		t.Fatal("Setup with Batcher made no batcher")
	}
	return r, p
}

// The batcher's spans reach a real receiver over both protocols as the SDK's would: the same
// resource, scope, kind and flags as a span the SDK makes from the same input, the parent's
// trace, the children's parents, links, attributes and times.
func TestBatcherSpans(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(protocol, func(t *testing.T) {
			r, p := batched(t, protocol, "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=test")
			ctx := context.Background()
			b := p.Batcher()
			start := time.Unix(1_700_000_000, 123)
			end := start.Add(40 * time.Microsecond)
			attrs := []attribute.KeyValue{telemetry.PodKey.String("web-1"), attribute.Int("skiff.scheduling.nodes", 3),
				attribute.Bool("skiff.test.bool", true), attribute.Float64("skiff.test.ratio", 0.5),
				attribute.StringSlice("skiff.test.list", []string{"a", "b"})}

			pod := b.Record(&telemetry.Span{Name: "schedule pod", Parent: telemetry.SpanContext(rolloutParent),
				Start: start, End: end, Attributes: attrs})
			filter := b.Record(&telemetry.Span{Name: "filter", Parent: pod, Start: start, End: end.Add(-time.Microsecond),
				Attributes: []attribute.KeyValue{attribute.Int("skiff.scheduling.evaluated", 3)}})
			other := telemetry.SpanContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			batch := b.Record(&telemetry.Span{Name: "schedule batch", Start: start, End: end, Kind: trace.SpanKindConsumer,
				Links: []trace.Link{{SpanContext: telemetry.SpanContext(rolloutParent)}, {SpanContext: other}}})
			// The same pod span through the SDK.
			_, sdkPod := p.Tracer().Start(telemetry.Remote(ctx, rolloutParent), "sdk schedule pod",
				trace.WithTimestamp(start), trace.WithAttributes(attrs...))
			sdkPod.End(trace.WithTimestamp(end))
			_, sdkBatch := p.Tracer().Start(ctx, "sdk schedule batch", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithLinks(trace.Link{SpanContext: other}))
			sdkBatch.End()
			if err := p.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			got := map[string]telemetrytest.Span{}
			for _, s := range r.Spans() {
				got[s.Name] = s
			}
			if len(got) != 5 {
				t.Fatalf("received %v, want 5 spans after Shutdown", names(r.Spans()))
			}
			sp, sdk := got["schedule pod"], got["sdk schedule pod"]
			if sp.TraceID != rolloutTrace || sp.ParentID != rolloutSpan || sp.SpanID != pod.SpanID().String() {
				t.Errorf("pod span trace %s parent %s id %s; want trace %s parent %s id %s",
					sp.TraceID, sp.ParentID, sp.SpanID, rolloutTrace, rolloutSpan, pod.SpanID())
			}
			if want := "00-" + rolloutTrace + "-" + sp.SpanID + "-01"; telemetry.FormatTraceparent(pod) != want {
				t.Errorf("traceparent %q, want %q", telemetry.FormatTraceparent(pod), want)
			}
			// What the SDK decides for itself (resource, scope, kind, flags, attributes) must
			// not differ; ids and the name do.
			norm := func(s telemetrytest.Span) telemetrytest.Span {
				s.SpanID, s.Name, s.Links = "", "", nil
				return s
			}
			if diff := cmp.Diff(norm(sdk), norm(sp)); diff != "" {
				t.Errorf("batcher's pod span differs from the SDK's (-sdk +batcher):\n%s", diff)
			}
			if sp.Resource["deployment.environment.name"] != "test" || sp.Resource["telemetry.sdk.language"] != "go" ||
				sp.Service != telemetry.ServiceScheduler || sp.Instance != "replica-a" || sp.Scope != "skiff.dev/"+telemetry.ServiceScheduler {
				t.Errorf("resource %v scope %q", sp.Resource, sp.Scope)
			}
			wantFlags := uint32(trace.FlagsSampled) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
			if sp.Flags != wantFlags|uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) {
				t.Errorf("pod span flags %#x: want sampled, parent remote", sp.Flags)
			}
			if sp.Start != uint64(start.UnixNano()) || sp.End != uint64(end.UnixNano()) {
				t.Errorf("pod span from %d to %d, want %d to %d", sp.Start, sp.End, start.UnixNano(), end.UnixNano())
			}

			f := got["filter"]
			if f.TraceID != rolloutTrace || f.ParentID != sp.SpanID || f.SpanID != filter.SpanID().String() ||
				f.Flags != wantFlags || f.Attrs["skiff.scheduling.evaluated"] != "3" || f.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
				t.Errorf("filter span %+v: want a local child of the pod span with its attribute", f)
			}

			bs, sdkB := got["schedule batch"], got["sdk schedule batch"]
			if bs.ParentID != "" || bs.TraceID == rolloutTrace || bs.TraceID != batch.TraceID().String() || bs.Kind != sdkB.Kind || bs.Flags != sdkB.Flags {
				t.Errorf("batch span %+v: want a root of a new trace, kind and flags as the SDK's %+v", bs, sdkB)
			}
			wantLinks := []telemetrytest.Link{{TraceID: rolloutTrace, SpanID: rolloutSpan}, {TraceID: other.TraceID().String(), SpanID: other.SpanID().String()}}
			if diff := cmp.Diff(wantLinks, bs.Links); diff != "" {
				t.Errorf("batch span links (-want +got):\n%s", diff)
			}
			if st := b.Stats(); st != (telemetry.BatcherStats{Exported: 3}) {
				t.Errorf("stats %+v, want 3 exported", st)
			}
		})
	}
}

// A burst of 10,000 spans recorded at once, more than five times a batch, all arrive.
func TestBatcherBurst(t *testing.T) {
	r, p := batched(t, "grpc")
	parent := telemetry.SpanContext(rolloutParent)
	const n = 10_000
	now := time.Now()
	for i := range n {
		p.Batcher().Record(&telemetry.Span{Name: "schedule pod", Parent: parent, Start: now, End: now,
			Attributes: []attribute.KeyValue{attribute.Int("i", i)}})
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.Count(); got != n {
		t.Fatalf("received %d of %d spans recorded at once", got, n)
	}
	seen := map[string]bool{}
	for _, s := range r.Spans() {
		seen[s.Attrs["i"]] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct spans among %d received", len(seen), n)
	}
	if st := p.Batcher().Stats(); st != (telemetry.BatcherStats{Exported: n}) {
		t.Fatalf("stats %+v, want %d exported", st, n)
	}
}

// ForceFlush and Shutdown export what was recorded before them, however long the delay; a span
// recorded after Shutdown is counted as dropped.
func TestBatcherFlush(t *testing.T) {
	r, p := batched(t, "grpc", "OTEL_BSP_SCHEDULE_DELAY=3600000")
	ctx := context.Background()
	b := p.Batcher()
	record := func(n int) {
		for range n {
			b.Record(&telemetry.Span{Name: "x", Start: time.Now(), End: time.Now()})
		}
	}
	record(3)
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Count(); got != 3 {
		t.Fatalf("after ForceFlush: %d spans received, want 3", got)
	}
	record(2)
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Count(); got != 5 {
		t.Fatalf("after Shutdown: %d spans received, want 5", got)
	}
	record(1)
	if err := b.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st != (telemetry.BatcherStats{Exported: 5, Dropped: 1}) || r.Count() != 5 {
		t.Fatalf("stats %+v, %d received; want 5 exported, 1 dropped after Shutdown", st, r.Count())
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// A partial batch goes out after the delay, with no flush.
func TestBatcherDelay(t *testing.T) {
	r, p := batched(t, "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY=50")
	p.Batcher().Record(&telemetry.Span{Name: "x", Start: time.Now(), End: time.Now()})
	eventstest.Eventually(t, eventstest.Timeout, "the span exported after the delay", func() bool { return r.Count() == 1 })
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The sampling decision is the SDK's: by default a child follows its parent's sampled flag and
// a root is sampled; OTEL_TRACES_SAMPLER changes it. A span not sampled is not exported, but
// its context (the parent's trace, a new span id, not sampled) is returned for the events it
// causes.
func TestBatcherSampling(t *testing.T) {
	notSampled := "00-" + rolloutTrace + "-" + rolloutSpan + "-00"
	for _, tc := range []struct {
		name     string
		env      []string
		parent   string
		exported bool
	}{
		{"parent sampled", nil, rolloutParent, true},
		{"parent not sampled", nil, notSampled, false},
		{"root", nil, "", true},
		{"always_off", []string{"OTEL_TRACES_SAMPLER=always_off"}, rolloutParent, false},
		{"always_on, parent not sampled", []string{"OTEL_TRACES_SAMPLER=always_on"}, notSampled, true},
		{"parentbased ratio 0, parent sampled", []string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0"}, rolloutParent, true},
		{"parentbased ratio 0, root", []string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, p := batched(t, "grpc", tc.env...)
			parent := telemetry.SpanContext(tc.parent)
			sc := p.Batcher().Record(&telemetry.Span{Name: "schedule pod", Parent: parent, Start: time.Now(), End: time.Now()})
			// The SDK's span from the same parent gets the same flags.
			_, sdk := p.Tracer().Start(telemetry.Remote(context.Background(), tc.parent), "sdk")
			sdk.End()
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			exported := 0
			for _, s := range r.Spans() {
				if s.Name == "schedule pod" {
					exported++
				}
			}
			if got := exported == 1; got != tc.exported {
				t.Errorf("exported %v (%d spans), want %v", got, exported, tc.exported)
			}
			if !sc.IsValid() || sc.IsSampled() != tc.exported || sc.SpanID() == parent.SpanID() {
				t.Errorf("span context %v: want a new span, sampled %v", sc, tc.exported)
			}
			if parent.IsValid() && sc.TraceID() != parent.TraceID() {
				t.Errorf("trace %s, want the parent's %s", sc.TraceID(), parent.TraceID())
			}
			if sdk.SpanContext().TraceFlags() != sc.TraceFlags() {
				t.Errorf("flags %s, the SDK's %s", sc.TraceFlags(), sdk.SpanContext().TraceFlags())
			}
		})
	}
}

// A batch that finds the queue full is dropped and counted, not waited for; the batches queued
// before it are exported.
func TestBatcherQueueFull(t *testing.T) {
	client := newGateClient()
	b, err := telemetry.NewSpanBatcher(context.Background(), client, telemetry.BatcherConfig{BatchSize: 2, QueueSize: 4, Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	record := func(n int) {
		for range n {
			b.Record(&telemetry.Span{Name: "x", Start: time.Now(), End: time.Now()})
		}
	}
	record(2) // the first batch: taken by the exporter, which the client holds
	<-client.entered
	record(6) // two batches fill the queue (4 spans), the third is dropped
	if st := b.Stats(); st.Dropped != 2 {
		t.Fatalf("stats %+v, want 2 dropped", st)
	}
	close(client.gate)
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st != (telemetry.BatcherStats{Exported: 6, Dropped: 2}) || client.count() != 6 || !client.stopped {
		t.Fatalf("stats %+v, client got %d (stopped %v); want 6 exported, 2 dropped, the client stopped", st, client.count(), client.stopped)
	}
}

// gateClient is an OTLP client that counts the spans it is sent, once its gate opens.
type gateClient struct {
	gate, entered chan struct{}
	once          sync.Once
	mu            sync.Mutex
	spans         int
	stopped       bool
}

func newGateClient() *gateClient {
	return &gateClient{gate: make(chan struct{}), entered: make(chan struct{})}
}

func (c *gateClient) Start(context.Context) error { return nil }
func (c *gateClient) Stop(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return nil
}
func (c *gateClient) UploadTraces(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	c.once.Do(func() { close(c.entered) })
	select {
	case <-c.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		for _, ss := range r.ScopeSpans {
			c.spans += len(ss.Spans)
		}
	}
	return nil
}
func (c *gateClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spans
}

// SpanContext parses version 00 itself: it must agree with the propagator on every input.
func TestSpanContextAgreesWithPropagator(t *testing.T) {
	for _, tp := range []string{
		rolloutParent,
		"00-" + rolloutTrace + "-" + rolloutSpan + "-00",
		"00-" + rolloutTrace + "-" + rolloutSpan + "-02",
		"00-" + rolloutTrace + "-" + rolloutSpan + "-03",
		"00-" + rolloutTrace + "-" + rolloutSpan + "-04",
		"00-" + rolloutTrace + "-" + rolloutSpan + "-0A",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + rolloutSpan + "-01",
		"00-00000000000000000000000000000000-" + rolloutSpan + "-01",
		"00-" + rolloutTrace + "-0000000000000000-01",
		"00-" + rolloutTrace + "-" + rolloutSpan + "-01-extra",
		"00-" + rolloutTrace + "x" + rolloutSpan + "-01",
		"00-" + rolloutTrace + "-" + rolloutSpan + "x01",
		"00-" + rolloutTrace[1:] + "-" + rolloutSpan + "-01",
		"01-" + rolloutTrace + "-" + rolloutSpan + "-01-extra",
		"ff-" + rolloutTrace + "-" + rolloutSpan + "-01",
		"00",
		"garbage",
	} {
		t.Run(tp, func(t *testing.T) {
			want := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp}))
			if got := telemetry.SpanContext(tp); !got.Equal(want) || got.IsRemote() != want.IsRemote() {
				t.Errorf("SpanContext = %v (remote %v), propagator %v (remote %v)", got, got.IsRemote(), want, want.IsRemote())
			}
		})
	}
}

func names(spans []telemetrytest.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, fmt.Sprintf("%s/%s", s.Name, s.SpanID))
	}
	return out
}
