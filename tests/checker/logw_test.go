package checker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// logw writes events to a real log the way Skiff's writers do: conditional on the subject's
// last sequence, with the event id as Nats-Msg-Id (store.Append). Its helpers write one pod
// event each; a test composes them into a history, good or bad.
type logw struct {
	t   testing.TB
	st  *store.Store
	nc  *nats.Conn
	now time.Time
	// last is the id of the last event written, for tests that reuse it.
	last *events.Event
}

func newLogw(t testing.TB, st *store.Store, nc *nats.Conn) *logw {
	return &logw{t: t, st: st, nc: nc, now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

const ns = "default"

func podRef(name, uid string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: ns, Name: name, UID: uid}
}

// append writes p about ref (node for bind and status events) and returns its sequence.
func (l *logw) append(ref events.ObjectRef, node string, p events.Payload) uint64 {
	l.t.Helper()
	ev := l.event(ref, node, p)
	ctx := context.Background()
	expect, err := l.st.LastSeq(ctx, ev.Subject)
	if err != nil {
		l.t.Fatal(err)
	}
	seq, err := l.st.Append(ctx, ev, expect)
	if err != nil {
		l.t.Fatalf("append %s: %v", ev.Type, err)
	}
	l.last = ev
	return seq
}

func (l *logw) event(ref events.ObjectRef, node string, p events.Payload) *events.Event {
	l.t.Helper()
	l.now = l.now.Add(time.Second)
	actor := "scheduler/test"
	if events.KindOf(p.EventType()) == events.KindStatus {
		actor = "node/" + node
	}
	ev, err := events.New(l.now, events.Meta{Actor: actor}, ref, node, p)
	if err != nil {
		l.t.Fatal(err)
	}
	return ev
}

// publish writes raw data on subject with headers (nil: none), as an admin could.
func (l *logw) publish(subject string, data []byte, hdr nats.Header) uint64 {
	l.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, vs := range hdr {
		for _, v := range vs {
			msg.Header.Add(k, v)
		}
	}
	ack, err := l.st.JetStream().PublishMsg(context.Background(), msg)
	if err != nil {
		l.t.Fatalf("publish on %s: %v", subject, err)
	}
	return ack.Sequence
}

func (l *logw) register(node string) uint64 {
	return l.append(events.ObjectRef{Kind: events.KindNode, Name: node}, "",
		&events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110})
}

func (l *logw) deleteNode(node string) uint64 {
	return l.append(events.ObjectRef{Kind: events.KindNode, Namespace: events.ClusterScope, Name: node}, "", &events.NodeDeleted{})
}

func pod(name, uid, node string) events.Pod {
	return events.Pod{
		Metadata: events.ObjectMeta{Name: name, Namespace: ns, UID: uid},
		Spec:     events.PodSpec{Containers: []events.Container{{Name: "c", Image: "skiff.dev/echo:v1"}}, NodeName: node},
	}
}

func (l *logw) create(name, uid string) uint64 {
	return l.append(podRef(name, uid), "", &events.PodCreated{Pod: pod(name, uid, "")})
}

func (l *logw) schedule(name, uid, node string) uint64 {
	return l.append(podRef(name, uid), "", &events.PodScheduled{UID: uid, Node: node, Feasible: 1, Nodes: 1})
}

func (l *logw) unschedulable(name, uid string) uint64 {
	return l.append(podRef(name, uid), "", &events.PodUnschedulable{UID: uid, Message: "0/1 nodes are available"})
}

func (l *logw) bind(name, uid, node string) uint64 {
	return l.append(podRef(name, uid), node, &events.PodBound{Pod: pod(name, uid, node)})
}

func (l *logw) status(name, uid, node, phase string) uint64 {
	return l.append(podRef(name, uid), node, &events.PodStatusReported{UID: uid, Status: events.PodStatus{Phase: phase, PodIP: "10.88.0.2"}})
}

func (l *logw) terminated(name, uid, node string) uint64 {
	return l.append(podRef(name, uid), node, &events.PodTerminated{UID: uid})
}

func (l *logw) deletionRequested(name, uid string) uint64 {
	return l.append(podRef(name, uid), "", &events.PodDeletionRequested{UID: uid, GracePeriodSeconds: 30})
}

func (l *logw) stop(name, uid, node string) uint64 {
	return l.append(podRef(name, uid), node, &events.PodStopRequested{UID: uid, GracePeriodSeconds: 30})
}

func (l *logw) deleted(name, uid string) uint64 {
	return l.append(podRef(name, uid), "", &events.PodDeleted{UID: uid})
}

// run takes a pod from creation to Running on node.
func (l *logw) run(name, uid, node string) {
	l.create(name, uid)
	l.schedule(name, uid, node)
	l.bind(name, uid, node)
	l.status(name, uid, node, events.PodPending)
	l.status(name, uid, node, events.PodRunning)
}

// remove deletes a running pod gracefully, as the pod lifecycle controller and the agent do.
func (l *logw) remove(name, uid, node string) {
	l.deletionRequested(name, uid)
	l.stop(name, uid, node)
	l.terminated(name, uid, node)
	l.deleted(name, uid)
}

// term begins term n for replica, as a leader does.
func (l *logw) term(replica string, n uint64) store.Term {
	l.t.Helper()
	l.append(events.TermRef, "", &events.LeaderElected{Replica: replica, Term: n})
	t, err := l.st.LastTerm(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	return t
}

// fenced writes evs as one batch of a leader's loop in term t, each conditional on its
// subject's last sequence.
func (l *logw) fenced(t store.Term, evs ...*events.Event) {
	l.t.Helper()
	ctx := context.Background()
	ws := make([]store.Write, len(evs))
	for i, ev := range evs {
		expect, err := l.st.LastSeq(ctx, ev.Subject)
		if err != nil {
			l.t.Fatal(err)
		}
		ws[i] = store.Write{Event: ev, Expect: expect}
	}
	for _, err := range l.st.Fenced(t, "scheduling", store.FenceConfig{Actor: "scheduler/test"}).AppendAll(ctx, ws) {
		if err != nil {
			l.t.Fatal(err)
		}
	}
}
