package scheduling

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// TestFinishesGaps: a pod whose PodScheduled is in the log without its PodBound (its scheduler
// died between the two) gets its PodBound, on the node decided, without a second decision:
// found at start, and found later while running.
func TestFinishesGaps(t *testing.T) {
	for _, atStart := range []bool{true, false} {
		t.Run(fmt.Sprintf("at start=%v", atStart), func(t *testing.T) {
			c := newTestCluster(t)
			c.append(nodeEvent(t, nodeSpec{name: "n1", milliCPU: 4000, memory: 8 << 30}),
				nodeEvent(t, nodeSpec{name: "n2", milliCPU: 4000, memory: 8 << 30}))
			if !atStart {
				c.start(Config{GapInterval: 5 * time.Millisecond})
				// The scheduler is running: give it a pod of its own and wait, so the half-done
				// pod below is certainly found by a later scan, not the first.
				c.append(podEvent(t, podSpec{name: "other"}))
				c.waitFor("other bound", func(st *state.State) bool { return isBound(st, "other") })
			}
			// A scheduler decided "half" onto n2 and died. The test writes both events in one
			// AppendAll in order, so the running scheduler never sees "half" pending.
			created := podEvent(t, podSpec{name: "half"})
			var seq uint64
			c.proj.View(func(st *state.State) { seq = st.SubjectSeq(created.Subject) })
			if _, err := c.log.Append(c.ctx, created, seq); err != nil {
				t.Fatal(err)
			}
			scheduled := mustEvent(t, ref(events.KindPod, "half"), "", &events.PodScheduled{UID: "uid-half", Node: "n2"})
			if _, err := c.log.Append(c.ctx, scheduled, created.Seq); err != nil {
				t.Fatal(err)
			}
			if atStart {
				// The scheduler starts from a projection that has the half-done pod.
				if err := c.proj.WaitSeq(c.ctx, scheduled.Seq); err != nil {
					t.Fatal(err)
				}
				c.start(Config{})
			}
			c.waitFor("half bound", func(st *state.State) bool { return isBound(st, "half") })
			if got := c.history(events.ObjectSubject(events.KindPod, "default", "half")); !cmp.Equal(got, []string{"PodCreated", "PodScheduled"}) {
				t.Errorf("pod history = %v, want PodCreated, PodScheduled (no second decision)", got)
			}
			evs, err := c.log.History(c.ctx, events.BindSubject("n2", "default", "half"))
			if err != nil || len(evs) != 1 {
				t.Fatalf("bind subject on n2 holds %d events (%v), want one PodBound", len(evs), err)
			}
			bound := evs[0].Data.(*events.PodBound)
			if bound.Pod.Spec.NodeName != "n2" || bound.Pod.Metadata.UID != "uid-half" || len(bound.Pod.Spec.Containers) != 1 {
				t.Errorf("PodBound carries nodeName %q, uid %q, %d containers; want n2, uid-half, 1",
					bound.Pod.Spec.NodeName, bound.Pod.Metadata.UID, len(bound.Pod.Spec.Containers))
			}
		})
	}
}

// interloper is the log with another writer in it: before the scheduler's first PodScheduled
// goes out, it writes what the test says to the same pod, as if another scheduler or a user got
// there between the scheduler's decision and its append (Nomad's RejectPlan, by the log's rules).
type interloper struct {
	log    *store.Store
	once   sync.Once
	before func(w store.Write)
}

func (i *interloper) AppendAll(ctx context.Context, ws []store.Write) []error {
	for _, w := range ws {
		if w.Event.Type == "PodScheduled" {
			i.once.Do(func() { i.before(w) })
			break
		}
	}
	return i.log.AppendAll(ctx, ws)
}

func TestConflictWhileDeciding(t *testing.T) {
	for _, c := range []struct {
		name string
		// interfere writes to the pod subject at the sequence the scheduler decided at.
		interfere func(c *testCluster, w store.Write) []*events.Event
		wantNode  string // "" if the pod must not be bound
	}{
		{
			name: "another scheduler bound it",
			interfere: func(c *testCluster, w store.Write) []*events.Event {
				uid := w.Event.Object.UID
				s := mustEvent(c.t, w.Event.Object, "", &events.PodScheduled{UID: uid, Node: "n2"})
				pod := events.Pod{Metadata: events.ObjectMeta{Name: w.Event.Object.Name, Namespace: "default", UID: uid}, Spec: events.PodSpec{NodeName: "n2"}}
				b := mustEvent(c.t, w.Event.Object, "n2", &events.PodBound{Pod: pod})
				return []*events.Event{s, b}
			},
			wantNode: "n2",
		},
		{
			name: "another scheduler decided and died",
			interfere: func(c *testCluster, w store.Write) []*events.Event {
				return []*events.Event{mustEvent(c.t, w.Event.Object, "", &events.PodScheduled{UID: w.Event.Object.UID, Node: "n2"})}
			},
			wantNode: "n2",
		},
		{
			name: "a user deleted it",
			interfere: func(c *testCluster, w store.Write) []*events.Event {
				return []*events.Event{mustEvent(c.t, w.Event.Object, "", &events.PodDeletionRequested{UID: w.Event.Object.UID, GracePeriodSeconds: 30})}
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestCluster(t)
			// n1 is emptier, so the scheduler picks it; the interloper picks n2.
			tc.append(nodeEvent(t, nodeSpec{name: "n1", milliCPU: 8000, memory: 16 << 30}),
				nodeEvent(t, nodeSpec{name: "n2", milliCPU: 4000, memory: 8 << 30}),
				podEvent(t, podSpec{name: "contested", cpu: "1"}))
			il := &interloper{log: tc.log, before: func(w store.Write) {
				expect := w.Expect
				for _, ev := range c.interfere(tc, w) {
					if ev.Subject != w.Event.Subject {
						expect = 0
					}
					if _, err := tc.log.Append(tc.ctx, ev, expect); err != nil {
						t.Errorf("interloper: %v", err)
					}
					expect = ev.Seq
				}
			}}
			watch := newLogWatch()
			tc.start(Config{Log: il, GapInterval: 5 * time.Millisecond, Logger: slog.New(watch)})
			watch.waitCount(t, "pod changed while deciding; deciding again", 1)
			// A pod created after the conflict is bound only by a later pass: once it is bound,
			// the scheduler has looked at "contested" again.
			tc.append(podEvent(t, podSpec{name: "later"}))
			tc.waitFor("later bound", func(st *state.State) bool { return isBound(st, "later") })
			if c.wantNode != "" {
				tc.waitFor("contested bound", func(st *state.State) bool { return isBound(st, "contested") })
			}
			p := tc.pod("contested")
			if p.Spec.NodeName != c.wantNode || p.Bound != (c.wantNode != "") {
				t.Errorf("contested is on %q (bound %v), want %q", p.Spec.NodeName, p.Bound, c.wantNode)
			}
			want := map[string]int{"PodCreated": 1}
			if c.wantNode != "" {
				want["PodScheduled"], want["PodBound"] = 1, 1
			} else {
				want["PodDeletionRequested"] = 1
			}
			if diff := cmp.Diff(want, tc.countByPod()["contested"]); diff != "" {
				t.Errorf("events of contested (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTwoSchedulersRace runs two schedulers, each with its own projection, on 1,000 pods over
// 20 nodes: every pod is decided and bound exactly once.
func TestTwoSchedulersRace(t *testing.T) {
	c := newTestCluster(t)
	var nodes []*events.Event
	for i := range 20 {
		nodes = append(nodes, nodeEvent(t, nodeSpec{name: fmt.Sprintf("n%02d", i), milliCPU: 32000, memory: 64 << 30}))
	}
	c.append(nodes...)
	const pods = 1000
	for start := 0; start < pods; start += 250 {
		var evs []*events.Event
		for i := start; i < start+250; i++ {
			evs = append(evs, podEvent(t, podSpec{name: podName(i), cpu: "100m", memory: "100Mi", owner: fmt.Sprintf("d%d", i%7)}))
		}
		c.append(evs...)
	}
	for _, actor := range []string{"scheduler/a", "scheduler/b"} {
		// Small batches and short gap scans interleave the two as much as possible.
		c.startOn(eventstest.Follow(c.t, c.log), Config{Actor: actor, BatchSize: 37, GapInterval: 2 * time.Millisecond})
	}
	c.waitFor("all pods bound", allBound(pods))
	counts := c.countByPod()
	for i := range pods {
		want := map[string]int{"PodCreated": 1, "PodScheduled": 1, "PodBound": 1}
		if diff := cmp.Diff(want, counts[podName(i)]); diff != "" {
			t.Errorf("events of %s (-want +got):\n%s", podName(i), diff)
		}
	}
	perNode := map[string]int{}
	c.proj.View(func(st *state.State) {
		for _, n := range st.Nodes {
			perNode[n.Metadata.Name] = n.PodCount
		}
	})
	for n, count := range perNode {
		if count < 40 || count > 60 {
			t.Errorf("node %s has %d pods; want about 50 (spread)", n, count)
		}
	}
}
