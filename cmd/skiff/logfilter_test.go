package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

func TestEventsLogRanges(t *testing.T) {
	c := newCluster(t)
	c.history()
	tests := []cliCase{
		{name: "since a sequence", args: []string{"events", "log", "--since", "24"}, golden: "events-log-since-24.golden"},
		{name: "between sequences", args: []string{"events", "log", "--since", "24", "--until", "27"}, golden: "events-log-24-27.golden"},
		{name: "between times", args: []string{"events", "log", "--since", "2025-03-01T12:40:00Z", "--until", "2025-03-01T12:41:00Z"}, golden: "events-log-40m-41m.golden"},
		{name: "since a duration ago", args: []string{"events", "log", "--since", "15m"}, golden: "events-log-since-15m.golden"},
		{name: "types as a list", args: []string{"events", "log", "--type", "PodScheduled,PodUnschedulable"}, golden: "events-log-type-scheduling.golden"},
		{name: "types repeated", args: []string{"events", "log", "--type", "PodCreated", "--type", "PodDeleted", "--since", "20"}, golden: "events-log-type-created-deleted.golden"},
		{name: "labels", args: []string{"events", "log", "-l", "app=web"}, golden: "events-log-label-app-web.golden"},
		{name: "labels learnt before --since", args: []string{"events", "log", "-l", "app=web", "--since", "24", "--type", "PodStatusReported"}, golden: "events-log-label-since-type.golden"},
		{name: "a namespace's labels", args: []string{"events", "log", "-l", "team=shop"}, golden: "events-log-label-team-shop.golden"},
		{name: "a node's labels", args: []string{"events", "log", "-l", "kubernetes.io/hostname=n1", "--until", "10"}, golden: "events-log-label-node-n1.golden"},
		{name: "an object and a type", args: []string{"events", "log", "pod/web-c", "--type", "PodBound,PodStatusReported"}, golden: "events-log-web-c-bound.golden"},
		{name: "nothing matches", args: []string{"events", "log", "-l", "app=none"}, golden: "events-log-empty.golden"},

		{name: "since past the end", args: []string{"events", "log", "--since", "31"}, wantCode: 1,
			wantStderr: "error: --since 31 is past the end of the log: its last sequence is 30\n"},
		{name: "until past the end", args: []string{"events", "log", "--until", "99"}, wantCode: 1,
			wantStderr: "error: --until 99 is past the end of the log: its last sequence is 30\n"},
		{name: "until before the first event", args: []string{"events", "log", "--until", "2025-01-01T00:00:00Z"}, wantCode: 1,
			wantStderr: "error: --until 2025-01-01T00:00:00Z is before the first event in the log (sequence 1 at 2025-03-01T12:00:00Z)\n"},
		{name: "since after until", args: []string{"events", "log", "--since", "25", "--until", "24"}, wantCode: 1,
			wantStderr: "error: --since 25 is after --until 24: give the earlier point first\n"},
		{name: "a malformed time", args: []string{"events", "log", "--since", "yesterday"}, wantCode: 1,
			wantStderr: "error: --since \"yesterday\" is neither a sequence (120) nor a time (2025-03-01T12:00:00Z, or 10m for ten minutes ago)\n"},
		{name: "an unknown type", args: []string{"events", "log", "--type", "PodExploded"}, wantCode: 2,
			wantStderr: "error: unknown event type \"PodExploded\" (known: " + strings.Join(sortedTypes(), ", ") + ")\nSee 'skiff events log --help' for usage.\n"},
		{name: "follow until", args: []string{"events", "log", "-f", "--until", "5"}, wantCode: 2,
			wantStderr: "error: --until ends the log and -f follows it: give one of them\nSee 'skiff events log --help' for usage.\n"},
	}
	c.check(t, tests)
}

// Following with filters prints only what they keep, from --since on, as events arrive.
func TestEventsLogFollowFiltered(t *testing.T) {
	c := newCluster(t)
	c.history()
	w := c.start("events", "log", "-f", "--since", "28", "--type", "PodStatusReported,PodDeleted", "-l", "app=web")
	w.waitFor(t, "web-b")
	c.append(61*time.Minute, "node/n1", podRef("default", "web-c", "u-c"), "n1", &events.PodStatusReported{UID: "u-c", Status: events.PodStatus{
		Phase: events.PodRunning, PodIP: "10.88.1.7", ContainerStatuses: []events.ContainerStatus{running(61 * time.Minute)}}})
	c.append(62*time.Minute, scheduler, webRef, "", &events.DeploymentScaled{Replicas: 4, Generation: 3}) // another type
	// A pod without labels: its status is of a type kept, but not app=web.
	solo := podRef("default", "solo", "u-solo")
	soloPod := events.Pod{Metadata: events.ObjectMeta{Namespace: "default", Name: "solo", UID: "u-solo"},
		Spec: events.PodSpec{Containers: []events.Container{{Name: "c", Image: "busybox"}}}}
	c.append(63*time.Minute, "user/alice", solo, "", &events.PodCreated{Pod: soloPod})
	c.append(63*time.Minute, scheduler, solo, "", &events.PodScheduled{UID: "u-solo", Node: "n1"})
	soloPod.Spec.NodeName = "n1"
	c.append(63*time.Minute, scheduler, solo, "n1", &events.PodBound{Pod: soloPod})
	c.append(63*time.Minute, "node/n1", solo, "n1", &events.PodStatusReported{UID: "u-solo", Status: events.PodStatus{Phase: events.PodRunning}})
	c.append(64*time.Minute, "node/n1", podRef("default", "web-a", "u-a"), "n1", &events.PodStatusReported{UID: "u-a", Status: events.PodStatus{
		Phase: events.PodRunning, PodIP: "10.88.1.5", ContainerStatuses: []events.ContainerStatus{running(11 * time.Minute)}}})
	w.waitFor(t, "web-a")
	if code := w.stop(t); code != 0 {
		t.Errorf("interrupted follow exit status = %d, want 0; stderr: %s", code, w.err.String())
	}
	eventstest.Golden(t, "testdata/events-log-follow-filtered.golden", w.out.String())
}

func sortedTypes() []string {
	ts := events.Types()
	slices.Sort(ts)
	return ts
}
