// Package telemetry sets up OpenTelemetry tracing for a Skiff service and carries trace context
// through the log.
//
// # Export
//
// Setup reads the standard OTEL_* environment variables: OTEL_TRACES_EXPORTER (otlp, the
// default, or none), OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_EXPORTER_OTLP_PROTOCOL or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL (grpc or http/protobuf, the
// specification's default), headers, timeouts, TLS, OTEL_TRACES_SAMPLER, OTEL_BSP_* and
// OTEL_RESOURCE_ATTRIBUTES, as the OpenTelemetry SDK reads them. With OTEL_SDK_DISABLED=true,
// OTEL_TRACES_EXPORTER=none or no endpoint at all, Setup returns a disabled Provider: its Tracer
// is nil and every helper here returns at once, so a service pays nothing per event beyond
// copying the traceparent string it read to the events it writes.
//
// service.name is the part's own (skiff, skiff-scheduler, skiff-nodeagent, skiff-netproxy) and
// wins over OTEL_SERVICE_NAME: inside `skiff up` one process runs several parts, each with a
// provider of its own. service.instance.id names the replica or node.
//
// # Spans in bulk
//
// A part that makes spans by the thousand a second (the scheduling loop: three a pod) asks
// Setup for a SpanBatcher (Config.Batcher) and records each finished span with Record: no SDK
// span object, no snapshot, no conversion to OTLP afterwards, but the span written straight
// into an OTLP export request built from memory reused request after request. The batcher has
// an OTLP client of its own (otlptracegrpc.NewClient or otlptracehttp.NewClient, the same
// environment as the SDK's exporter), the same resource and scope as the part's tracer, the
// SDK's sampling decision (OTEL_TRACES_SAMPLER; by default a child follows its parent's sampled
// flag) and the batch processor's sizes and delay (OTEL_BSP_*). Its queue is bounded: a batch
// that finds it full is dropped and counted (Stats), never waited for. Provider.ForceFlush and
// Shutdown flush it with the SDK's spans. Every other part, and the scheduler's other loops,
// trace with the SDK.
//
// # Propagation
//
// Trace context travels as a W3C traceparent: in the request of a command (api.Request) and in
// the NATS header `traceparent` of every event (store). A service that acts on an event starts
// its span as a child of the event's traceparent (Start), and the events it writes carry that
// span's traceparent (Traceparent). An action that answers many events at once (a proxy sync, a
// scheduling pass, a controller pass) starts a span with a link to each (Links) instead of
// choosing one of them as a false parent.
//
// # Concurrency
//
// A Provider and its SpanBatcher are safe for concurrent use; Shutdown flushes what is
// buffered and may be called once. Spans reach the collector in the order their batches fill,
// not necessarily in the order they ended, and the batcher's and the SDK's spans in separate
// requests.
package telemetry
