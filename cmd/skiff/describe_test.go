package main

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
)

func TestDescribe(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	c.scenario()
	c.append(32*time.Minute, "node/n2", nodeRef("n2"), "", &events.NodeUncordoned{})
	// A new pod named like the deleted "old": its Events must not include its namesake's.
	f.waitSeq(t, c.append(33*time.Minute, "user/alice", podRef("default", "old", "u-old2"), "", &events.PodCreated{Pod: events.Pod{
		Metadata: events.ObjectMeta{Namespace: "default", Name: "old", UID: "u-old2"},
		Spec:     events.PodSpec{Containers: []events.Container{{Name: "c", Image: "busybox:2"}}}}}))
	tests := []cliCase{
		{name: "pod", args: []string{"describe", "pod", "web-a"}, golden: "describe-pod-web-a.golden"},
		{name: "unschedulable pod", args: []string{"describe", "po/cart", "-n", "shop"}, golden: "describe-pod-cart.golden"},
		{name: "deployment", args: []string{"describe", "deploy", "web"}, golden: "describe-deployment-web.golden"},
		{name: "service", args: []string{"describe", "svc", "web"}, golden: "describe-service-web.golden"},
		{name: "node", args: []string{"describe", "node", "n1"}, golden: "describe-node-n1.golden"},
		{name: "node with history", args: []string{"describe", "no", "n2"}, golden: "describe-node-n2.golden"},
		{name: "namespace", args: []string{"describe", "ns", "shop"}, golden: "describe-namespace-shop.golden"},
		{name: "pod named like a deleted one", args: []string{"describe", "pod", "old"}, golden: "describe-pod-old.golden"},
		{name: "missing", args: []string{"describe", "pod", "nope"},
			wantStderr: "Error from server (NotFound): pods \"nope\" not found\n", wantCode: 1},
		{name: "no name", args: []string{"describe", "pod"},
			wantStderr: "error: skiff describe needs the name of the pod\nSee 'skiff describe --help' for usage.\n", wantCode: 2},
	}
	c.check(t, tests)
}

// TestDescribeKeepsRecentEvents checks the cap on the Events section: a pod with a long history
// shows its latest events and says how many it left out.
func TestDescribeKeepsRecentEvents(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	c.scenario()
	var last uint64
	for i := range 30 {
		last = c.append(40*time.Minute+time.Duration(i)*time.Second, "node/n1", podRef("default", "web-b", "u-b"), "n1",
			&events.PodStatusReported{UID: "u-b", Status: events.PodStatus{Phase: events.PodRunning, PodIP: fmt.Sprintf("10.88.1.%d", 100+i)}})
	}
	f.waitSeq(t, last)
	r := c.run("describe", "pod", "web-b")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := lines(r.stdout)
	// 3 creation events and 31 status reports: 20 shown, 14 left out.
	if n := len(got); got[n-1] != "  (14 older events not shown: skiff events log)" {
		t.Errorf("last line = %q, want the note on 14 older events", got[n-1])
	}
	if want := "ip=10.88.1.129"; !containsLine(got, want) {
		t.Errorf("the newest status report (%s) is missing:\n%s", want, r.stdout)
	}
}

func containsLine(ls []string, sub string) bool {
	for _, l := range ls {
		if len(l) >= len(sub) && contains(l, sub) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
