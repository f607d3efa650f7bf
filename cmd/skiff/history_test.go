package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

// Points of the history test's log (see history).
const (
	seqBeforeService = 16 // web has two pods, one running; no Service yet
	seqScenarioEnd   = 23 // the scenario's last event: pod "old" deleted, at t0+31m
)

var svcWebRef = events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: "web"}

// history writes the scenario and what happened after it: web scaled to 3 (a new pod web-c,
// scheduled and bound), web-b running, the Service web deleted, and at `now` the rollout's
// progress, so that ages at the head are the ages a live `get` prints. It returns the head.
func (c *cluster) history() uint64 {
	c.t.Helper()
	c.scenario()
	c.append(40*time.Minute, "user/alice", webRef, "", &events.DeploymentScaled{Replicas: 3, Generation: 2}) // 24
	ref := podRef("default", "web-c", "u-c")
	c.append(40*time.Minute, scheduler, ref, "", &events.PodCreated{Pod: webPod("web-c", "u-c")}) // 25
	c.append(40*time.Minute, scheduler, ref, "", &events.PodScheduled{UID: "u-c", Node: "n1", Score: 80, Feasible: 1, Nodes: 2})
	bound := webPod("web-c", "u-c")
	bound.Spec.NodeName = "n1"
	c.append(40*time.Minute, scheduler, ref, "n1", &events.PodBound{Pod: bound})
	c.append(41*time.Minute, "node/n1", podRef("default", "web-b", "u-b"), "n1", &events.PodStatusReported{UID: "u-b", Status: events.PodStatus{
		Phase: events.PodRunning, PodIP: "10.88.1.6", ContainerStatuses: []events.ContainerStatus{running(41 * time.Minute)}}}) // 28
	c.append(50*time.Minute, "user/alice", svcWebRef, "", &events.ServiceDeleted{}) // 29
	return c.append(time.Hour, scheduler, webRef, "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{
		ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, UnavailableReplicas: 1}}) // 30
}

// TestGetAtHeadIsLive: at the log's head, every output form of a fold the CLI made itself prints
// exactly what the scheduler's answer prints.
func TestGetAtHeadIsLive(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	head := c.history()
	f.waitSeq(t, head)
	for _, args := range [][]string{
		{"get", "pods"},
		{"get", "pods", "-o", "wide"},
		{"get", "pods", "-A"},
		{"get", "pods", "-n", "shop"},
		{"get", "pods", "-A", "-l", "app=web"},
		{"get", "pods", "-o", "name"},
		{"get", "pods", "-o", "json"},
		{"get", "pods", "-A", "-o", "yaml"},
		{"get", "pod/web-a", "-o", "yaml"},
		{"get", "deploy", "web", "-o", "json"},
		{"get", "deploy", "-o", "wide"},
		{"get", "svc"},
		{"get", "ep", "-o", "yaml"},
		{"get", "nodes", "-o", "wide"},
		{"get", "ns"},
		{"get", "nodes", "-o", "json"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			live := c.run(args...)
			for _, at := range []string{strconv.FormatUint(head, 10), "0s", "2025-03-01T13:00:00Z"} {
				past := c.run(append(args, "--at", at)...)
				if past != live {
					t.Errorf("--at %s:\nstdout:\n%s\nstderr %q, exit %d\nlive:\n%s\nstderr %q, exit %d",
						at, past.stdout, past.stderr, past.code, live.stdout, live.stderr, live.code)
				}
			}
		})
	}
}

func TestGetAt(t *testing.T) {
	c := newCluster(t)
	head := c.history()
	tests := []struct {
		name       string
		args       []string
		golden     string
		wantStderr string
		wantCode   int
	}{
		{name: "pods at a sequence", args: []string{"get", "pods", "--at", "12"}, golden: "get-at-12-pods.golden"},
		{name: "wide, all namespaces", args: []string{"get", "po", "-A", "-o", "wide", "--at", "23"}, golden: "get-at-23-pods-all-wide.golden"},
		{name: "selector in a namespace", args: []string{"get", "pods", "-l", "app=web", "--at", "23"}, golden: "get-at-23-pods-selector.golden"},
		{name: "other namespace", args: []string{"get", "pods", "-n", "shop", "--at", "23"}, golden: "get-at-23-pods-shop.golden"},
		{name: "names", args: []string{"get", "pods", "-A", "-o", "name", "--at", "23"}, golden: "get-at-23-pods-name.golden"},
		{name: "json list", args: []string{"get", "deploy", "-o", "json", "--at", "16"}, golden: "get-at-16-deployments.json"},
		{name: "one object as yaml", args: []string{"get", "svc", "web", "-o", "yaml", "--at", "23"}, golden: "get-at-23-service-web.yaml"},
		{name: "a time", args: []string{"get", "deploy", "-o", "wide", "--at", "2025-03-01T12:35:00Z"}, golden: "get-at-35m-deployments.golden"},
		{name: "a duration ago", args: []string{"get", "pods", "--at", "25m"}, golden: "get-at-35m-pods.golden"},
		{name: "a deleted pod before its deletion", args: []string{"get", "pod", "old", "--at", "21"}, golden: "get-at-21-pod-old.golden"},
		{name: "nodes", args: []string{"get", "nodes", "--at", "5"}, golden: "get-at-5-nodes.golden"},
		{name: "empty at that point", args: []string{"get", "svc", "--at", strconv.Itoa(seqBeforeService)},
			wantStderr: "No resources found in default namespace.\n"},
		{name: "empty as json", args: []string{"get", "svc", "-o", "json", "--at", "16"}, golden: "get-empty.json"},

		{name: "a time before the first event", args: []string{"get", "pods", "--at", "2025-01-01T00:00:00Z"}, wantCode: 1,
			wantStderr: "error: --at 2025-01-01T00:00:00Z is before the first event in the log (sequence 1 at 2025-03-01T12:00:00Z)\n"},
		{name: "a duration before the first event", args: []string{"get", "pods", "--at", "2h"}, wantCode: 1,
			wantStderr: "error: --at 2025-03-01T11:00:00Z is before the first event in the log (sequence 1 at 2025-03-01T12:00:00Z)\n"},
		{name: "a sequence past the end", args: []string{"get", "pods", "--at", "31"}, wantCode: 1,
			wantStderr: "error: --at 31 is past the end of the log: its last sequence is 30\n"},
		{name: "sequence zero", args: []string{"get", "pods", "--at", "0"}, wantCode: 1,
			wantStderr: "error: --at 0: sequences start at 1\n"},
		{name: "a malformed time", args: []string{"get", "pods", "--at", "yesterday"}, wantCode: 1,
			wantStderr: "error: --at \"yesterday\" is neither a sequence (120) nor a time (2025-03-01T12:00:00Z, or 10m for ten minutes ago)\n"},
		{name: "a pod not yet created", args: []string{"get", "pod", "web-c", "--at", "23"}, wantCode: 1,
			wantStderr: "error: pod/web-c in namespace default did not exist at sequence 23 (2025-03-01T12:31:00Z)\n"},
		{name: "a pod already deleted", args: []string{"get", "pod", "old", "--at", "23", "-o", "json"}, wantCode: 1,
			wantStderr: "error: pod/old in namespace default did not exist at sequence 23 (2025-03-01T12:31:00Z)\n"},
		{name: "a node not yet registered", args: []string{"get", "node", "n2", "--at", "2025-03-01T12:01:30Z"}, wantCode: 1,
			wantStderr: "error: node/n2 did not exist at sequence 3 (2025-03-01T12:01:30Z)\n"},
		{name: "with a watch", args: []string{"get", "pods", "-w", "--at", "5"}, wantCode: 2,
			wantStderr: "error: --at shows the past and -w follows the present: give one of them\nSee 'skiff get --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", r.code, r.stderr, tt.wantCode, tt.wantStderr)
			}
			if tt.golden == "" {
				if r.stdout != "" {
					t.Errorf("stdout = %q, want nothing", r.stdout)
				}
				return
			}
			if strings.HasSuffix(tt.golden, ".json") && !json.Valid([]byte(r.stdout)) {
				t.Errorf("stdout is not JSON:\n%s", r.stdout)
			}
			eventstest.Golden(t, "testdata/"+tt.golden, r.stdout)
		})
	}
	// Nothing the reads did wrote to the log.
	if h, err := c.st.Head(t.Context()); err != nil || h != head {
		t.Errorf("the log's head is %d (%v) after the reads, want %d", h, err, head)
	}
}

func TestDescribeAt(t *testing.T) {
	c := newCluster(t)
	c.history()
	tests := []cliCase{
		{name: "a pod while it was starting", args: []string{"describe", "pod", "web-b", "--at", "15"}, golden: "describe-at-15-pod-web-b.golden"},
		{name: "a deployment before its scale", args: []string{"describe", "deploy", "web", "--at", "23"}, golden: "describe-at-23-deployment-web.golden"},
		{name: "a service later deleted", args: []string{"describe", "svc", "web", "--at", "2025-03-01T12:45:00Z"}, golden: "describe-at-45m-service-web.golden"},
		{name: "a node", args: []string{"describe", "node", "n1", "--at", "13"}, golden: "describe-at-13-node-n1.golden"},
		{name: "a deleted pod", args: []string{"describe", "pod", "old", "--at", "25"}, wantCode: 1,
			wantStderr: "error: pod/old in namespace default did not exist at sequence 25 (2025-03-01T12:40:00Z)\n"},
		{name: "a sequence past the end", args: []string{"describe", "pod", "web-a", "--at", "100"}, wantCode: 1,
			wantStderr: "error: --at 100 is past the end of the log: its last sequence is 30\n"},
	}
	c.check(t, tests)
}
