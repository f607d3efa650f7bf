package main

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
)

// placements writes a small history with decisions to explain: two nodes, a Deployment whose
// pod web-a was placed where the scheduler's code places it, a pod web-b whose recorded decision
// is not what the code picks (as if an older scheduler had made it), and a pod that fits
// nowhere, with the nodes behind its reason. Every event names its cause, as the services write
// them. It returns the head.
func placements(c *cluster) uint64 {
	user := func(cmd string) events.Meta {
		return events.Meta{Actor: "user/alice", CausationID: cmd, CorrelationID: cmd}
	}
	sched := events.Meta{Actor: "scheduler/r1"}
	for i, n := range []struct {
		name string
		cpu  int64
	}{{"n1", 4000}, {"n2", 2000}} {
		c.appendMeta(time.Duration(i)*time.Second, events.Meta{Actor: "node/" + n.name}, nodeRef(n.name), "", &events.NodeRegistered{
			Address: fmt.Sprint("10.0.0.", i+1), MilliCPU: n.cpu, Memory: 8 << 30, MaxPods: 110})
	}
	dep := events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: "web", UID: "d1"}
	applied := c.appendMeta(time.Minute, user("cmd-apply"), dep, "", &events.DeploymentApplied{Deployment: webDeployment(1, 2, "nginx:1.25")})
	pod := func(name string) events.Pod {
		p := webPod(name, "u-"+name)
		p.Metadata.OwnerReferences = []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d1", Controller: true}}
		p.Spec.Containers[0].Resources.Requests = events.ResourceList{"cpu": "500m", "memory": "256Mi"}
		return p
	}
	var created []*events.Event
	for i, name := range []string{"web-a", "web-b"} {
		created = append(created, c.appendMeta(time.Minute+time.Duration(i)*time.Millisecond, sched.Caused(applied), podRef("default", name, "u-"+name), "",
			&events.PodCreated{Pod: pod(name)}))
	}
	stateSeq := created[1].Seq
	// web-b's recorded node is not what the code picks: with web-a assumed on n1, spreading the
	// Deployment makes n2 the better node.
	for i, node := range []string{"n1", "n1"} {
		name := []string{"web-a", "web-b"}[i]
		ref := podRef("default", name, "u-"+name)
		at := time.Minute + time.Second + time.Duration(i)*time.Millisecond
		scheduled := c.appendMeta(at, sched.Caused(created[i]), ref, "", &events.PodScheduled{UID: "u-" + name, Node: node, Score: 191, Feasible: 2, Nodes: 2, StateSeq: stateSeq})
		bound := pod(name)
		bound.Spec.NodeName = node
		b := c.appendMeta(at, sched.Caused(scheduled), ref, node, &events.PodBound{Pod: bound})
		if i == 0 {
			c.appendMeta(at+2*time.Second, events.Meta{Actor: "node/n1"}.Caused(b), ref, node, &events.PodStatusReported{UID: "u-web-a", Status: events.PodStatus{
				Phase: events.PodRunning, PodIP: "10.88.1.5", ContainerStatuses: []events.ContainerStatus{running(time.Minute + 3*time.Second)}}})
		}
	}
	huge := podRef("default", "huge", "u-huge")
	hp := events.Pod{Metadata: events.ObjectMeta{Namespace: "default", Name: "huge", UID: "u-huge"},
		Spec: events.PodSpec{Containers: []events.Container{{Name: "c", Image: "big:1", Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "6"}}}}}}
	made := c.appendMeta(2*time.Minute, user("cmd-huge"), huge, "", &events.PodCreated{Pod: hp})
	return c.appendMeta(2*time.Minute+time.Second, sched.Caused(made), huge, "", &events.PodUnschedulable{UID: "u-huge",
		Message: "0/2 nodes are available: 2 Insufficient cpu.", Reasons: map[string]int{"Insufficient cpu": 2},
		NodeReasons: map[string]string{"Insufficient cpu": "0-1"}, NodeSet: events.NodeSetDigest([]string{"n1", "n2"}), StateSeq: made.Seq}).Seq
}

func TestExplain(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	head := placements(c)
	f.waitSeq(t, head)
	c.check(t, []cliCase{
		{name: "scheduled", args: []string{"explain", "pod", "web-a"}, golden: "explain-pod-web-a.golden"},
		{name: "scheduled, replayed", args: []string{"explain", "pod/web-a", "--replay"}, golden: "explain-pod-web-a-replay.golden"},
		{name: "replay differs", args: []string{"explain", "pod", "web-b", "--replay"}, golden: "explain-pod-web-b-replay.golden",
			wantStderr: "error: the re-run picks n2, not the recorded n1\n", wantCode: 1},
		{name: "unschedulable", args: []string{"explain", "pod", "huge"}, golden: "explain-pod-huge.golden"},
		{name: "unschedulable, decided again", args: []string{"explain", "pod", "huge", "--replay"}, golden: "explain-pod-huge-replay.golden"},
		{name: "before it was scheduled", args: []string{"explain", "pod", "web-a", "--at", "4"}, golden: "explain-pod-web-a-at-4.golden"},
		{name: "json", args: []string{"explain", "pod", "huge", "-o", "json"}, golden: "explain-pod-huge.json.golden"},
		{name: "not a pod", args: []string{"explain", "deploy", "web"},
			wantStderr: "error: explain knows pods only, not deployments\nSee 'skiff explain --help' for usage.\n", wantCode: 2},
		{name: "missing", args: []string{"explain", "pod", "nope"},
			wantStderr: "Error from server (NotFound): pods \"nope\" not found\n", wantCode: 1},
		{name: "did not exist then", args: []string{"explain", "pod", "huge", "--at", "3"},
			wantStderr: "error: pod/huge in namespace default did not exist at sequence 3 (2025-03-01T12:01:00Z)\n", wantCode: 1},
		{name: "verify", args: []string{"events", "verify"}, golden: "events-verify.golden",
			wantStderr: "error: 1 of 2 decisions come out different with this scheduler\n", wantCode: 1},
		{name: "verify until before the odd one", args: []string{"events", "verify", "--until", "6"}, golden: "events-verify-until-6.golden"},
		{name: "verify until a time before the odd one", args: []string{"events", "verify", "--until", "2025-03-01T12:01:01Z"}, golden: "events-verify-until-6.golden"},
	})
}
