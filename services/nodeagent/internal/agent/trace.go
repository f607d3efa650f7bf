package agent

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"skiff.dev/events"
	"skiff.dev/events/telemetry"
	"skiff.dev/services/nodeagent/internal/work"
)

// causeKey carries, in a worker's context, the event its work reacts to, for the reports it
// appends (statusWriter.append).
type causeKey struct{}

func withCause(ctx context.Context, c events.Cause) context.Context {
	return context.WithValue(ctx, causeKey{}, c)
}

func causeOf(ctx context.Context) events.Cause {
	c, _ := ctx.Value(causeKey{}).(events.Cause)
	return c
}

// trace returns the context of one pass of the worker over p: it carries p's cause, and, the
// first time the worker works on that cause with tracing on, a "start pod" or "stop pod" span,
// a child of the cause's span. Later passes for the same cause (resyncs, restarts) are not
// traced; their reports still carry the cause.
func (w *worker) trace(ctx context.Context, p work.Pod) (context.Context, trace.Span) {
	ctx = withCause(ctx, p.Cause)
	if w.env.tracer == nil || p.Cause.ID == "" || p.Cause.ID == w.traced {
		return ctx, noSpan
	}
	w.traced = p.Cause.ID
	name := "start pod"
	if p.StopRequested {
		name = "stop pod"
	}
	return telemetry.Start(ctx, w.env.tracer, name, p.Cause.Traceparent,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			telemetry.PodKey.String(w.key.Name), telemetry.NamespaceKey.String(w.key.Namespace),
			telemetry.NodeKey.String(p.Pod.Spec.NodeName), attribute.String("k8s.pod.uid", w.uid),
			telemetry.EventIDKey.String(p.Cause.ID), telemetry.StreamSeqKey.Int64(int64(p.Cause.Seq))))
}

// noSpan is a span that does nothing, for passes not traced.
var noSpan = trace.SpanFromContext(context.Background())

// child starts a span for one step of a traced pass; outside one it does nothing.
func (w *worker) child(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if w.env.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, noSpan
	}
	return w.env.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// endSpan ends a step's span, marking it failed with err.
func endSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
