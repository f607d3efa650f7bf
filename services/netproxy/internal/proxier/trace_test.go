package proxier

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
)

// One sync answers every change since the last, and a failed sync's changes are answered by
// the retry: the sync's span is a root linking each change it answers, and each change's trace
// gets a "program rules" span, its child, linked to the sync.
func TestSyncSpansLinkWhatTheyAnswer(t *testing.T) {
	recv := telemetrytest.New(t)
	for _, kv := range recv.Env("grpc") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	tp, err := telemetry.Setup(context.Background(), telemetry.Config{Service: telemetry.ServiceNetProxy, Instance: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	proj := live.New(state.New(), nil)
	fake, syncer := newFakeRules(t)
	clock := &fakeClock{now: t0}
	var w syncWatch
	runProxier(t, Config{Projection: proj, Rules: syncer, RetryInterval: time.Minute, Clock: clock, Synced: w.synced,
		Tracer: tp.Tracer(), Node: "n1"})

	f := &fold{t: t}
	proj.Apply(f.add(svcRef("web"), service("web", "10.96.0.10", events.ServicePort{Name: "http", Protocol: "TCP", Port: 80})))
	live.MarkSynced(proj)
	w.waitSynced(t, 1)

	traced := func(tp string, addrs ...events.EndpointAddress) *events.Event {
		ev := f.add(epRef("web"), endpoints(addrs...))
		ev.Traceparent = tp
		return ev
	}
	const (
		tp1 = "00-11111111111111111111111111111111-1111111111111111-01"
		tp2 = "00-22222222222222222222222222222222-2222222222222222-01"
	)
	fake.FailNextTransaction(unix.EPERM)
	proj.Apply(traced(tp1, addr("10.88.0.2", httpPort)))
	eventually(t, "the failed sync's retry to wait", func() bool { return clock.Timers() == 1 })
	proj.Apply(traced(tp2, addr("10.88.0.2", httpPort), addr("10.88.0.3", httpPort)))
	clock.Advance(time.Minute)
	w.waitSynced(t, 3)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	var syncs, programs []telemetrytest.Span
	for _, s := range recv.Spans() {
		switch s.Name {
		case "sync rules":
			syncs = append(syncs, s)
		case "program rules":
			programs = append(programs, s)
		}
	}
	linked := func(s telemetrytest.Span) string {
		var ids []string
		for _, l := range s.Links {
			ids = append(ids, l.SpanID)
		}
		return strings.Join(ids, ",")
	}
	// The first sync answered no traced change; the failed one tp1; the retry both.
	slices.SortStableFunc(syncs, func(a, b telemetrytest.Span) int { return cmp.Compare(a.Start, b.Start) })
	var got []string
	for _, s := range syncs {
		if s.ParentID != "" {
			t.Errorf("sync span %s has a parent", s.SpanID)
		}
		got = append(got, linked(s))
	}
	if want := []string{"", "1111111111111111", "1111111111111111,2222222222222222"}; strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("sync spans link %q, want %q", got, want)
	}
	parents := map[string]int{}
	for _, p := range programs {
		parents[p.ParentID]++
		if len(p.Links) != 1 || p.Attrs["k8s.node.name"] != "n1" || p.Attrs["k8s.service.name"] != "web" {
			t.Errorf("program rules span %+v: want one link, node n1, service web", p)
		}
	}
	if parents["1111111111111111"] != 2 || parents["2222222222222222"] != 1 {
		t.Errorf("program rules spans by parent %v, want tp1's twice (failed, then retried) and tp2's once", parents)
	}
}
