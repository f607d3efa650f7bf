package work

import (
	"errors"
	"testing"
	"time"

	"skiff.dev/events"
)

func ev(t *testing.T, seq uint64, ref events.ObjectRef, node string, p events.Payload) *events.Event {
	t.Helper()
	e, err := events.New(time.Unix(0, 0), events.Meta{}, ref, node, p)
	if err != nil {
		t.Fatal(err)
	}
	e.Seq = seq
	return e
}

func TestView(t *testing.T) {
	v := New("n1")
	ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: "a"}
	pod := events.Pod{Metadata: events.ObjectMeta{Name: "a", Namespace: "default", UID: "u1"}, Spec: events.PodSpec{NodeName: "n1"}}
	steps := []struct {
		name    string
		e       *events.Event
		wantErr bool
	}{
		{"a node event is not work", ev(t, 2, events.ObjectRef{Kind: events.KindNode, Name: "n2"}, "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.2.0/24"}), true},
		{"bound", ev(t, 3, ref, "n1", &events.PodBound{Pod: pod}), false},
		{"bound twice", ev(t, 4, ref, "n1", &events.PodBound{Pod: pod}), true},
		{"status", ev(t, 5, ref, "n1", &events.PodStatusReported{UID: "u1", Status: events.PodStatus{Phase: events.PodRunning}}), false},
		{"other node's work", ev(t, 6, ref, "n9", &events.PodStatusReported{UID: "u1"}), true},
		{"stale uid", ev(t, 7, ref, "n1", &events.PodStopRequested{UID: "old", GracePeriodSeconds: 3}), true},
		{"stop", ev(t, 8, ref, "n1", &events.PodStopRequested{UID: "u1", GracePeriodSeconds: 3}), false},
		{"terminated", ev(t, 9, ref, "n1", &events.PodTerminated{UID: "u1"}), false},
	}
	for _, s := range steps {
		err := v.Apply(s.e)
		if (err != nil) != s.wantErr || (err != nil && !errors.Is(err, events.ErrFailedPrecondition)) {
			t.Fatalf("%s: err = %v, want error %v", s.name, err, s.wantErr)
		}
	}
	p := v.Pods[Key{"default", "a"}]
	if p == nil || !p.StopRequested || p.GracePeriodSeconds != 3 || !p.Terminated || p.Reported.Phase != events.PodRunning {
		t.Fatalf("pod = %+v", p)
	}
	if v.Seq != 9 || v.SubjectSeq(events.StatusSubject("n1", "default", "a")) != 9 {
		t.Fatalf("seq %d status seq %d", v.Seq, v.SubjectSeq(events.StatusSubject("n1", "default", "a")))
	}
	// A new pod of the same name after the old one terminated replaces it.
	pod2 := pod
	pod2.Metadata.UID = "u2"
	if err := v.Apply(ev(t, 10, ref, "n1", &events.PodBound{Pod: pod2})); err != nil {
		t.Fatal(err)
	}
	if p := v.Pods[Key{"default", "a"}]; p.UID() != "u2" || p.Terminated || p.Reported != nil {
		t.Fatalf("rebound pod = %+v", p)
	}
}
