package scheduling

import (
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
// node in timingSample, at most maxTimedNodes a pod: a clock read around every check cost more
// than the rest of tracing).
// One "schedule batch" span per batch of decisions links the pods' causes: one pass answers
// many events, and none of them is its parent.
//
// The loop only notes each placement's times and numbers (podTrace); the writer goroutine
// records the spans, with the times the loop noted, just before it builds the events that carry
// them. The loop decides one pod after another and is what limits the rate; recording three
// spans a pod there cost it a tenth of its throughput, while the writer mostly waits for the
// log. They are recorded through a telemetry.SpanBatcher, straight into OTLP export requests,
// not as the SDK's spans: the SDK's span records, their snapshots and their conversion to OTLP
// were most of what tracing every pod cost (docs/bench/tracing.md). The rest of the scheduler
// (admission, the controllers) traces with the SDK.

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

// podTraces holds the podTraces of one batch in one allocation (a thousand small ones a batch
// were a visible part of what tracing cost the loop): traces never move, as at most one is
// noted per pod and the capacity is the batch's.
type podTraces []podTrace

func newPodTraces(pods int) podTraces { return make(podTraces, 0, pods) }

// note notes the placement pl of a pod that took from start to now.
func (ts *podTraces) note(pl placement, start time.Time, nodes int, chosen string) *podTrace {
	*ts = append(*ts, podTrace{
		start: start, end: time.Now(), nodes: nodes, chosen: chosen,
		score: pl.score, evaluated: pl.evaluated, feasible: pl.feasible,
		filterTime: pl.filterTime, scoreTime: pl.scoreTime,
	})
	return &(*ts)[len(*ts)-1]
}

// podTracing is what tracePod reuses from pod to pod, one per writer goroutine: tracing every
// pod made allocations the larger part of tracing's cost (garbage collection), so nothing is
// built per span that can be kept. The spans and their attributes are rewritten in place (the
// batcher copies what it keeps), and the parent is parsed once for a run of pods with the same
// cause, as a rollout's pods come one after another.
type podTracing struct {
	pod, filter, score telemetry.Span
	attrs              [6]attribute.KeyValue
	filterAttrs        [2]attribute.KeyValue
	parent             string
	parentSC           trace.SpanContext
}

// parentContext is the span context traceparent names, parsed once for a run of pods with the
// same parent.
func (pt *podTracing) parentContext(traceparent string) trace.SpanContext {
	if traceparent != pt.parent {
		pt.parent, pt.parentSC = traceparent, telemetry.SpanContext(traceparent)
	}
	return pt.parentSC
}

// tracePod records the spans of placing p and returns the traceparent the pod's events carry,
// "" when tracing is off (no batcher, or no times noted). The pod's span continues the trace
// of its cause and is sampled as the cause was; its traceparent is returned sampled or not, as
// the SDK's span would give it.
func (s *Scheduler) tracePod(pt *podTracing, p *podInfo, t *podTrace) string {
	spans := s.cfg.Spans
	if spans == nil || t == nil {
		return ""
	}
	// The node count and the chosen node on the pod's span, what the filter looked at on the
	// filter's: each number once, as every attribute is encoded and sent with each span.
	pt.attrs[0] = telemetry.PodKey.String(p.key.Name)
	pt.attrs[1] = telemetry.NamespaceKey.String(p.key.Namespace)
	pt.attrs[2] = attribute.Int("skiff.scheduling.nodes", t.nodes)
	pt.attrs[3] = telemetry.EventIDKey.String(p.cause.ID)
	attrs := pt.attrs[:4]
	if t.chosen != "" {
		pt.attrs[4] = telemetry.NodeKey.String(t.chosen)
		pt.attrs[5] = attribute.Int64("skiff.scheduling.score", t.score)
		attrs = pt.attrs[:6]
	}
	pt.pod = telemetry.Span{Name: "schedule pod", Parent: pt.parentContext(p.cause.Traceparent),
		Start: t.start, End: t.end, Attributes: attrs}
	sc := spans.Record(&pt.pod)
	if !sc.IsSampled() {
		// The children of a span not exported are not either: no need to record them.
		return telemetry.FormatTraceparent(sc)
	}
	// The sampled nodes' times divide the pod's; the phases are laid end to end.
	filterEnd := t.start
	if sampled := t.filterTime + t.scoreTime; sampled > 0 {
		filterEnd = t.start.Add(time.Duration(float64(t.end.Sub(t.start)) * float64(t.filterTime) / float64(sampled)))
	}
	pt.filterAttrs[0] = attribute.Int("skiff.scheduling.evaluated", t.evaluated)
	pt.filterAttrs[1] = attribute.Int("skiff.scheduling.feasible", t.feasible)
	pt.filter = telemetry.Span{Name: "filter", Parent: sc, Start: t.start, End: filterEnd, Attributes: pt.filterAttrs[:]}
	spans.Record(&pt.filter)
	pt.score = telemetry.Span{Name: "score", Parent: sc, Start: filterEnd, End: t.end}
	spans.Record(&pt.score)
	return telemetry.FormatTraceparent(sc)
}

// traceBatch records the span of one batch of decisions, linked to every pod's cause.
func (s *Scheduler) traceBatch(b *batch, start time.Time) {
	if s.cfg.Spans == nil {
		return
	}
	causes := make([]string, 0, len(b.decisions)+len(b.unschedulable))
	for i := range b.decisions {
		causes = append(causes, b.decisions[i].pod.cause.Traceparent)
	}
	for i := range b.unschedulable {
		causes = append(causes, b.unschedulable[i].pod.cause.Traceparent)
	}
	links, dropped := telemetry.Links(causes)
	attrs := []attribute.KeyValue{
		attribute.Int("skiff.events", len(causes)),
		attribute.Int("skiff.scheduling.nodes", len(s.nodes.nodes)),
		attribute.Int("skiff.scheduling.bound", len(b.decisions)),
		attribute.Int("skiff.scheduling.unschedulable", len(b.unschedulable)),
	}
	if dropped > 0 {
		attrs = append(attrs, attribute.Int("skiff.links.dropped", dropped))
	}
	s.cfg.Spans.Record(&telemetry.Span{Name: "schedule batch", Start: start, End: time.Now(), Attributes: attrs, Links: links})
}
