package natscluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
)

func pod(ns, name string) events.Pod {
	return events.Pod{
		Metadata: events.ObjectMeta{Name: name, Namespace: ns, UID: "uid-" + name},
		Spec:     events.PodSpec{Containers: []events.Container{{Name: "app", Image: "skiff.dev/echo:latest"}}},
	}
}

func newEvent(t testing.TB, node string, obj events.ObjectRef, p events.Payload) *events.Event {
	t.Helper()
	ev, err := events.New(time.Now(), events.Meta{Actor: "natscluster-test"}, obj, node, p)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func podRef(name string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: "uid-" + name}
}

// podCreated is an event on skiff.ev.pod.default.NAME.
func podCreated(t testing.TB, name string) *events.Event {
	return newEvent(t, "", podRef(name), &events.PodCreated{Pod: pod("default", name)})
}

// podBound is an event on skiff.ev.bind.NODE.default.NAME.
func podBound(t testing.TB, node, name string) *events.Event {
	p := pod("default", name)
	p.Spec.NodeName = node
	return newEvent(t, node, podRef(name), &events.PodBound{Pod: p})
}

// statusReported is an event on skiff.ev.status.NODE.default.NAME.
func statusReported(t testing.TB, node, name string) *events.Event {
	return newEvent(t, node, podRef(name), &events.PodStatusReported{UID: "uid-" + name, Status: events.PodStatus{Phase: events.PodRunning}})
}

func msgCount(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

var _ = fmt.Sprint
