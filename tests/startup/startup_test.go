package startup_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/tests/startup"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func ev(t *testing.T, seq uint64, at time.Duration, name string, p events.Payload) *events.Event {
	t.Helper()
	e, err := events.New(t0.Add(at), events.Meta{Actor: "test"}, events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name}, "node1", p)
	if err != nil {
		t.Fatal(err)
	}
	e.Seq = seq
	return e
}

func created(name, uid string) *events.PodCreated {
	return &events.PodCreated{Pod: events.Pod{Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: uid}}}
}

func status(uid, phase string) *events.PodStatusReported {
	return &events.PodStatusReported{UID: uid, Status: events.PodStatus{Phase: phase}}
}

func TestFromEvents(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		evs  func(t *testing.T) []*events.Event
		want []startup.Pod
	}{
		{
			name: "every step, first report pending, then running twice",
			evs: func(t *testing.T) []*events.Event {
				return []*events.Event{
					ev(t, 1, 0, "a", created("a", "u1")),
					ev(t, 2, 10*ms, "a", &events.PodScheduled{UID: "u1", Node: "node1"}),
					ev(t, 3, 11*ms, "a", &events.PodBound{Pod: events.Pod{Metadata: events.ObjectMeta{Name: "a", UID: "u1"}}}),
					ev(t, 4, 50*ms, "a", status("u1", events.PodPending)),
					ev(t, 5, 300*ms, "a", status("u1", events.PodRunning)),
					ev(t, 6, 900*ms, "a", status("u1", events.PodRunning)),
				}
			},
			want: []startup.Pod{{Namespace: "default", Name: "a", UID: "u1", Created: t0, Scheduled: t0.Add(10 * ms),
				Bound: t0.Add(11 * ms), FirstReport: t0.Add(50 * ms), Running: t0.Add(300 * ms)}},
		},
		{
			name: "events of a pod created earlier, and of an earlier pod of the same name, are ignored",
			evs: func(t *testing.T) []*events.Event {
				return []*events.Event{
					ev(t, 7, 0, "old", status("u0", events.PodRunning)),
					ev(t, 8, ms, "b", created("b", "u2")),
					ev(t, 9, 2*ms, "b", status("u-earlier-b", events.PodRunning)),
					ev(t, 10, 3*ms, "c", created("c", "u3")),
					ev(t, 11, 5*ms, "b", status("u2", events.PodRunning)),
				}
			},
			want: []startup.Pod{
				{Namespace: "default", Name: "b", UID: "u2", Created: t0.Add(ms), FirstReport: t0.Add(5 * ms), Running: t0.Add(5 * ms)},
				{Namespace: "default", Name: "c", UID: "u3", Created: t0.Add(3 * ms)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := startup.FromEvents(tc.evs(t))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestLatencies(t *testing.T) {
	pods := []startup.Pod{
		{UID: "ran", Created: t0, Running: t0.Add(700 * time.Millisecond)},
		{UID: "never ran", Created: t0},
		{UID: "created before", Running: t0},
	}
	if diff := cmp.Diff([]time.Duration{700 * time.Millisecond}, startup.Latencies(pods)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSummarize(t *testing.T) {
	d := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		want startup.Summary
	}{
		{"empty", nil, startup.Summary{}},
		{"one", d(5), startup.Summary{N: 1, P50: 5 * time.Millisecond, P99: 5 * time.Millisecond, Max: 5 * time.Millisecond}},
		{"ten unsorted: p50 is the 5th, p99 the 10th", d(10, 1, 9, 2, 8, 3, 7, 4, 6, 5),
			startup.Summary{N: 10, P50: 5 * time.Millisecond, P99: 10 * time.Millisecond, Max: 10 * time.Millisecond}},
		{"200: p99 is the 198th", d(seq(200)...),
			startup.Summary{N: 200, P50: 100 * time.Millisecond, P99: 198 * time.Millisecond, Max: 200 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, startup.Summarize(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}
