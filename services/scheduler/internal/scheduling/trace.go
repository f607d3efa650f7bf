package scheduling

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"skiff.dev/events/telemetry"
)

// Spans of scheduling. Each pod placed gets a "schedule pod" span in its own trace, a child of
// the event that made it pending (its PodCreated, or the PodUnschedulable of the attempt
// before), with "filter" and "score" children; PodScheduled and PodBound carry its context, so
// the node agent continues the trace. place interleaves the two phases node by node, so their
// spans are laid end to end, dividing the pod's time as the nodes it timed divide theirs (one
// node in timingSample: a clock read around every check cost more than the rest of tracing).
// One "schedule batch" span per batch of decisions links the pods' causes: one pass answers
// many events, and none of them is its parent.

// podTrace is what tracePod needs of one placement.
type podTrace struct {
	start, end time.Time
	nodes      int
	chosen     string
}

// tracePod records the spans of placing p and returns the traceparent the pod's events carry,
// "" when tracing is off.
func (s *Scheduler) tracePod(p *podInfo, pl placement, t podTrace) string {
	tr := s.cfg.Tracer
	if tr == nil {
		return ""
	}
	attrs := []attribute.KeyValue{
		telemetry.PodKey.String(p.key.Name),
		telemetry.NamespaceKey.String(p.key.Namespace),
		attribute.Int("skiff.scheduling.nodes", t.nodes),
		attribute.Int("skiff.scheduling.evaluated", pl.evaluated),
		attribute.Int("skiff.scheduling.feasible", pl.feasible),
		telemetry.EventIDKey.String(p.cause.ID),
	}
	if t.chosen != "" {
		attrs = append(attrs, telemetry.NodeKey.String(t.chosen), attribute.Int64("skiff.scheduling.score", pl.score))
	}
	ctx, span := telemetry.Start(context.Background(), tr, "schedule pod", p.cause.Traceparent,
		trace.WithTimestamp(t.start), trace.WithAttributes(attrs...))
	// The sampled nodes' times divide the pod's; the phases are laid end to end.
	filterEnd := t.start
	if sampled := pl.filterTime + pl.scoreTime; sampled > 0 {
		filterEnd = t.start.Add(time.Duration(float64(t.end.Sub(t.start)) * float64(pl.filterTime) / float64(sampled)))
	}
	_, f := tr.Start(ctx, "filter", trace.WithTimestamp(t.start),
		trace.WithAttributes(attribute.Int("skiff.scheduling.evaluated", pl.evaluated), attribute.Int("skiff.scheduling.feasible", pl.feasible)))
	f.End(trace.WithTimestamp(filterEnd))
	_, sc := tr.Start(ctx, "score", trace.WithTimestamp(filterEnd))
	sc.End(trace.WithTimestamp(t.end))
	span.End(trace.WithTimestamp(t.end))
	return telemetry.Traceparent(ctx)
}

// traceBatch records the span of one batch of decisions, linked to every pod's cause.
func (s *Scheduler) traceBatch(b *batch, start time.Time) {
	if s.cfg.Tracer == nil {
		return
	}
	causes := make([]string, 0, len(b.decisions)+len(b.unschedulable))
	for i := range b.decisions {
		causes = append(causes, b.decisions[i].pod.cause.Traceparent)
	}
	for i := range b.unschedulable {
		causes = append(causes, b.unschedulable[i].pod.cause.Traceparent)
	}
	_, span := telemetry.Batch(context.Background(), s.cfg.Tracer, "schedule batch", causes,
		trace.WithTimestamp(start), trace.WithAttributes(
			attribute.Int("skiff.scheduling.nodes", len(s.nodes.nodes)),
			attribute.Int("skiff.scheduling.bound", len(b.decisions)),
			attribute.Int("skiff.scheduling.unschedulable", len(b.unschedulable))))
	span.End()
}
