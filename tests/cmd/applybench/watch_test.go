package main

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ev(ms int, p events.Payload) *events.Event {
	return &events.Event{Envelope: events.Envelope{Time: at(ms)}, Data: p}
}

func pod(name, uid, owner string) events.Pod {
	return events.Pod{Metadata: events.ObjectMeta{Name: name, UID: uid,
		OwnerReferences: []events.OwnerReference{{Kind: "Deployment", Name: owner}}}}
}

// TestWatch feeds a Deployment's events, with another Deployment's pods and repeated events
// mixed in, and checks what is counted and the timings.
func TestWatch(t *testing.T) {
	seen := 0
	w := newWatch("default", "web", 4, func() time.Time { seen += 10; return at(seen) })
	bound := func(ms int, uid string) *events.Event { return ev(ms, &events.PodBound{Pod: pod("", uid, "web")}) }
	steps := []*events.Event{
		ev(0, &events.DeploymentApplied{Deployment: events.Deployment{Metadata: events.ObjectMeta{Name: "web"}}}),
		ev(5, &events.PodCreated{Pod: pod("web-a", "a", "web")}),
		ev(5, &events.PodCreated{Pod: pod("web-b", "b", "web")}),
		ev(5, &events.PodCreated{Pod: pod("web-c", "c", "web")}),
		ev(6, &events.PodCreated{Pod: pod("api-x", "x", "api")}), // another Deployment's
		ev(20, &events.PodScheduled{UID: "a"}),
		bound(20, "a"),
		bound(21, "x"),
		ev(30, &events.PodScheduled{UID: "b"}),
		bound(30, "b"),
		bound(31, "b"), // bound twice: counted once
		ev(40, &events.PodScheduled{UID: "c"}),
		bound(40, "c"),
		ev(900, &events.PodCreated{Pod: pod("web-d", "d", "web")}), // a late pass
		ev(905, &events.PodUnschedulable{UID: "d"}),
		ev(1000, &events.PodScheduled{UID: "d"}),
	}
	for _, e := range steps {
		w.handle(e)
	}
	select {
	case <-w.all:
		t.Fatal("all closed with 3 of 4 pods bound")
	default:
	}
	if got := w.progress(); got.created != 4 || got.scheduled != 4 || got.bound != 3 || got.unsched != 1 || got.lastCreated != 900*time.Millisecond {
		t.Errorf("progress = %+v, want 4 created (last at 900ms), 4 scheduled, 3 bound, 1 unschedulable", got)
	}
	if _, err := w.timings(); err == nil {
		t.Error("timings with 3 of 4 pods bound: no error")
	}
	w.handle(bound(1000, "d"))
	select {
	case <-w.all:
	default:
		t.Fatal("all not closed with 4 of 4 pods bound")
	}
	got, err := w.timings()
	if err != nil {
		t.Fatal(err)
	}
	want := timings{applyToLast: time.Second, createPhase: 895 * time.Millisecond, applyToFirstCreated: 5 * time.Millisecond,
		applyToP50: 30 * time.Millisecond, applyToP99: time.Second, podsPerSec: 4}
	if got != want {
		t.Errorf("timings = %+v, want %+v", got, want)
	}
	if got, want := w.createdPasses(10), "3 at +5ms, 1 at +900ms"; got != want {
		t.Errorf("createdPasses = %q, want %q", got, want)
	}
}

// TestTail checks that the pods bound after the 99 % mark are listed, the last bound first.
func TestWatchTail(t *testing.T) {
	w := newWatch("default", "web", 200, func() time.Time { return at(1) })
	w.handle(ev(0, &events.DeploymentApplied{Deployment: events.Deployment{Metadata: events.ObjectMeta{Name: "web"}}}))
	for i := range 200 {
		name, uid := fmt.Sprintf("web-%d", i), fmt.Sprint(i)
		created, boundAt := 5, 100+i
		if i >= 198 { // two pods of a late pass
			created, boundAt = 2000, 5000+i
		}
		w.handle(ev(created, &events.PodCreated{Pod: pod(name, uid, "web")}))
		w.handle(ev(boundAt, &events.PodScheduled{UID: uid}))
		w.handle(ev(boundAt, &events.PodBound{Pod: pod(name, uid, "web")}))
	}
	w.handle(ev(6000, &events.PodScheduled{UID: "3"}))
	got := w.tail(5)
	want := "2 pods bound after the 99% mark (+297ms); 1 pods scheduled or bound twice\n" +
		"    web-199: created +2.00s (seen +1ms), scheduled +5.20s, bound +5.20s\n" +
		"    web-198: created +2.00s (seen +1ms), scheduled +5.20s, bound +5.20s"
	if got != want {
		t.Errorf("tail =\n%s\nwant\n%s", got, want)
	}
	if got, want := w.createdPasses(10), "198 at +5ms, 2 at +2.00s"; got != want {
		t.Errorf("createdPasses = %q, want %q", got, want)
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, percent int
		want       int // index into 1..n
	}{
		{"one", 1, 99, 1},
		{"half of ten", 10, 50, 5},
		{"p99 of 30000 is the 29700th", 30000, 99, 29700},
		{"p99 of 3000 is the 2970th", 3000, 99, 2970},
		{"p99 of 10 is the last", 10, 99, 10},
		{"p100", 7, 100, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := make([]time.Time, tc.n)
			for i := range ts {
				ts[i] = at(i + 1)
			}
			if got := quantile(ts, tc.percent); !got.Equal(at(tc.want)) {
				t.Errorf("quantile(%d, %d) = the %v-th, want the %d-th", tc.n, tc.percent, got.Sub(t0)/time.Millisecond, tc.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	if got := median([]time.Duration{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4 = %v, want 2.5", got)
	}
}

func TestReadyNodes(t *testing.T) {
	table := "NAME    STATUS     ROLES    AGE   VERSION\n" +
		"sim-0   Ready      <none>   3s    <unknown>\n" +
		"sim-1   NotReady   <none>   3s    <unknown>\n" +
		"sim-2   Ready,SchedulingDisabled   <none>   3s    <unknown>\n" +
		"sim-3   Ready      <none>   3s    <unknown>\n"
	if got := readyNodes(table); got != 2 {
		t.Errorf("readyNodes = %d, want 2", got)
	}
}
