package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
)

const service = `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},
 "spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}`

// A command's consequences, through a real replica and log: every event names its cause and the
// command's correlation, and the replica's spans continue the caller's trace, event by event,
// with links where one pass answers many events.
func TestRolloutCausationAndTrace(t *testing.T) {
	recv := telemetrytest.New(t)
	for _, kv := range recv.Env("grpc") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	stop := start(t, srv.URL(), "a")
	registerNode(t, st, "n1")

	// The caller's span, as the CLI sends it.
	caller := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var resp api.Response
	req := api.ApplyRequest{Traceparent: caller, Documents: []api.Document{
		{Source: "test", Object: json.RawMessage(fmt.Sprintf(deployment, "web", 2))},
		{Source: "test", Object: json.RawMessage(service)},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := api.Call(ctx, nc, api.CommandSubject(api.SubjectApply, "test"), req, &resp); err != nil || resp.Error != nil {
		t.Fatalf("apply: %v %+v", err, resp.Error)
	}

	// The node reports each bound pod Running, as an agent does: caused by its PodBound.
	var bound []*events.Event
	eventstest.Eventually(t, eventstest.Timeout, "two pods bound", func() bool {
		bound = ofType(history(t, st, "skiff.ev.bind.>"), "PodBound")
		return len(bound) == 2
	})
	for i, b := range bound {
		p := b.Data.(*events.PodBound).Pod
		ready := true
		ev, err := events.New(time.Now(), events.Meta{Actor: "node/n1"}.From(b.Cause()), b.Object, "n1", &events.PodStatusReported{
			UID: p.Metadata.UID, Status: events.PodStatus{Phase: events.PodRunning, PodIP: fmt.Sprintf("10.88.0.%d", 2+i),
				ContainerStatuses: []events.ContainerStatus{{Name: "c", Ready: ready}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, ev, 0); err != nil {
			t.Fatal(err)
		}
	}
	eventstest.Eventually(t, eventstest.Timeout, "endpoints with both pods", func() bool {
		eps := ofType(history(t, st, events.ObjectSubject(events.KindEndpoints, "default", "web")), "EndpointsUpdated")
		return len(eps) > 0 && len(eps[len(eps)-1].Data.(*events.EndpointsUpdated).Addresses) == 2
	})
	stop() // flushes the replica's spans

	// The log: every event of the command names the command's correlation and a cause within it.
	all := history(t, st, "skiff.ev.>")
	applied := ofType(all, "DeploymentApplied")[0]
	cmd := applied.CorrelationID
	byID := map[string]*events.Event{}
	for _, ev := range all {
		byID[ev.ID] = ev
	}
	causeType := func(ev *events.Event) string {
		if ev.CausationID == cmd {
			return "command"
		}
		if c := byID[ev.CausationID]; c != nil {
			return c.Type
		}
		return "?" + ev.CausationID
	}
	for _, tc := range []struct{ typ, cause string }{
		{"DeploymentApplied", "command"}, {"ServiceApplied", "command"},
		{"PodCreated", "DeploymentApplied"}, {"PodScheduled", "PodCreated"}, {"PodBound", "PodScheduled"},
		{"PodStatusReported", "PodBound"}, {"EndpointsUpdated", "PodStatusReported"},
	} {
		evs := ofType(all, tc.typ)
		if len(evs) == 0 {
			t.Errorf("no %s in the log", tc.typ)
		}
		for _, ev := range evs {
			cause := causeType(ev)
			// Endpoints list not-ready pods too, so an update may answer any change of a selected
			// pod, or the Service itself; the one that made both pods ready is checked below.
			endpointsCause := tc.typ == "EndpointsUpdated" && slices.Contains([]string{"ServiceApplied", "PodCreated", "PodScheduled", "PodBound"}, cause)
			if ev.CorrelationID != cmd || (cause != tc.cause && !endpointsCause) {
				t.Errorf("%s (seq %d): correlation %s, cause %s; want %s and a %s", ev.Type, ev.Seq, ev.CorrelationID, causeType(ev), cmd, tc.cause)
			}
			if !telemetry.SpanContext(ev.Traceparent).IsValid() || telemetry.SpanContext(ev.Traceparent).TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("%s (seq %d) traceparent %q is not in the caller's trace", ev.Type, ev.Seq, ev.Traceparent)
			}
		}
	}

	if eps := ofType(all, "EndpointsUpdated"); len(eps) > 0 {
		if last := eps[len(eps)-1]; causeType(last) != "PodStatusReported" {
			t.Errorf("the EndpointsUpdated that made both pods ready (seq %d) is caused by a %s, want a PodStatusReported", last.Seq, causeType(last))
		}
	}

	// The spans: each reaction a child of the span that wrote its cause.
	spans := recv.Spans()
	span := map[string]telemetrytest.Span{}
	for _, s := range spans {
		span[s.SpanID] = s
	}
	parentName := func(s telemetrytest.Span) string {
		if p, ok := span[s.ParentID]; ok {
			return p.Name
		}
		if s.ParentID == "00f067aa0ba902b7" {
			return "caller"
		}
		return "-"
	}
	count := map[string]int{}
	for _, s := range spans {
		if s.Service != telemetry.ServiceScheduler || s.Instance != "a" {
			t.Errorf("span %q from %s/%s, want %s/a", s.Name, s.Service, s.Instance, telemetry.ServiceScheduler)
		}
		want := map[string]string{
			"admit apply": "caller", "deployments reconcile": "admit apply", "schedule pod": "deployments reconcile",
			"filter": "schedule pod", "score": "schedule pod",
			// The test's reports carry their PodBound's traceparent: the scheduling span.
			"endpoints reconcile": "schedule pod",
		}[s.Name]
		switch got := parentName(s); {
		case s.Name == "endpoints reconcile" && (got == "admit apply" || got == "deployments reconcile"):
			want = got // an update caused by the ServiceApplied, or by a PodCreated
		case s.Name == "deployments reconcile" && (got == "deployments reconcile" || got == "schedule pod"):
			// Rollout progress reacts to the latest change of a pod: its PodCreated or its
			// PodScheduled (or PodBound), whose spans are these.
			count["progress"]++
			continue
		}
		if want != "" {
			count[s.Name]++
			if got := parentName(s); got != want {
				t.Errorf("span %q is a child of %q, want %q", s.Name, got, want)
			}
		}
		if strings.HasSuffix(s.Name, " pass") || s.Name == "schedule batch" {
			if s.ParentID != "" {
				t.Errorf("span %q has a parent; a pass links what it answers", s.Name)
			}
			for _, l := range s.Links {
				if _, ok := span[l.SpanID]; !ok && l.SpanID != "00f067aa0ba902b7" {
					t.Errorf("span %q links %s, no span of this trace", s.Name, l.SpanID)
				}
			}
		}
	}
	for name, n := range map[string]int{"admit apply": 1, "deployments reconcile": 1, "schedule pod": 2, "filter": 2, "score": 2} {
		if count[name] != n {
			t.Errorf("%d %q spans, want %d", count[name], name, n)
		}
	}
	if count["endpoints reconcile"] == 0 {
		t.Error("no endpoints reconcile span")
	}
}

func history(t *testing.T, st *store.Store, subject string) []*events.Event {
	t.Helper()
	evs, err := st.History(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func ofType(evs []*events.Event, typ string) []*events.Event {
	var out []*events.Event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}
