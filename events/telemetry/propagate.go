package telemetry

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"skiff.dev/events"
)

// noSpan is what the helpers return with tracing off: ending it does nothing (unlike the span
// ctx may already hold).
var noSpan = trace.SpanFromContext(context.Background())

// propagator is W3C trace context, the only format Skiff carries.
var propagator propagation.TraceContext

// carrier holds one traceparent for the propagator.
type carrier struct{ traceparent string }

func (c *carrier) Get(key string) string {
	if key == "traceparent" {
		return c.traceparent
	}
	return ""
}
func (c *carrier) Set(key, value string) {
	if key == "traceparent" {
		c.traceparent = value
	}
}
func (c *carrier) Keys() []string { return []string{"traceparent"} }

// Remote returns ctx with the span context traceparent names as its remote parent; ctx itself
// if traceparent is empty or malformed.
func Remote(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, &carrier{traceparent: traceparent})
}

// SpanContext parses traceparent as a remote span context; the zero (invalid) one if it is
// empty or malformed. Version 00, which Skiff writes, is parsed here without a context or a
// carrier (a scheduling pass parses one a pod); other versions go through the propagator.
func SpanContext(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	if sc, ok := parseVersion00(traceparent); ok {
		return sc
	}
	return trace.SpanContextFromContext(Remote(context.Background(), traceparent))
}

// parseVersion00 parses a traceparent of version 00 as the propagator does (lower-case hex,
// valid ids, only flags 00 to 03); ok is false for any other version, which the caller leaves
// to the propagator.
func parseVersion00(tp string) (sc trace.SpanContext, ok bool) {
	if len(tp) < 3 || tp[:3] != "00-" {
		return trace.SpanContext{}, false
	}
	if len(tp) != 55 || tp[35] != '-' || tp[52] != '-' {
		return trace.SpanContext{}, true
	}
	var cfg trace.SpanContextConfig
	var flags [1]byte
	if !decodeLowerHex(cfg.TraceID[:], tp[3:35]) || !decodeLowerHex(cfg.SpanID[:], tp[36:52]) ||
		!decodeLowerHex(flags[:], tp[53:55]) || flags[0] > 3 {
		return trace.SpanContext{}, true
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0])
	cfg.Remote = true
	sc = trace.NewSpanContext(cfg)
	if !sc.IsValid() {
		return trace.SpanContext{}, true
	}
	return sc, true
}

// decodeLowerHex decodes src into dst, false if src is not lower-case hex (W3C trace context
// allows no upper case).
func decodeLowerHex(dst []byte, src string) bool {
	for i := range dst {
		hi, ok1 := fromHex(src[2*i])
		lo, ok2 := fromHex(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Traceparent is the traceparent of ctx's span, "" if it has none.
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := carrier{}
	propagator.Inject(ctx, &c)
	return c.traceparent
}

// FormatTraceparent is the traceparent of sc, as Traceparent makes it for a context holding sc,
// "" if sc is invalid. Hot paths that hold the span use it: it builds one string and no context.
func FormatTraceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte // 00-<32 hex>-<16 hex>-<2 hex>
	traceID, spanID := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], traceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], spanID[:])
	b[52] = '-'
	// Only the flags W3C defines, as the propagator keeps them.
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))})
	return string(b[:])
}

// Start starts a span named name as a child of parent (a traceparent; a new trace if empty).
// With a nil tracer (tracing off) it returns ctx and a span that does nothing, at no cost.
func Start(ctx context.Context, tracer trace.Tracer, name, parent string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, noSpan
	}
	return tracer.Start(Remote(ctx, parent), name, opts...)
}

// Process starts the span of acting on ev: a consumer span, child of the span that wrote ev,
// named after what is done, with ev's messaging and Kubernetes attributes.
func Process(ctx context.Context, tracer trace.Tracer, name string, ev *events.Event, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, noSpan
	}
	return tracer.Start(Remote(ctx, ev.Traceparent), name,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(EventAttributes(ev)...),
		trace.WithAttributes(attrs...))
}

// MaxLinks bounds the links of one span: the SDK keeps 128 by default
// (OTEL_SPAN_LINK_COUNT_LIMIT); a scheduling pass of 30,000 pods links the first ones and
// counts the rest in skiff.links.dropped.
const MaxLinks = 128

// Links returns a link to each valid traceparent, at most MaxLinks, and how many it left out.
// Empty traceparents (events written without tracing) are skipped.
func Links(traceparents []string) ([]trace.Link, int) {
	var links []trace.Link
	dropped := 0
	for _, tp := range traceparents {
		sc := SpanContext(tp)
		if !sc.IsValid() {
			continue
		}
		if len(links) == MaxLinks {
			dropped++
			continue
		}
		links = append(links, trace.Link{SpanContext: sc})
	}
	return links, dropped
}

// Batch starts the span of one action that answers many events (causes are their
// traceparents): a new trace linked to each, never a child of one of them. The span's own
// attributes say how many it answers.
func Batch(ctx context.Context, tracer trace.Tracer, name string, causes []string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, noSpan
	}
	links, dropped := Links(causes)
	attrs := []attribute.KeyValue{attribute.Int("skiff.events", len(causes))}
	if dropped > 0 {
		attrs = append(attrs, attribute.Int("skiff.links.dropped", dropped))
	}
	opts = append(opts, trace.WithNewRoot(), trace.WithLinks(links...), trace.WithAttributes(attrs...))
	return tracer.Start(ctx, name, opts...)
}

// Attribute keys Skiff sets besides the semantic conventions'.
const (
	EventTypeKey  = attribute.Key("skiff.event.type")
	EventIDKey    = attribute.Key("skiff.event.id")
	StreamSeqKey  = attribute.Key("messaging.nats.stream.sequence")
	messagingKey  = attribute.Key("messaging.system")
	destKey       = attribute.Key("messaging.destination.name")
	messageIDKey  = attribute.Key("messaging.message.id")
	operationKey  = attribute.Key("messaging.operation.type")
	PodKey        = attribute.Key("k8s.pod.name")
	NamespaceKey  = attribute.Key("k8s.namespace.name")
	NodeKey       = attribute.Key("k8s.node.name")
	DeploymentKey = attribute.Key("k8s.deployment.name")
	ServiceKey    = attribute.Key("k8s.service.name")
)

// EventAttributes are ev's attributes per the OpenTelemetry semantic conventions: messaging
// (system nats, the subject, the stream sequence, the event id as the message id) and the
// Kubernetes object it is about, plus the event type and id.
func EventAttributes(ev *events.Event) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 11)
	attrs = append(attrs,
		messagingKey.String("nats"),
		destKey.String(ev.Subject),
		operationKey.String("process"),
		messageIDKey.String(ev.ID),
		StreamSeqKey.Int64(int64(ev.Seq)),
		EventTypeKey.String(ev.Type),
		EventIDKey.String(ev.ID),
	)
	return append(attrs, ObjectAttributes(ev.Object, nodeOf(ev.Subject))...)
}

// ObjectAttributes are the Kubernetes resource attributes of ref (and node, if known).
func ObjectAttributes(ref events.ObjectRef, node string) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if ref.Namespace != "" && ref.Namespace != events.ClusterScope {
		attrs = append(attrs, NamespaceKey.String(ref.Namespace))
	}
	switch ref.Kind {
	case events.KindPod:
		attrs = append(attrs, PodKey.String(ref.Name))
	case events.KindDeployment:
		attrs = append(attrs, DeploymentKey.String(ref.Name))
	case events.KindService, events.KindEndpoints:
		attrs = append(attrs, ServiceKey.String(ref.Name))
	case events.KindNode:
		node = ref.Name
	}
	if node != "" {
		attrs = append(attrs, NodeKey.String(node))
	}
	return attrs
}

// nodeOf is the node a bind or status subject names, "" for other subjects.
func nodeOf(subject string) string {
	sub, err := events.ParseSubject(subject)
	if err != nil {
		return ""
	}
	return sub.Node
}
