package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"skiff.dev/events/eventstest"
	"skiff.dev/events/metrics/metricstest"
	"skiff.dev/tests/cluster"
)

// TestMetrics runs a two-node cluster with --metrics-addr on every process (skiff up's
// scheduler, each node's agent and net proxy), applies a Deployment of 3 pods behind a Service,
// and scrapes what each process serves: the counts match what happened.
func TestMetrics(t *testing.T) {
	c := cluster.New(t, cluster.Options{Nodes: 2, Metrics: true})
	c.StartNetProxies()
	want := []string{"node1-agent", "node1-netproxy", "node2-agent", "node2-netproxy", "skiff-up"}
	if got := c.MetricsProcesses(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("processes serving metrics: %v, want %v", got, want)
	}
	c.Apply(svcDeployment)
	c.WaitFor("3 web pods running", func() bool {
		pods, err := c.PodsErr()
		return err == nil && len(svcPods(pods, "web")) == 3
	})
	svcApply(t, c, "web", "web", 80, 3)
	nodesWithPods := map[string]bool{}
	for _, p := range svcPods(c.Pods(), "web") {
		nodesWithPods[p.Spec.NodeName] = true
	}

	scrape := func(process string) metricstest.Families {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f, err := c.Metrics(ctx, process)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// sum adds a sample over processes; a family a process lacks fails the test.
	sum := func(processes []string, name string, labels ...string) float64 {
		total := 0.0
		for _, p := range processes {
			v, ok := scrape(p).Value(name, labels...)
			if !ok {
				t.Fatalf("%s serves no %s", p, name)
			}
			total += v
		}
		return total
	}
	agents, proxies := []string{"node1-agent", "node2-agent"}, []string{"node1-netproxy", "node2-netproxy"}
	type check struct {
		processes []string
		name      string
		labels    []string
		want      float64
	}
	checks := []check{
		{[]string{"skiff-up"}, "skiff_scheduler_pods_bound_total", nil, 3},
		{[]string{"skiff-up"}, "skiff_scheduler_schedule_attempts_total", []string{"result", "scheduled"}, 3},
		{[]string{"skiff-up"}, "skiff_scheduler_schedule_attempts_total", []string{"result", "unschedulable"}, 0},
		{[]string{"skiff-up"}, "skiff_scheduler_pod_scheduling_duration_seconds", nil, 3},
		{[]string{"skiff-up"}, "skiff_scheduler_pending_pods", nil, 0},
		{[]string{"skiff-up"}, "skiff_scheduler_leader", nil, 1},
		{[]string{"skiff-up"}, "skiff_scheduler_projection_lag_events", nil, 0},
		{[]string{"skiff-up"}, "skiff_nats_reconnects_total", []string{"connection", "skiff-up/scheduler"}, 0},
		{agents, "skiff_nodeagent_pod_startup_duration_seconds", nil, 3},
		{agents, "skiff_nodeagent_pods_running", nil, 3},
		{agents, "skiff_nodeagent_container_restarts_total", nil, 0},
		// Each node that runs a web pod brought the echo image from the cluster's store once.
		{agents, "skiff_nodeagent_image_fetch_duration_seconds", []string{"source", "store"}, float64(len(nodesWithPods))},
		{agents, "skiff_nats_reconnects_total", nil, 0},
		// One full sync each at start, none since: no sync failed.
		{proxies, "skiff_netproxy_full_syncs_total", nil, 2},
		{proxies, "skiff_netproxy_sync_errors_total", nil, 0},
		{proxies, "skiff_nats_reconnects_total", nil, 0},
	}
	// The projection's lag and the last counts settle within moments of the pods running.
	var failures []string
	eventstest.Eventually(t, time.Minute, "the metrics to match what happened", func() bool {
		failures = failures[:0]
		for _, ck := range checks {
			if got := sum(ck.processes, ck.name, ck.labels...); got != ck.want {
				failures = append(failures, fmt.Sprintf("%s%v over %v = %v, want %v", ck.name, ck.labels, ck.processes, got, ck.want))
			}
		}
		return len(failures) == 0
	})
	if len(failures) > 0 {
		t.Fatalf("metrics:\n%s", strings.Join(failures, "\n"))
	}

	// What only grows: the fold, the proxies' incremental syncs and rule changes (the Service's
	// VIP and 3 endpoints on each node), the standard collectors.
	if got := sum([]string{"skiff-up"}, "skiff_scheduler_events_folded_total"); got < float64(c.Head()) {
		t.Errorf("events folded %v, want at least the log's head %d", got, c.Head())
	}
	for _, p := range proxies {
		f := scrape(p)
		if n, _ := f.Value("skiff_netproxy_sync_duration_seconds", "mode", "incremental"); n < 1 {
			t.Errorf("%s: %v incremental syncs, want at least 1 (the Service)", p, n)
		}
		if n, _ := f.Value("skiff_netproxy_rule_changes_total"); n < 4 {
			t.Errorf("%s: %v rule changes, want at least 4 (a VIP, 3 endpoints)", p, n)
		}
	}
	for _, p := range c.MetricsProcesses() {
		f := scrape(p)
		for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
			if _, ok := f.Value(name); !ok {
				t.Errorf("%s serves no %s", p, name)
			}
		}
	}
	startup := 0.0
	for _, a := range agents {
		s, _ := scrape(a).Sum("skiff_nodeagent_pod_startup_duration_seconds")
		startup += s
	}
	t.Logf("pod start-up as the agents timed it: %v on average over 3 pods", time.Duration(startup/3*float64(time.Second)).Round(time.Millisecond))
}

// TestJaeger runs skiff up with --jaeger and checks Jaeger's query API: it lists the service of
// a span sent to its OTLP port the way every Skiff part sends (OTLP over HTTP, the endpoint
// skiff up sets in OTEL_EXPORTER_OTLP_ENDPOINT), and returns its trace.
func TestJaeger(t *testing.T) {
	c := cluster.New(t, cluster.Options{Nodes: 1, Jaeger: true})
	client := cluster.NetnsHTTPClient(c.ControlPlaneNetns)
	const ui = "http://127.0.0.1:16686"

	// A span from service "skiff", as the CLI names itself, exported with the OTel SDK from
	// inside the control plane's namespace, where Jaeger listens on loopback.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint("127.0.0.1:4318"), otlptracehttp.WithInsecure(),
		otlptracehttp.WithHTTPClient(client))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "skiff"))))
	_, span := tp.Tracer("skiff.dev/tests/e2e").Start(ctx, "apply")
	span.SetAttributes(attribute.String("k8s.deployment.name", "echo"))
	span.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("export the span to jaeger: %v", err)
	}
	traceID := span.SpanContext().TraceID().String()

	get := func(path string, v any) error {
		resp, err := client.Get(ui + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
		}
		return json.Unmarshal(b, v)
	}
	var services struct{ Data []string }
	eventstest.EventuallyErr(t, 30*time.Second, "jaeger to list service skiff", func() error {
		if err := get("/api/services", &services); err != nil {
			return err
		}
		if !strings.Contains(" "+strings.Join(services.Data, " ")+" ", " skiff ") {
			return fmt.Errorf("services %v", services.Data)
		}
		return nil
	})
	var traces struct {
		Data []struct {
			TraceID string
			Spans   []struct{ OperationName string }
		}
	}
	if err := get("/api/traces?service=skiff&lookback=1h", &traces); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tr := range traces.Data {
		if tr.TraceID == traceID && len(tr.Spans) == 1 && tr.Spans[0].OperationName == "apply" {
			found = true
		}
	}
	if !found {
		t.Fatalf("/api/traces?service=skiff has no trace %s with span apply: %+v", traceID, traces.Data)
	}
	// Skiff's own parts trace into it (OTEL_* as skiff up --jaeger sets them): a command shows
	// up as the scheduler's admission span, with the deployments controller's under it.
	c.Apply(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: traced
spec:
  replicas: 1
  selector:
    matchLabels:
      app: traced
  template:
    metadata:
      labels:
        app: traced
    spec:
      containers:
        - name: echo
          image: skiff.dev/echo:v1
`)
	eventstest.EventuallyErr(t, 30*time.Second, "jaeger to hold the scheduler's trace of the apply", func() error {
		var traces struct {
			Data []struct {
				Spans []struct {
					OperationName string
					Tags          []struct {
						Key   string
						Value any
					}
				}
			}
		}
		if err := get("/api/traces?service=skiff-scheduler&operation=admit%20apply&lookback=1h", &traces); err != nil {
			return err
		}
		for _, tr := range traces.Data {
			ops := map[string]bool{}
			for _, sp := range tr.Spans {
				ops[sp.OperationName] = true
			}
			if ops["admit apply"] && ops["deployments reconcile"] && ops["schedule pod"] {
				return nil
			}
		}
		return fmt.Errorf("no trace with admit apply, deployments reconcile and schedule pod among %d traces", len(traces.Data))
	})
}
