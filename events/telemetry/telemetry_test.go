package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
)

func TestSetupDisabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"no endpoint", nil},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			p, err := telemetry.Setup(context.Background(), telemetry.Config{Service: telemetry.ServiceScheduler})
			if err != nil {
				t.Fatal(err)
			}
			if p.Enabled() || p.Tracer() != nil {
				t.Fatalf("provider enabled with %v", tc.env)
			}
			ctx, span := telemetry.Start(context.Background(), p.Tracer(), "x", "")
			span.End()
			if telemetry.Traceparent(ctx) != "" {
				t.Fatal("a disabled provider made a span context")
			}
		})
	}
}

func TestSetupRejectsUnknown(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, err := telemetry.Setup(context.Background(), telemetry.Config{Service: "x"}); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Fatalf("err = %v, want one naming OTEL_EXPORTER_OTLP_PROTOCOL", err)
	}
}

// TestExport sends a span over each protocol to a real receiver and checks the resource.
func TestExport(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(protocol, func(t *testing.T) {
			clearEnv(t)
			r := telemetrytest.New(t)
			setEnv(t, r.Env(protocol))
			t.Setenv("OTEL_SERVICE_NAME", "not-this-one")
			p, err := telemetry.Setup(context.Background(), telemetry.Config{Service: telemetry.ServiceNodeAgent, Instance: "node-a"})
			if err != nil {
				t.Fatal(err)
			}
			_, span := telemetry.Start(context.Background(), p.Tracer(), "pod start", "")
			span.End()
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			spans := r.Spans()
			if len(spans) != 1 {
				t.Fatalf("received %d spans after Shutdown, want 1 (Shutdown flushes)", len(spans))
			}
			if s := spans[0]; s.Service != telemetry.ServiceNodeAgent || s.Instance != "node-a" || s.Name != "pod start" {
				t.Fatalf("span = %+v, want service %s instance node-a", s, telemetry.ServiceNodeAgent)
			}
		})
	}
}

// TestExportBurst ends more spans at once than the SDK's default queue (2,048) holds, as a
// scheduling pass does: none may be dropped.
func TestExportBurst(t *testing.T) {
	r, p := traced(t, telemetry.ServiceScheduler)
	const n = 5000
	for range n {
		_, span := telemetry.Start(context.Background(), p.Tracer(), "schedule pod", "")
		span.End()
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.Count(); got != n {
		t.Fatalf("received %d of %d spans ended at once", got, n)
	}
}

// TestPropagationThroughLog writes an event with a span's traceparent to a real JetStream log,
// reads it back, and continues the trace from it.
func TestPropagationThroughLog(t *testing.T) {
	r, p := traced(t, telemetry.ServiceScheduler)
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()

	wctx, writer := telemetry.Start(ctx, p.Tracer(), "write", "")
	meta := events.Meta{Actor: "test", Traceparent: telemetry.Traceparent(wctx)}
	ev, err := events.New(time.Now(), meta, events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "echo"}, "",
		&events.DeploymentScaled{Replicas: 3, Generation: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, ev, 0); err != nil {
		t.Fatal(err)
	}
	writer.End()

	read, err := st.History(ctx, ev.Subject)
	if err != nil || len(read) != 1 {
		t.Fatalf("history: %v, %d events", err, len(read))
	}
	got := read[0]
	if got.Traceparent != meta.Traceparent {
		t.Fatalf("traceparent read back %q, written %q", got.Traceparent, meta.Traceparent)
	}
	if raw, err := st.Get(ctx, got.Seq); err != nil || raw.Traceparent != meta.Traceparent {
		t.Fatalf("Get: traceparent %q (%v), want %q", raw.Traceparent, err, meta.Traceparent)
	}
	_, reader := telemetry.Process(ctx, p.Tracer(), "react", got)
	reader.End()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := map[string]telemetrytest.Span{}
	for _, s := range r.Spans() {
		spans[s.Name] = s
	}
	w, rd := spans["write"], spans["react"]
	if rd.TraceID != w.TraceID || rd.ParentID != w.SpanID {
		t.Fatalf("react span trace %s parent %s, want trace %s parent %s", rd.TraceID, rd.ParentID, w.TraceID, w.SpanID)
	}
	for k, want := range map[string]string{
		"messaging.system":               "nats",
		"messaging.destination.name":     ev.Subject,
		"messaging.nats.stream.sequence": "1",
		"skiff.event.type":               "DeploymentScaled",
		"skiff.event.id":                 ev.ID,
		"k8s.deployment.name":            "echo",
		"k8s.namespace.name":             "default",
	} {
		if rd.Attrs[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, rd.Attrs[k], want)
		}
	}
}

func TestBatchLinks(t *testing.T) {
	r, p := traced(t, telemetry.ServiceNetProxy)
	ctx := context.Background()
	var causes []string
	for range 3 {
		c, s := telemetry.Start(ctx, p.Tracer(), "cause", "")
		causes = append(causes, telemetry.Traceparent(c))
		s.End()
	}
	causes = append(causes, "") // an event written without tracing
	_, s := telemetry.Batch(ctx, p.Tracer(), "sync", causes)
	s.End()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var sync telemetrytest.Span
	linked := map[string]bool{}
	for _, sp := range r.Spans() {
		if sp.Name == "sync" {
			sync = sp
		}
	}
	for _, l := range sync.Links {
		linked[l.SpanID] = true
	}
	for _, c := range causes[:3] {
		if sc := telemetry.SpanContext(c); !linked[sc.SpanID().String()] {
			t.Errorf("sync span does not link %s", c)
		}
	}
	if sync.ParentID != "" || len(sync.Links) != 3 || sync.Attrs["skiff.events"] != "4" {
		t.Fatalf("sync span = %+v, want a root with 3 links answering 4 events", sync)
	}
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewTextHandler(&buf, nil)))
	sc := telemetry.SpanContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	log.With("pod", "p").InfoContext(ctx, "started")
	log.Info("no span")
	out := buf.String()
	if !strings.Contains(out, "trace_id=0af7651916cd43dd8448eb211c80319c span_id=b7ad6b7169203331") {
		t.Fatalf("log with a span lacks its ids:\n%s", out)
	}
	if strings.Count(out, "trace_id") != 1 {
		t.Fatalf("log without a span got a trace id:\n%s", out)
	}
}

func clearEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME",
		"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} {
		t.Setenv(k, "")
	}
}

func setEnv(t *testing.T, env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// FormatTraceparent must agree with the propagator's Inject (what Traceparent returns), which
// the rest of Skiff and every other tracer parse.
func TestFormatTraceparent(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	for _, tc := range []struct {
		name string
		sc   trace.SpanContext
		want string
	}{
		{"sampled", trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"not sampled", trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{"random and unknown flags", trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 0xff}), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"},
		{"invalid", trace.SpanContext{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := telemetry.FormatTraceparent(tc.sc)
			if got != tc.want {
				t.Errorf("FormatTraceparent = %q, want %q", got, tc.want)
			}
			if viaCtx := telemetry.Traceparent(trace.ContextWithSpanContext(context.Background(), tc.sc)); got != viaCtx {
				t.Errorf("FormatTraceparent = %q, Traceparent = %q", got, viaCtx)
			}
		})
	}
}

// traced is a provider for service exporting over OTLP/gRPC to a fresh in-process receiver,
// with nothing else of the environment's OTEL_* in play.
func traced(t *testing.T, service string) (*telemetrytest.Receiver, *telemetry.Provider) {
	t.Helper()
	clearEnv(t)
	r := telemetrytest.New(t)
	setEnv(t, r.Env("grpc"))
	p, err := telemetry.Setup(context.Background(), telemetry.Config{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	return r, p
}
