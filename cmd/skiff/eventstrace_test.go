package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

// appendMeta writes one event at t0+at with meta, conditionally, and returns it (with its
// sequence) so the next can name it as its cause.
func (c *cluster) appendMeta(at time.Duration, meta events.Meta, ref events.ObjectRef, node string, p events.Payload) *events.Event {
	c.t.Helper()
	ev, err := events.New(t0.Add(at), meta, ref, node, p)
	if err != nil {
		c.t.Fatalf("new %T: %v", p, err)
	}
	if ev.Seq, err = c.st.Append(context.Background(), ev, c.fold.SubjectSeq(ev.Subject)); err != nil {
		c.t.Fatalf("append %s: %v", ev.Type, err)
	}
	if err := c.fold.Apply(ev); err != nil {
		c.t.Fatalf("the test's own event does not apply: %v", err)
	}
	return ev
}

// rollout writes what one `skiff apply` of a Deployment of two pods behind a Service causes, as
// the services write it: each event names its cause and the command's correlation. Another
// command's events are interleaved, and an earlier command on the same Deployment precedes it.
func rollout(c *cluster) {
	user := func(cmd string) events.Meta {
		return events.Meta{Actor: "user/alice", CausationID: cmd, CorrelationID: cmd}
	}
	sched := events.Meta{Actor: "scheduler/r1"}
	dep := events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "echo", UID: "d1"}
	one := int32(1)
	spec := events.DeploymentSpec{Replicas: &one, Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}}
	d := events.Deployment{TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: events.ObjectMeta{Name: "echo", Namespace: "default", UID: "d1", Generation: 1}, Spec: spec}
	c.appendMeta(0, user("cmd-apply-1"), dep, "", &events.DeploymentApplied{Deployment: d})
	other := events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "other", UID: "d2"}
	d2 := d
	d2.Metadata.Name, d2.Metadata.UID = "other", "d2"
	c.appendMeta(time.Second, user("cmd-other"), other, "", &events.DeploymentApplied{Deployment: d2})

	base := 10 * time.Second
	scaled := c.appendMeta(base, user("cmd-scale"), dep, "", &events.DeploymentScaled{Replicas: 2, Generation: 2})
	var reports []*events.Event
	for i, name := range []string{"echo-a", "echo-b"} {
		node := []string{"n1", "n2"}[i]
		ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: "p" + name}
		pod := events.Pod{TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: "p" + name, Labels: map[string]string{"app": "echo"},
				OwnerReferences: []events.OwnerReference{{Kind: "Deployment", Name: "echo", UID: "d1", Controller: true}}},
			Spec: events.PodSpec{Containers: []events.Container{{Name: "echo", Image: "echo"}}}}
		off := time.Duration(i) * 3 * time.Millisecond
		created := c.appendMeta(base+12*time.Millisecond+off, sched.Caused(scaled), ref, "", &events.PodCreated{Pod: pod})
		scheduled := c.appendMeta(base+20*time.Millisecond+off, sched.Caused(created), ref, "", &events.PodScheduled{UID: ref.UID, Node: node, Score: 100, Feasible: 2, Nodes: 2})
		pod.Spec.NodeName = node
		bound := c.appendMeta(base+24*time.Millisecond+off, sched.Caused(scheduled), ref, node, &events.PodBound{Pod: pod})
		agent := events.Meta{Actor: "node/" + node}
		c.appendMeta(base+40*time.Millisecond+off, agent.Caused(bound), ref, node,
			&events.PodStatusReported{UID: ref.UID, Status: events.PodStatus{Phase: events.PodPending}})
		reports = append(reports, c.appendMeta(base+(300+time.Duration(i)*150)*time.Millisecond, agent.Caused(bound), ref, node,
			&events.PodStatusReported{UID: ref.UID, Status: events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.0." + string(rune('2'+i))}}))
	}
	ep := events.ObjectRef{Kind: events.KindEndpoints, Namespace: "default", Name: "echo", UID: "s1"}
	c.appendMeta(base+470*time.Millisecond, sched.Caused(reports[1]), ep, "", &events.EndpointsUpdated{})
	c.appendMeta(base+480*time.Millisecond, sched.Caused(reports[1]), dep, "", &events.DeploymentRolloutProgressed{})
	// Written by the next command: not part of this trace.
	c.appendMeta(base+2*time.Second, user("cmd-other-2"), other, "", &events.DeploymentScaled{Replicas: 3, Generation: 2})
}

func TestEventsTrace(t *testing.T) {
	c := newCluster(t)
	rollout(c)
	for _, tc := range []struct {
		name, object, golden string
	}{
		{"the latest command on a deployment", "deployment/echo", "events-trace-deployment-echo.golden"},
		{"a pod: the command its events serve", "pod/echo-b", "events-trace-deployment-echo.golden"},
		{"another deployment's latest command", "deploy/other", "events-trace-deployment-other.golden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run("events", "trace", tc.object)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			got := r.stdout
			if tc.object == "pod/echo-b" {
				got = strings.Replace(got, "pod/echo-b:", "deployment/echo:", 1)
			}
			eventstest.Golden(t, filepath.Join("testdata", tc.golden), got)
		})
	}
}

func TestEventsTraceErrors(t *testing.T) {
	c := newCluster(t)
	rollout(c)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no such object", []string{"events", "trace", "deployment/nope"}, 1, "deployment/nope: not found: no event about it belongs to a command"},
		{"not KIND/NAME", []string{"events", "trace", "echo"}, 2, "name the object as KIND/NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
}
