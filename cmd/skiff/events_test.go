package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
)

func TestEventsLog(t *testing.T) {
	c := newCluster(t)
	c.scenario()
	tests := []struct {
		name       string
		args       []string
		golden     string
		wantStderr string
		wantCode   int
	}{
		{name: "whole log", args: []string{"events", "log"}, golden: "events-log.golden"},
		{name: "one pod with its bind and status subjects", args: []string{"events", "log", "pod/web-a"}, golden: "events-log-pod-web-a.golden"},
		{name: "a deleted pod's history", args: []string{"events", "log", "po/old"}, golden: "events-log-pod-old.golden"},
		{name: "one node", args: []string{"events", "log", "node/n2"}, golden: "events-log-node-n2.golden"},
		{name: "one namespace", args: []string{"events", "log", "-n", "shop"}, golden: "events-log-ns-shop.golden"},
		{name: "an object without history", args: []string{"events", "log", "deploy/nope"}, golden: "events-log-empty.golden"},
		{name: "kind without name", args: []string{"events", "log", "pods"},
			wantStderr: "error: name the object as KIND/NAME, e.g. pod/web-1, not \"pods\"\nSee 'skiff events log --help' for usage.\n", wantCode: 2},
		{name: "bad output", args: []string{"events", "log", "-o", "yaml"},
			wantStderr: "error: unknown output format \"yaml\": events log prints lines, or json\nSee 'skiff events log --help' for usage.\n", wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", r.code, r.stderr, tt.wantCode, tt.wantStderr)
			}
			if tt.golden != "" {
				eventstest.Golden(t, "testdata/"+tt.golden, r.stdout)
			}
		})
	}
}

// Leader terms and the fences of the leader's batches read as what they are.
func TestEventsLogLeaderTerms(t *testing.T) {
	c := newCluster(t)
	c.append(0, "node/n1", nodeRef("n1"), "", &events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110})
	c.append(0, scheduler, events.TermRef, "", &events.LeaderElected{Replica: "s1", Term: 1})
	c.append(time.Minute, scheduler, events.PassRef("nodelifecycle"), "", &events.LeaderWrote{Term: 1, Events: 1})
	c.append(time.Minute, scheduler, nodeRef("n1"), "", &events.NodePodCIDRAssigned{PodCIDR: "10.88.1.0/24"})
	c.append(2*time.Minute, "scheduler/s2", events.TermRef, "", &events.LeaderElected{Replica: "s2", Term: 2})
	r := c.run("events", "log")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	eventstest.Golden(t, "testdata/events-log-leader.golden", r.stdout)
}

func TestEventsLogJSON(t *testing.T) {
	c := newCluster(t)
	c.scenario()
	r := c.run("events", "log", "pod/web-b", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	type entry struct {
		Seq     uint64          `json:"seq"`
		Subject string          `json:"subject"`
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Version int             `json:"v"`
		Time    time.Time       `json:"time"`
		Actor   string          `json:"actor"`
		Payload json.RawMessage `json:"payload"`
	}
	var got []entry
	for i, l := range lines(r.stdout) {
		var e entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", i+1, err, l)
		}
		if e.ID == "" || len(e.Payload) == 0 || e.Version != 1 {
			t.Errorf("line %d lacks the envelope's id, version or payload: %s", i+1, l)
		}
		e.ID, e.Payload, e.Version = "", nil, 0
		got = append(got, e)
	}
	at := t0.Add(10*time.Minute + time.Second)
	want := []entry{
		{Seq: 11, Subject: "skiff.ev.pod.default.web-b", Type: "PodCreated", Time: at, Actor: scheduler},
		{Seq: 12, Subject: "skiff.ev.pod.default.web-b", Type: "PodScheduled", Time: at, Actor: scheduler},
		{Seq: 13, Subject: "skiff.ev.bind.n1.default.web-b", Type: "PodBound", Time: at, Actor: scheduler},
		{Seq: 15, Subject: "skiff.ev.status.n1.default.web-b", Type: "PodStatusReported", Time: t0.Add(11 * time.Minute), Actor: "node/n1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestEventsLogFollow(t *testing.T) {
	c := newCluster(t)
	c.scenario()
	w := c.start("events", "log", "-f", "deploy/web")
	w.waitFor(t, "DeploymentRolloutProgressed")
	c.append(40*time.Minute, "user/alice", webRef, "", &events.DeploymentScaled{Replicas: 4, Generation: 2})
	c.append(40*time.Minute, "node/n1", podRef("default", "web-a", "u-a"), "n1", &events.PodTerminated{UID: "u-a"}) // not about the deployment
	c.append(41*time.Minute, scheduler, webRef, "", &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{ObservedGeneration: 2, Replicas: 4}})
	w.waitFor(t, "observedGeneration=2")
	if code := w.stop(t); code != 0 {
		t.Errorf("interrupted follow exit status = %d, want 0; stderr: %s", code, w.err.String())
	}
	eventstest.Golden(t, "testdata/events-log-follow.golden", w.out.String())
}

func TestEventsReplay(t *testing.T) {
	c := newCluster(t)
	c.scenario() // up to seq 23
	// After the scenario, the cluster changes: web is scaled to 3 and web-b runs.
	c.append(40*time.Minute, "user/alice", webRef, "", &events.DeploymentApplied{Deployment: webDeployment(2, 3, "nginx:1.26")})
	c.append(41*time.Minute, "node/n1", podRef("default", "web-b", "u-b"), "n1", &events.PodStatusReported{UID: "u-b", Status: events.PodStatus{
		Phase: events.PodRunning, PodIP: "10.88.1.6", ContainerStatuses: []events.ContainerStatus{running(41 * time.Minute)}}})
	tests := []struct {
		name       string
		args       []string
		golden     string
		wantStderr string
		wantCode   int
	}{
		{name: "now", args: []string{"events", "replay"}, golden: "replay-now.golden",
			wantStderr: "Replayed the log up to sequence 25 (2025-03-01T12:41:00Z).\n"},
		{name: "to a sequence shows the old state", args: []string{"events", "replay", "--to-seq", "12"}, golden: "replay-seq-12.golden",
			wantStderr: "Replayed the log up to sequence 12 (2025-03-01T12:10:01Z).\n"},
		{name: "at a time", args: []string{"events", "replay", "--at", "2025-03-01T12:35:00Z", "deployments"}, golden: "replay-at-deployments.golden",
			wantStderr: "Replayed the log up to sequence 23 (2025-03-01T12:31:00Z).\n"},
		{name: "at a duration ago", args: []string{"events", "replay", "--at", "25m", "pods", "-o", "wide"}, golden: "replay-ago-pods.golden",
			wantStderr: "Replayed the log up to sequence 23 (2025-03-01T12:31:00Z).\n"},
		{name: "one namespace", args: []string{"events", "replay", "pods", "-n", "shop"}, golden: "replay-shop-pods.golden",
			wantStderr: "Replayed the log up to sequence 25 (2025-03-01T12:41:00Z).\n"},
		{name: "as json", args: []string{"events", "replay", "--to-seq", "7", "-o", "json"}, golden: "replay-seq-7.json",
			wantStderr: "Replayed the log up to sequence 7 (2025-03-01T12:10:00Z).\n"},
		{name: "before anything", args: []string{"events", "replay", "--at", "2025-01-01T00:00:00Z", "nodes"},
			wantStderr: "The log has no events up to that point: the cluster was empty.\nNo resources found\n"},
		{name: "both points", args: []string{"events", "replay", "--to-seq", "3", "--at", "5m"},
			wantStderr: "error: give --to-seq or --at, not both\nSee 'skiff events replay --help' for usage.\n", wantCode: 2},
		{name: "bad time", args: []string{"events", "replay", "--at", "yesterday"},
			wantStderr: "error: --at \"yesterday\": want a time like 2025-03-01T12:00:00Z or a duration ago like 15m\nSee 'skiff events replay --help' for usage.\n", wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", r.code, r.stderr, tt.wantCode, tt.wantStderr)
			}
			if tt.golden != "" {
				if strings.HasSuffix(tt.golden, ".json") && !json.Valid([]byte(r.stdout)) {
					t.Errorf("stdout is not JSON:\n%s", r.stdout)
				}
				eventstest.Golden(t, "testdata/"+tt.golden, r.stdout)
			} else if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

// TestEventsPoison writes an event this build cannot decode: the log shows it where it sits, and
// replay skips it without stopping.
func TestEventsPoison(t *testing.T) {
	c := newCluster(t)
	c.append(0, "user/alice", events.ObjectRef{Kind: events.KindNamespace, Name: "shop"}, "", &events.NamespaceApplied{})
	js := c.st.JetStream()
	if _, err := js.Publish(context.Background(), "skiff.ev.pod.default.x", []byte(`{"id":"p1","type":"PodTeleported","v":1,"time":"2025-03-01T12:00:01Z","actor":"future/v9","object":{"kind":"pod","name":"x"},"payload":{}}`)); err != nil {
		t.Fatal(err)
	}
	c.append(2*time.Second, "node/n1", nodeRef("n1"), "", &events.NodeRegistered{Address: "10.0.0.1"})

	r := c.run("events", "log")
	want := []string{
		"SEQ      TIME                      TYPE                         OBJECT                                ACTOR               SUMMARY",
		"1        2025-03-01T12:00:00.000Z  NamespaceApplied             namespace/shop                        user/alice",
		`2        -                         ?                            skiff.ev.pod.default.x                -                   does not decode: event seq 2 on skiff.ev.pod.default.x: unknown type "PodTeleported"`,
		"3        2025-03-01T12:00:02.000Z  NodeRegistered               node/n1                               node/n1             address=10.0.0.1 cpu=0 memory=0 pods=0",
	}
	if diff := cmp.Diff(want, lines(r.stdout)); diff != "" || r.code != 0 {
		t.Errorf("exit %d, stderr %q, log (-want +got):\n%s", r.code, r.stderr, diff)
	}
	r = c.run("events", "replay", "nodes")
	if r.code != 0 || !strings.Contains(r.stdout, "node/n1") || !strings.Contains(r.stderr, "up to sequence 3") {
		t.Errorf("replay past a poison event: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
}
