package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Service names of Skiff's parts, the service.name of their spans.
const (
	ServiceCLI       = "skiff"
	ServiceScheduler = "skiff-scheduler"
	ServiceNodeAgent = "skiff-nodeagent"
	ServiceNetProxy  = "skiff-netproxy"
)

// Config names the part a Provider traces. The zero value traces nothing useful: set Service.
type Config struct {
	// Service is service.name; Instance is service.instance.id (a scheduler replica's id, a
	// node's name), left out when empty.
	Service, Instance string
	// Batcher also sets up a SpanBatcher (Provider.Batcher), exporting with the same
	// environment, resource and tracer name, for a part that records spans in bulk.
	Batcher bool
}

// Provider is one part's tracing: a real SDK provider that exports, or a disabled one.
type Provider struct {
	sdk     *sdktrace.TracerProvider
	tracer  trace.Tracer
	batcher *SpanBatcher
	service string
}

// Disabled is a provider that traces nothing; its Tracer is nil.
func Disabled() *Provider { return &Provider{} }

// Tracer returns the part's tracer, nil when tracing is off: callers (and this package's
// helpers) test for nil instead of calling a no-op tracer once per event.
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tracer
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p != nil && p.sdk != nil }

// TracerProvider returns the SDK provider, nil when disabled.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil || p.sdk == nil {
		return nil
	}
	return p.sdk
}

// Batcher returns the part's SpanBatcher, nil when tracing is off or Config.Batcher was not
// set.
func (p *Provider) Batcher() *SpanBatcher {
	if p == nil {
		return nil
	}
	return p.batcher
}

// ForceFlush exports every span ended or recorded so far (the SDK's and the batcher's).
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil || p.sdk == nil {
		return nil
	}
	if err := errors.Join(p.batcher.ForceFlush(ctx), p.sdk.ForceFlush(ctx)); err != nil {
		return fmt.Errorf("flush traces of %s: %w", p.service, err)
	}
	return nil
}

// Shutdown flushes the spans still buffered and stops the exporters. A disabled provider has
// nothing to do.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.sdk == nil {
		return nil
	}
	if err := errors.Join(p.batcher.Shutdown(ctx), p.sdk.Shutdown(ctx)); err != nil {
		return fmt.Errorf("flush traces of %s: %w", p.service, err)
	}
	return nil
}

// Setup builds the provider the environment asks for (see the package doc). An error means the
// environment asks for something impossible (an unknown exporter or protocol); it names the
// variable.
func Setup(ctx context.Context, cfg Config) (*Provider, error) {
	// The exporters read the rest of the environment themselves.
	env := os.Getenv
	if strings.EqualFold(strings.TrimSpace(env("OTEL_SDK_DISABLED")), "true") {
		return Disabled(), nil
	}
	switch exp := strings.TrimSpace(env("OTEL_TRACES_EXPORTER")); exp {
	case "", "otlp":
	case "none":
		return Disabled(), nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: Skiff exports traces with otlp or none", exp)
	}
	if env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && env("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return Disabled(), nil
	}
	protocol := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exporter sdktrace.SpanExporter
		err      error
	)
	// The exporters read endpoint, headers, timeout, compression and TLS from the environment
	// themselves.
	switch protocol {
	case "grpc":
		exporter, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exporter, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: use grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", protocol, err)
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	scope := "skiff.dev/" + cfg.Service
	var batcher *SpanBatcher
	if cfg.Batcher {
		if batcher, err = newBatcher(ctx, protocol, res, scope, env); err != nil {
			return nil, err
		}
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter, batchOptions(env)...), sdktrace.WithResource(res))
	return &Provider{sdk: sdk, tracer: sdk.Tracer(scope), batcher: batcher, service: cfg.Service}, nil
}

// newBatcher is a SpanBatcher with a client of its own for protocol (which reads the endpoint,
// headers, timeout, compression and TLS from the environment, as the SDK's exporter does) and
// the OTEL_BSP_* and OTEL_TRACES_SAMPLER settings the SDK's provider reads.
func newBatcher(ctx context.Context, protocol string, res *resource.Resource, scope string, env func(string) string) (*SpanBatcher, error) {
	var client otlptrace.Client
	if protocol == "grpc" {
		client = otlptracegrpc.NewClient()
	} else {
		client = otlptracehttp.NewClient()
	}
	cfg := BatcherConfig{
		Resource: res, Scope: scope, Sampler: samplerFromEnv(env),
		BatchSize: envInt(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
		QueueSize: envInt(env, "OTEL_BSP_MAX_QUEUE_SIZE"),
		Delay:     time.Duration(envInt(env, "OTEL_BSP_SCHEDULE_DELAY")) * time.Millisecond,
		Timeout:   time.Duration(envInt(env, "OTEL_BSP_EXPORT_TIMEOUT")) * time.Millisecond,
		OnError:   otel.Handle,
	}
	if cfg.QueueSize > 0 && cfg.BatchSize == 0 {
		cfg.BatchSize = min(maxExportBatchSize, cfg.QueueSize)
	}
	b, err := NewSpanBatcher(ctx, client, cfg)
	if err != nil {
		return nil, fmt.Errorf("OTLP span batcher (%s): %w", protocol, err)
	}
	return b, nil
}

// envInt is the positive integer env sets key to, 0 when unset or not one (the SDK ignores
// such values too).
func envInt(env func(string) string, key string) int {
	n, err := strconv.Atoi(strings.TrimSpace(env(key)))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// samplerFromEnv is the sampler OTEL_TRACES_SAMPLER names, as the SDK's provider reads it;
// nil for its default, parentbased_always_on (and, as the SDK does, for a name it does not
// know), which a SpanBatcher decides without a sampler.
func samplerFromEnv(env func(string) string) sdktrace.Sampler {
	ratio := func() sdktrace.Sampler {
		r, err := strconv.ParseFloat(strings.TrimSpace(env("OTEL_TRACES_SAMPLER_ARG")), 64)
		if err != nil || r < 0 || r > 1 {
			r = 1
		}
		return sdktrace.TraceIDRatioBased(r)
	}
	switch strings.ToLower(strings.TrimSpace(env("OTEL_TRACES_SAMPLER"))) {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return ratio()
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(ratio())
	default:
		return nil
	}
}

// Skiff's batch processor sizes, where the environment does not set them. The SDK's defaults
// (a queue of 2,048 spans, batches of 512) drop spans when a part makes them faster than its one
// exporting goroutine sends them: a scheduling pass of 1,024 pods ends 3,072 spans within
// milliseconds, and at 6,000 pods a second the scheduler lost a quarter of its spans, holes in
// the rollouts' traces. A queue of 16,384 holds five such passes (about 10 MB at most); batches
// of 2,048 (under 1 MB of OTLP) send them in a quarter of the requests.
const (
	maxQueueSize       = 16384
	maxExportBatchSize = 2048
)

// batchOptions are Skiff's batch processor sizes where env leaves them unset: the SDK reads
// OTEL_BSP_MAX_QUEUE_SIZE and OTEL_BSP_MAX_EXPORT_BATCH_SIZE itself, and an option would
// override them. With the queue size set and the batch size not, the SDK's batch size stays,
// so a batch never outgrows a small queue.
func batchOptions(env func(string) string) []sdktrace.BatchSpanProcessorOption {
	if env("OTEL_BSP_MAX_QUEUE_SIZE") != "" {
		return nil
	}
	opts := []sdktrace.BatchSpanProcessorOption{sdktrace.WithMaxQueueSize(maxQueueSize)}
	if env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") == "" {
		opts = append(opts, sdktrace.WithMaxExportBatchSize(maxExportBatchSize))
	}
	return opts
}

// newResource is the environment's resource attributes under the part's own: service.name is
// always the part's, so the parts of one `skiff up` keep theirs.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	fromEnv, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	own := []attribute.KeyValue{attribute.String("service.name", cfg.Service)}
	if cfg.Instance != "" {
		own = append(own, attribute.String("service.instance.id", cfg.Instance))
	}
	res, err := resource.Merge(fromEnv, resource.NewSchemaless(own...))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return res, nil
}
