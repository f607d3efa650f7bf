package checker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

// Each case writes a small history to a real log and names the violations Check must find: one
// substring per violation, in order, and no other violation.
func TestCheck(t *testing.T) {
	cases := []struct {
		name  string
		write func(l *logw)
		want  []string
	}{
		{
			name: "good: rollout, graceful delete, eviction with a late report, name reuse",
			write: func(l *logw) {
				l.register("n1")
				l.register("n2")
				l.run("a", "u-a", "n1")
				l.run("b", "u-b", "n2")
				// Never scheduled, then deleted at once.
				l.create("c", "u-c")
				l.unschedulable("c", "u-c")
				l.deletionRequested("c", "u-c")
				l.deleted("c", "u-c")
				// Scheduled, deleted before the binding: the stop request claims the subject.
				l.create("d", "u-d")
				l.schedule("d", "u-d", "n1")
				l.deletionRequested("d", "u-d")
				l.stop("d", "u-d", "n1")
				l.deleted("d", "u-d")
				// Graceful delete, then the name again with a new uid on the same node.
				l.remove("a", "u-a", "n1")
				l.run("a", "u-a2", "n1")
				// Eviction from n2 (cut off): stop, delete; n2 reports Running late, then sees
				// the stop request and reports the pod terminated.
				l.stop("b", "u-b", "n2")
				l.deleted("b", "u-b")
				l.status("b", "u-b", "n2", events.PodRunning)
				l.terminated("b", "u-b", "n2")
				l.run("b2", "u-b2", "n1")
			},
		},
		{
			name: "scheduled twice, to two nodes",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.schedule("a", "u-a", "n1")
				l.schedule("a", "u-a", "n2")
			},
			want: []string{"bound once: pod default/a (uid u-a) is scheduled twice: to n1 at seq 2 and to n2 at seq 3"},
		},
		{
			name: "bound twice, on two nodes",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.schedule("a", "u-a", "n1")
				l.bind("a", "u-a", "n1")
				l.bind("a", "u-a", "n2")
			},
			want: []string{"bound once: pod default/a (uid u-a) is bound twice: to n1 at seq 3 and to n2 at seq 4"},
		},
		{
			name: "bound to a node it was not scheduled to",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.schedule("a", "u-a", "n1")
				l.bind("a", "u-a", "n2")
			},
			want: []string{"bound once: pod default/a (uid u-a) is bound to n2 at seq 3 but was scheduled to n1 at seq 2"},
		},
		{
			name: "two running copies: a node reports a pod bound elsewhere",
			write: func(l *logw) {
				l.run("a", "u-a", "n1")
				l.status("a", "u-a", "n2", events.PodRunning)
			},
			want: []string{
				"one running copy: seq 6 PodStatusReported on skiff.ev.status.n2.default.a: n2 reports pod default/a (uid u-a), which is bound to n1 (seq 3): a second copy",
				"one running copy: pod default/a is Running on 2 nodes at the end of the log: [n1 n2]",
			},
		},
		{
			name: "a deleted pod still running: evicted, reported late, never terminated",
			write: func(l *logw) {
				l.run("a", "u-a", "n1")
				l.stop("a", "u-a", "n1")
				l.deleted("a", "u-a")
				l.status("a", "u-a", "n1", events.PodRunning)
			},
			want: []string{"one running copy: pod default/a (uid u-a) was deleted at seq 7, but n1's last report (seq 8) says Running and no PodTerminated followed"},
		},
		{
			name: "a deleted pod on a node deleted since is not counted",
			write: func(l *logw) {
				l.register("n1")
				l.run("a", "u-a", "n1")
				l.stop("a", "u-a", "n1")
				l.deleted("a", "u-a")
				l.deleteNode("n1")
			},
		},
		{
			name: "running again after terminated",
			write: func(l *logw) {
				l.run("a", "u-a", "n1")
				l.stop("a", "u-a", "n1")
				l.terminated("a", "u-a", "n1")
				l.status("a", "u-a", "n1", events.PodRunning)
			},
			want: []string{"one running copy: seq 8 PodStatusReported on skiff.ev.status.n1.default.a: n1 reports pod default/a (uid u-a) Running after it reported it terminated at seq 7"},
		},
		{
			name: "events after the delete",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.deletionRequested("a", "u-a")
				l.deleted("a", "u-a")
				l.schedule("a", "u-a", "n1")
				l.deletionRequested("a", "u-a")
			},
			want: []string{
				"pod lifecycle: seq 4 PodScheduled on skiff.ev.pod.default.a comes after pod default/a (uid u-a) was deleted at seq 3",
				"pod lifecycle: seq 5 PodDeletionRequested on skiff.ev.pod.default.a comes after pod default/a (uid u-a) was deleted at seq 3",
			},
		},
		{
			name: "bound after the stop request that claimed the bind subject, deleted without one",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.schedule("a", "u-a", "n1")
				l.stop("a", "u-a", "n1")
				l.bind("a", "u-a", "n1")
				l.create("b", "u-b")
				l.schedule("b", "u-b", "n1")
				l.deleted("b", "u-b")
			},
			want: []string{
				"pod lifecycle: seq 4 PodBound on skiff.ev.bind.n1.default.a binds pod default/a (uid u-a) after its stop request at seq 3",
				"pod lifecycle: seq 7 PodDeleted on skiff.ev.pod.default.b deletes pod default/b (uid u-b), scheduled to n1 at seq 6, without a stop request",
			},
		},
		{
			name: "out of order: status before the binding, unschedulable after scheduled, unknown uid",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.schedule("a", "u-a", "n1")
				l.status("a", "u-a", "n1", events.PodPending)
				l.unschedulable("a", "u-a")
				l.schedule("x", "u-x", "n1")
			},
			want: []string{
				"pod lifecycle: seq 3 PodStatusReported on skiff.ev.status.n1.default.a: n1 reports pod default/a (uid u-a) before any binding of it",
				"pod lifecycle: seq 4 PodUnschedulable on skiff.ev.pod.default.a comes after pod default/a (uid u-a) was scheduled to n1 at seq 2",
				"pod lifecycle: seq 5 PodScheduled on skiff.ev.pod.default.x is about uid u-x, which no earlier PodCreated created",
			},
		},
		{
			name: "a name created twice",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.create("a", "u-a2")
			},
			want: []string{"pod lifecycle: seq 2 PodCreated on skiff.ev.pod.default.a creates pod default/a as uid u-a2 while uid u-a (created at seq 1) is not deleted"},
		},
		{
			name: "an event appended unconditionally",
			write: func(l *logw) {
				l.create("a", "u-a")
				ev := l.event(podRef("a", "u-a"), "", &events.PodDeletionRequested{UID: "u-a"})
				data, _ := ev.Marshal()
				l.publish(ev.Subject, data, nats.Header{jetstream.MsgIDHeader: {ev.ID}})
			},
			want: []string{"conditional sequence: seq 2 PodDeletionRequested on skiff.ev.pod.default.a was appended unconditionally"},
		},
		{
			name: "an event conditional on another subject's sequence",
			write: func(l *logw) {
				l.create("a", "u-a")
				l.create("b", "u-b")
				ev := l.event(podRef("a", "u-a"), "", &events.PodDeletionRequested{UID: "u-a"})
				data, _ := ev.Marshal()
				l.publish(ev.Subject, data, nats.Header{jetstream.MsgIDHeader: {ev.ID},
					jetstream.ExpectedLastSubjSeqHeader: {"2"}, jetstream.ExpectedLastSubjSeqSubjHeader: {"skiff.ev.pod.default.b"}})
			},
			want: []string{"conditional sequence: seq 3 on skiff.ev.pod.default.a was appended on condition of the last sequence of skiff.ev.pod.default.b, not its own subject's"},
		},
		{
			name: "an event id used twice",
			write: func(l *logw) {
				l.create("a", "u-a")
				again := *l.last
				again.Data = &events.PodDeletionRequested{UID: "u-a"}
				again.Type = "PodDeletionRequested"
				again.Payload = []byte(`{"uid":"u-a","gracePeriodSeconds":30}`)
				data, _ := again.Marshal()
				l.publish(again.Subject, data, nats.Header{jetstream.MsgIDHeader: {"other"}, jetstream.ExpectedLastSubjSeqHeader: {"1"}})
			},
			want: []string{
				"conditional sequence: seq 2 PodDeletionRequested on skiff.ev.pod.default.a has event id",
				"conditional sequence: seq 1 and seq 2 carry the same event id",
			},
		},
		{
			name: "good: terms, and a leader's writes fenced on its term",
			write: func(l *logw) {
				first := l.term("a", 1)
				l.fenced(first, l.event(podRef("a", "u-a"), "", &events.PodCreated{Pod: pod("a", "u-a", "")}))
				second := l.term("b", 2)
				l.fenced(second, l.event(podRef("b", "u-b"), "", &events.PodCreated{Pod: pod("b", "u-b", "")}))
			},
		},
		{
			name: "a term that skips a number, a fence that names another term",
			write: func(l *logw) {
				l.term("a", 1)
				second := l.term("b", 3)
				ev := l.event(events.PassRef("scheduling"), "", &events.LeaderWrote{Term: 1, Events: 0})
				data, _ := ev.Marshal()
				l.publish(ev.Subject, data, nats.Header{jetstream.MsgIDHeader: {ev.ID},
					jetstream.ExpectedLastSubjSeqHeader: {fmt.Sprint(second.Seq)}, jetstream.ExpectedLastSubjSeqSubjHeader: {events.TermSubject}})
			},
			want: []string{
				"leader terms: seq 2 LeaderElected begins term 3 after term 1",
				"leader terms: seq 3 LeaderWrote says term 1, but its condition names seq 2, which is no LeaderElected of that term",
			},
		},
		{
			name: "poison is listed, not a violation",
			write: func(l *logw) {
				l.create("a", "u-a")
				for _, p := range poison {
					l.publish(p.subject, []byte(p.data), nil)
				}
				l.deletionRequested("a", "u-a") // conditional on the poison's sequence
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, nc, _ := eventstest.NewStore(t)
			tc.write(newLogw(t, st, nc))
			r, err := Check(context.Background(), st)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Violations) != len(tc.want) {
				t.Fatalf("%d violations, want %d:\n%v", len(r.Violations), len(tc.want), r.Err())
			}
			for i, w := range tc.want {
				if !strings.Contains(r.Violations[i], w) {
					t.Errorf("violation %d = %q\nwant it to contain %q", i, r.Violations[i], w)
				}
			}
			if (r.Err() == nil) != (len(tc.want) == 0) {
				t.Errorf("Err() = %v with %d violations", r.Err(), len(tc.want))
			}
			head, _ := st.Head(context.Background())
			if r.Head != head || r.Events != int(head) {
				t.Errorf("Head, Events = %d, %d; want %d, %d", r.Head, r.Events, head, head)
			}
		})
	}
}

var poison = []struct{ subject, data, why string }{
	{events.ObjectSubject(events.KindPod, "default", "junk"), "this is not json", "malformed envelope"},
	{events.ObjectSubject(events.KindService, "default", "junk"), `{"id":"p2","type":"ServiceTeleported","v":1,"payload":{}}`, `unknown type "ServiceTeleported"`},
	{events.ObjectSubject(events.KindEndpoints, "default", "junk"), `{"id":"p3","type":"EndpointsUpdated","v":99,"payload":{}}`, "version 99 is not supported"},
	{events.ObjectSubject(events.KindPod, "default", "huge"), `{"type":"PodCreated","v":1,"payload":{"pod":{"metadata":{"name":"` + strings.Repeat("x", events.MaxEventBytes) + `"}}}}`, "more than an event may have"},
	{events.ObjectSubject(events.KindPod, "default", "a"), `{"id":"p5","type":"ServiceApplied","v":1,"payload":{"service":{}}}`, "does not belong on"},
	{events.SubjectRoot + ".pod.default", `{"id":"p6","type":"PodDeleted","v":1,"payload":{"uid":"u-a"}}`, "wrong shape"},
	{events.ObjectSubject(events.KindPod, "default", "a"), `{"id":"p7","type":"PodDeleted","v":1,"payload":{"uid":7}}`, "malformed PodDeleted payload"},
}

// Poison is listed in log order with why, and counted; it breaks nothing.
func TestCheckListsPoison(t *testing.T) {
	st, nc, _ := eventstest.NewStore(t)
	l := newLogw(t, st, nc)
	l.create("a", "u-a")
	var seqs []uint64
	for _, p := range poison {
		seqs = append(seqs, l.publish(p.subject, []byte(p.data), nil))
	}
	r, err := Check(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if len(r.Poison) != len(poison) {
		t.Fatalf("poison = %+v, want %d", r.Poison, len(poison))
	}
	for i, p := range poison {
		got := r.Poison[i]
		if got.Seq != seqs[i] || got.Subject != p.subject || !strings.Contains(got.Reason, p.why) {
			t.Errorf("poison %d = %d %s %q, want %d %s containing %q", i, got.Seq, got.Subject, got.Reason, seqs[i], p.subject, p.why)
		}
	}
	if diff := cmp.Diff(map[string]int{"PodCreated": 1, PoisonType: len(poison)}, r.Counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

// The facts of a good log: who is bound where, what runs where, what is live, and where each
// event id sits.
func TestCheckFacts(t *testing.T) {
	st, nc, _ := eventstest.NewStore(t)
	l := newLogw(t, st, nc)
	l.run("a", "u-a", "n1")
	idA := l.last.ID
	l.run("b", "u-b", "n2")
	l.create("c", "u-c")
	l.schedule("c", "u-c", "n1") // not bound yet
	l.run("d", "u-d", "n2")
	l.stop("d", "u-d", "n2") // evicted from n2, which has not come back
	l.deleted("d", "u-d")
	r, err := Check(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	// d's node said Running last, before the deletion, and never came back: a violation.
	if got := r.Of(OneRunning); len(got) != 1 || !strings.Contains(got[0], "default/d (uid u-d) was deleted") {
		t.Errorf("one running copy violations = %q", got)
	}
	if diff := cmp.Diff(map[string]string{"u-a": "n1", "u-b": "n2", "u-d": "n2"}, r.Bound); diff != "" {
		t.Errorf("Bound (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]string{"default/a": {"n1"}, "default/b": {"n2"}}, r.Running); diff != "" {
		t.Errorf("Running (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"default/a": "u-a", "default/b": "u-b", "default/c": "u-c"}, r.Live); diff != "" {
		t.Errorf("Live (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default/c u-c@n1"}, r.Unbound); diff != "" {
		t.Errorf("Unbound (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default/d u-d@n2"}, r.Unterminated); diff != "" {
		t.Errorf("Unterminated (-want +got):\n%s", diff)
	}
	if seq, ok := r.Seq(idA); !ok || seq != 5 {
		t.Errorf("Seq(id of a's Running report) = %d, %v; want 5", seq, ok)
	}
	want := &Pod{UID: "u-d", Namespace: ns, Name: "d", Created: 13, Scheduled: 14, Node: "n2", Bound: 15, BoundNode: "n2",
		StopRequested: 18, Deleted: 19, Reports: map[string]*NodeReport{"n2": {Seq: 17, Phase: events.PodRunning}}}
	if diff := cmp.Diff(want, r.Pods["u-d"]); diff != "" {
		t.Errorf("Pods[u-d] (-want +got):\n%s", diff)
	}
}

// What the server guarantees cannot be broken through it, so the replay of conditions and the
// sequence checks are fed messages directly: a stored condition that did not hold, a gap, a
// sequence going back, a Nats-Msg-Id seen twice.
func TestConditionsReplayed(t *testing.T) {
	ev := func(seq uint64, id string) *events.Event {
		l := newLogw(t, nil, nil)
		e := l.event(podRef("a", "u-a"), "", &events.PodCreated{Pod: pod("a", "u-a", "")})
		e.Seq, e.ID = seq, id
		return e
	}
	subj := events.ObjectSubject(events.KindPod, ns, "a")
	msgs := []*message{
		{subject: subj, seq: 2, msgID: "i2", hasExpect: true, expect: 0, ev: ev(2, "i2")},
		{subject: subj, seq: 3, msgID: "i3", hasExpect: true, expect: 1, ev: ev(3, "i3")},
		{subject: subj, seq: 5, msgID: "i3", hasExpect: true, expect: 3, err: fmt.Errorf("boom")},
		{subject: subj, seq: 4, msgID: "i4", hasExpect: true, badExpect: "x", err: fmt.Errorf("boom")},
	}
	c := newChecker(5)
	for _, m := range msgs {
		c.message(m)
	}
	c.finish()
	want := []string{
		"conditional sequence: the log begins at sequence 2: events 1 to 1 are gone",
		"conditional sequence: seq 3 on skiff.ev.pod.default.a was appended on condition that the subject's last sequence was 1, but it was 2",
		"pod lifecycle: seq 3 PodCreated on skiff.ev.pod.default.a creates uid u-a again (created at seq 2)",
		"conditional sequence: the log jumps from sequence 3 to 5: the events between are gone",
		"conditional sequence: seq 3 and seq 5 carry the same Nats-Msg-Id \"i3\"",
		"conditional sequence: sequence 4 comes after 5: the stream's sequences must increase",
		"conditional sequence: seq 4 on skiff.ev.pod.default.a carries expected last subject sequence \"x\", which is not a number",
	}
	if diff := cmp.Diff(want, c.r.Violations); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}

	// The last messages gone: the stream's last sequence is 3, only 1 is there.
	c = newChecker(3)
	c.message(&message{subject: subj, seq: 1, msgID: "i1", hasExpect: true, ev: ev(1, "i1")})
	c.finish()
	want = []string{"conditional sequence: the log ends at sequence 1, before its last sequence 3: events 2 to 3 are gone"}
	if diff := cmp.Diff(want, c.r.Violations); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

// A real Nats-Msg-Id used twice: the server deduplicates within the stream's window, so the
// second copy lands only after it; the checker finds the pair.
func TestCheckDuplicateMsgID(t *testing.T) {
	st, nc, _ := eventstest.NewStore(t)
	ctx := context.Background()
	js := st.JetStream()
	s, err := js.Stream(ctx, st.Name())
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	l := newLogw(t, st, nc)
	l.create("a", "u-a")
	data, _ := l.last.Marshal()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := nats.NewMsg(l.last.Subject)
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, l.last.ID)
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server deduplicated the copy for 10 s")
		}
		time.Sleep(20 * time.Millisecond) // polling the server's window, not synchronising
	}
	r, err := Check(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("conditional sequence: seq 1 and seq 2 carry the same Nats-Msg-Id %q", l.last.ID),
		"conditional sequence: seq 2 PodCreated on skiff.ev.pod.default.a was appended unconditionally (no expected last subject sequence)",
		"pod lifecycle: seq 2 PodCreated on skiff.ev.pod.default.a creates uid u-a again (created at seq 1)",
	}
	if diff := cmp.Diff(want, r.Violations); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}
