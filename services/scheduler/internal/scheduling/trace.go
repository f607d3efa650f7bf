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
//
// The loop only notes each placement's times and numbers (podTrace); the writer goroutine
// records the spans, with the times the loop noted, just before it builds the events that carry
// them. The loop decides one pod after another and is what limits the rate; recording three
// spans a pod there cost it a tenth of its throughput, while the writer mostly waits for the
// log.

// podTrace is what tracePod needs of one placement, noted by the loop.
type podTrace struct {
	start, end time.Time
	nodes      int
	chosen     string
	// From the placement.
	score                 int64
	evaluated, feasible   int
	filterTime, scoreTime time.Duration
}

// newPodTrace notes the placement pl of a pod that took from start to now.
func newPodTrace(pl placement, start time.Time, nodes int, chosen string) *podTrace {
	return &podTrace{
		start: start, end: time.Now(), nodes: nodes, chosen: chosen,
		score: pl.score, evaluated: pl.evaluated, feasible: pl.feasible,
		filterTime: pl.filterTime, scoreTime: pl.scoreTime,
	}
}

// podTracing is what tracePod reuses from pod to pod, one per writer goroutine. Tracing every
// pod made allocations the larger part of tracing's cost (garbage collection), so nothing is
// built per span that can be kept: the attribute slice (the SDK copies attributes into the
// span), and the parsed parent, which the pods of one rollout share and a batch holds one after
// another.
type podTracing struct {
	attrs     []attribute.KeyValue
	parent    string
	parentCtx context.Context
}

// parentContext is the context whose remote span traceparent names, parsed once for a run of
// pods with the same parent.
func (pt *podTracing) parentContext(traceparent string) context.Context {
	if pt.parentCtx == nil || traceparent != pt.parent {
		pt.parent, pt.parentCtx = traceparent, telemetry.Remote(context.Background(), traceparent)
	}
	return pt.parentCtx
}

// tracePod records the spans of placing p and returns the traceparent the pod's events carry,
// "" when tracing is off (t is nil).
func (s *Scheduler) tracePod(pt *podTracing, p *podInfo, t *podTrace) string {
	tr := s.cfg.Tracer
	if tr == nil || t == nil {
		return ""
	}
	// Attributes are set after the start, not passed as a start option: the option's copy
	// would be a second one, and no sampler Skiff uses reads them.
	ctx, span := tr.Start(pt.parentContext(p.cause.Traceparent), "schedule pod", trace.WithTimestamp(t.start))
	// The node count and the chosen node on the pod's span, what the filter looked at on the
	// filter's: each number once, as every attribute is encoded and sent with each span.
	attrs := append(pt.attrs[:0],
		telemetry.PodKey.String(p.key.Name),
		telemetry.NamespaceKey.String(p.key.Namespace),
		attribute.Int("skiff.scheduling.nodes", t.nodes),
		telemetry.EventIDKey.String(p.cause.ID),
	)
	if t.chosen != "" {
		attrs = append(attrs, telemetry.NodeKey.String(t.chosen), attribute.Int64("skiff.scheduling.score", t.score))
	}
	span.SetAttributes(attrs...)
	// The sampled nodes' times divide the pod's; the phases are laid end to end.
	filterEnd := t.start
	if sampled := t.filterTime + t.scoreTime; sampled > 0 {
		filterEnd = t.start.Add(time.Duration(float64(t.end.Sub(t.start)) * float64(t.filterTime) / float64(sampled)))
	}
	_, f := tr.Start(ctx, "filter", trace.WithTimestamp(t.start))
	attrs = append(attrs[:0],
		attribute.Int("skiff.scheduling.evaluated", t.evaluated),
		attribute.Int("skiff.scheduling.feasible", t.feasible))
	f.SetAttributes(attrs...)
	f.End(trace.WithTimestamp(filterEnd))
	_, sc := tr.Start(ctx, "score", trace.WithTimestamp(filterEnd))
	sc.End(trace.WithTimestamp(t.end))
	span.End(trace.WithTimestamp(t.end))
	pt.attrs = attrs[:0]
	return telemetry.FormatTraceparent(span.SpanContext())
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
