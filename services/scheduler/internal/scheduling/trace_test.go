package scheduling

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
)

// The spans of placing pods, recorded through the batcher as the scheduler sets it up and
// received by a real OTLP receiver: each pod's span a child of its cause with filter and score
// children and the semantic conventions' attributes, the traceparent its events carry, nothing
// for a pod whose cause was not sampled, and the batch span linking the causes.
func TestTracePods(t *testing.T) {
	r := telemetrytest.New(t)
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_SAMPLER", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} {
		t.Setenv(k, "")
	}
	for _, kv := range r.Env("grpc") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	tp, err := telemetry.Setup(context.Background(), telemetry.Config{Service: telemetry.ServiceScheduler, Instance: "a", Batcher: true})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Spans: tp.Batcher()})
	s.nodes.nodes = make([]nodeInfo, 3)

	const (
		sampled    = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		notSampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	)
	pod := func(name, traceparent string) podInfo {
		return podInfo{key: state.Key{Namespace: "default", Name: name}, cause: events.Cause{ID: "ev-" + name, Traceparent: traceparent}}
	}
	start := time.Unix(1_700_000_000, 0)
	placed := &podTrace{start: start, end: start.Add(40 * time.Microsecond), nodes: 3, chosen: "n2", score: 87,
		evaluated: 3, feasible: 2, filterTime: 3 * time.Microsecond, scoreTime: time.Microsecond}
	unplaced := &podTrace{start: start, end: start.Add(10 * time.Microsecond), nodes: 3, evaluated: 3, filterTime: time.Microsecond}
	b := &batch{
		decisions: []decision{
			{pod: pod("web-1", sampled), trace: placed},
			{pod: pod("web-2", notSampled), trace: placed},
		},
		unschedulable: []unschedulableWrite{{pod: pod("big-1", sampled), trace: unplaced}},
	}
	var pt podTracing
	tps := map[string]string{}
	for i := range b.decisions {
		d := &b.decisions[i]
		tps[d.pod.key.Name] = s.tracePod(&pt, &d.pod, d.trace)
	}
	tps["big-1"] = s.tracePod(&pt, &b.unschedulable[0].pod, b.unschedulable[0].trace)
	if got := s.tracePod(&pt, &b.decisions[0].pod, nil); got != "" {
		t.Errorf("a decision without noted times got traceparent %q", got)
	}
	s.traceBatch(b, start)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	byID := map[string]telemetrytest.Span{}
	podSpans := map[string]telemetrytest.Span{}
	var batchSpan telemetrytest.Span
	for _, sp := range r.Spans() {
		byID[sp.SpanID] = sp
		switch sp.Name {
		case "schedule pod":
			podSpans[sp.Attrs["k8s.pod.name"]] = sp
		case "schedule batch":
			batchSpan = sp
		}
	}
	if n := len(r.Spans()); n != 7 {
		t.Errorf("received %d spans, want 7: two pods' three and the batch's", n)
	}
	for name, want := range map[string]map[string]string{
		"web-1": {"k8s.pod.name": "web-1", "k8s.namespace.name": "default", "skiff.scheduling.nodes": "3",
			"skiff.event.id": "ev-web-1", "k8s.node.name": "n2", "skiff.scheduling.score": "87"},
		"big-1": {"k8s.pod.name": "big-1", "k8s.namespace.name": "default", "skiff.scheduling.nodes": "3", "skiff.event.id": "ev-big-1"},
	} {
		sp := podSpans[name]
		if diff := cmp.Diff(want, sp.Attrs); diff != "" {
			t.Errorf("%s: pod span attributes (-want +got):\n%s", name, diff)
		}
		if sp.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || sp.ParentID != "00f067aa0ba902b7" || sp.Service != telemetry.ServiceScheduler {
			t.Errorf("%s: pod span %+v, want a child of its cause", name, sp)
		}
		if want := "00-" + sp.TraceID + "-" + sp.SpanID + "-01"; tps[name] != want {
			t.Errorf("%s: traceparent %q, want the pod span's %q", name, tps[name], want)
		}
		children := map[string]telemetrytest.Span{}
		for _, c := range byID {
			if c.ParentID == sp.SpanID {
				children[c.Name] = c
			}
		}
		f, sc := children["filter"], children["score"]
		if len(children) != 2 || f.Start != sp.Start || f.End != sc.Start || sc.End != sp.End {
			t.Errorf("%s: children %v, want filter then score laid end to end over the pod's span", name, children)
		}
		if f.Attrs["skiff.scheduling.evaluated"] != "3" {
			t.Errorf("%s: filter attributes %v", name, f.Attrs)
		}
	}
	if _, ok := podSpans["web-2"]; ok {
		t.Error("web-2's cause was not sampled, yet its span was exported")
	}
	if sc := telemetry.SpanContext(tps["web-2"]); !sc.IsValid() || sc.IsSampled() || sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sc.SpanID().String() == "b7ad6b7169203331" {
		t.Errorf("web-2's traceparent %q: want a new span in its cause's trace, not sampled", tps["web-2"])
	}
	if batchSpan.ParentID != "" || len(batchSpan.Links) != 3 || batchSpan.Attrs["skiff.events"] != "3" ||
		batchSpan.Attrs["skiff.scheduling.bound"] != "2" || batchSpan.Attrs["skiff.scheduling.unschedulable"] != "1" {
		t.Errorf("batch span %+v: want a root linking the 3 causes", batchSpan)
	}
}
