package agent

import (
	"context"
	"strings"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
)

// TestAgentReportsNameTheirCauseAndContinueTheTrace: what the node reports about a pod names
// the control plane's event it reacts to (PodBound, then PodStopRequested) and the command's
// correlation, and, traced, the pod's start is a span under the PodBound's with a span per
// step, which the report carries.
func TestAgentReportsNameTheirCauseAndContinueTheTrace(t *testing.T) {
	recv := telemetrytest.New(t)
	for _, kv := range recv.Env("grpc") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	tp, err := telemetry.Setup(context.Background(), telemetry.Config{Service: telemetry.ServiceNodeAgent, Instance: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	h := newAgentHarness(t)
	h.tracer = tp.Tracer()
	h.addNode("n1", "10.0.0.1", podCIDR)
	h.rt.addImage(echo)
	h.start()

	web := testPod("web", "app")
	h.rt.learn(web)
	web.Spec.NodeName = "n1"
	const scheduling = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	bound, err := events.New(h.clock.Now(), events.Meta{Actor: "scheduler/a", CausationID: "sched", CorrelationID: "cmd-1", Traceparent: scheduling},
		podRef(web), "n1", &events.PodBound{Pod: web})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.log.Append(h.ctx, bound, 0); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(web, "Running ip=10.88.1.2 app=running")
	h.stopPod(web, 0)
	eventually(t, "web terminated", func() bool {
		_, term := h.reports(web, "n1")
		return term
	})

	evs, err := h.log.History(h.ctx, events.StatusSubject("n1", "default", "web"))
	if err != nil {
		t.Fatal(err)
	}
	stops, err := h.log.History(h.ctx, events.BindSubject("n1", "default", "web"))
	if err != nil || len(stops) != 2 {
		t.Fatalf("bind subject: %d events, %v", len(stops), err)
	}
	var reportSpan string
	for _, ev := range evs {
		want := bound
		if ev.Type == "PodTerminated" {
			want = stops[1]
		}
		if ev.CausationID != want.ID || ev.CorrelationID != want.CorrelationID {
			t.Errorf("%s: cause %s, correlation %s; want %s's %s and %s", ev.Type, ev.CausationID, ev.CorrelationID, want.Type, want.ID, want.CorrelationID)
		}
		if ev.Type == "PodStatusReported" && reportSpan == "" {
			reportSpan = telemetry.SpanContext(ev.Traceparent).SpanID().String()
		}
	}

	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var start telemetrytest.Span
	steps := map[string]string{} // name → parent
	for _, s := range recv.Spans() {
		if s.Name == "start pod" {
			start = s
		}
		steps[s.Name] = s.ParentID
	}
	if start.ParentID != "00f067aa0ba902b7" || start.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("start pod span %+v is not a child of the PodBound's span", start)
	}
	if start.SpanID != reportSpan {
		t.Errorf("the first report carries span %s, want the start pod span %s", reportSpan, start.SpanID)
	}
	for _, step := range []string{"create sandbox", "set up network", "ensure image", "create container", "start container"} {
		if steps[step] != start.SpanID {
			t.Errorf("step %q has parent %q, want the start pod span %s", step, steps[step], start.SpanID)
		}
	}
	if start.Attrs["k8s.pod.name"] != "web" || start.Attrs["k8s.node.name"] != "n1" || start.Attrs["skiff.event.id"] != bound.ID {
		t.Errorf("start pod attributes %v", start.Attrs)
	}
	if _, ok := steps["stop pod"]; !ok {
		t.Error("no stop pod span")
	}
}
