package proxier

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/telemetry"
)

// traceSync records one sync. One sync answers every Service and Endpoints change since the
// last (a burst of updates costs one transaction), so its "sync rules" span is a root linked to
// each of them, not a child of one. Each change also gets a "program rules" span in its own
// trace, a child of the event's span laid over the same time and linked to the sync: that is
// where a rollout's trace shows the rules taking effect on this node. A failed sync's spans
// are marked failed; the changes are answered again by the next.
func (p *Proxier) traceSync(changes []live.Change, servicePorts int, start time.Time, err error) {
	tr := p.cfg.Tracer
	if tr == nil {
		return
	}
	end := p.cfg.Clock.Now()
	var causes []live.Change
	var traceparents []string
	for _, ch := range changes {
		if (ch.Object.Kind == events.KindService || ch.Object.Kind == events.KindEndpoints) && ch.Traceparent != "" {
			causes = append(causes, ch)
			traceparents = append(traceparents, ch.Traceparent)
		}
	}
	node := telemetry.NodeKey.String(p.cfg.Node)
	_, sync := telemetry.Batch(context.Background(), tr, "sync rules", traceparents, trace.WithTimestamp(start),
		trace.WithAttributes(node, attribute.Int("skiff.proxy.service_ports", servicePorts)))
	fail(sync, err)
	sync.End(trace.WithTimestamp(end))
	link := trace.Link{SpanContext: sync.SpanContext()}
	for i, ch := range causes {
		if i == telemetry.MaxLinks {
			break
		}
		attrs := append(telemetry.ObjectAttributes(ch.Object, ""), node,
			telemetry.EventTypeKey.String(ch.Type),
			telemetry.StreamSeqKey.Int64(int64(ch.Seq)))
		_, s := telemetry.Start(context.Background(), tr, "program rules", ch.Traceparent,
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start),
			trace.WithLinks(link), trace.WithAttributes(attrs...))
		fail(s, err)
		s.End(trace.WithTimestamp(end))
	}
}

func fail(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}
