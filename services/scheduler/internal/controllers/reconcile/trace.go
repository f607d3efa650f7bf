package reconcile

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"skiff.dev/events"
	"skiff.dev/events/telemetry"
)

// batchTrace is the tracing of one pass. Each cause the pass reacts to gets a span, a child of
// the cause's, which the pass's events about it carry; the pass itself gets one span linked to
// every cause (and to what Link adds): a pass answers many events, and none is its parent. The
// spans end when Flush has written the batch.
type batchTrace struct {
	tracer trace.Tracer
	loop   string
	start  time.Time
	spans  map[string]causeSpan // by cause id
	links  []string
	// about names the object the pass works on for a cause (About), when it is not the object
	// of the events it writes: the Deployment whose pods it creates.
	about map[string]events.ObjectRef
}

type causeSpan struct {
	span        trace.Span
	traceparent string
	writes      int
}

// Trace traces the batch's pass with tracer as the loop named loop; a nil tracer leaves it
// untraced. It returns b.
func (b *Batch) Trace(tracer trace.Tracer, loop string) *Batch {
	if tracer != nil {
		b.trace = &batchTrace{tracer: tracer, loop: loop, start: time.Now(), spans: map[string]causeSpan{}}
	}
	return b
}

// About names the object the pass works on for cause, for the attributes of its span: call it
// before adding the events reacting to cause.
func (b *Batch) About(cause events.Cause, ref events.ObjectRef) {
	if b.trace != nil && cause.Traceparent != "" {
		if b.trace.about == nil {
			b.trace.about = map[string]events.ObjectRef{}
		}
		b.trace.about[cause.ID] = ref
	}
}

// Link links the pass's span to cause too: an event the pass answers without writing in
// reaction to it alone (one of several changes that made one write).
func (b *Batch) Link(cause events.Cause) {
	if b.trace != nil && cause.Traceparent != "" {
		b.trace.links = append(b.trace.links, cause.Traceparent)
	}
}

// span returns the traceparent the events reacting to cause carry: the span of this pass's work
// on cause, started at its first write. "" for an untraced cause.
func (t *batchTrace) span(cause events.Cause, ref events.ObjectRef, node string) string {
	if cause.Traceparent == "" {
		return ""
	}
	cs, ok := t.spans[cause.ID]
	if !ok {
		if about, ok := t.about[cause.ID]; ok {
			ref, node = about, ""
		}
		attrs := append(telemetry.ObjectAttributes(ref, node), telemetry.EventIDKey.String(cause.ID),
			telemetry.StreamSeqKey.Int64(int64(cause.Seq)))
		ctx, span := telemetry.Start(context.Background(), t.tracer, t.loop+" reconcile", cause.Traceparent,
			trace.WithAttributes(attrs...))
		cs = causeSpan{span: span, traceparent: telemetry.Traceparent(ctx)}
		t.links = append(t.links, cause.Traceparent)
	}
	cs.writes++
	t.spans[cause.ID] = cs
	return cs.traceparent
}

// end ends every span of the pass, after its writes; nil does nothing.
func (t *batchTrace) end(res Result) {
	if t == nil || (len(t.spans) == 0 && len(t.links) == 0) {
		return
	}
	for _, cs := range t.spans {
		cs.span.SetAttributes(attribute.Int("skiff.writes", cs.writes))
		cs.span.End()
	}
	_, pass := telemetry.Batch(context.Background(), t.tracer, t.loop+" pass", t.links,
		trace.WithTimestamp(t.start), trace.WithAttributes(
			attribute.Int("skiff.written", res.Written),
			attribute.Int("skiff.conflicts", res.Conflicts),
			attribute.Int("skiff.fenced", res.Fenced)))
	pass.End()
}
