package scheduling

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// TestUnschedulableWrittenOnce retries an unplaceable pod many times and checks that the log
// holds one PodUnschedulable, with kube-scheduler's message.
func TestUnschedulableWrittenOnce(t *testing.T) {
	c := newTestCluster(t)
	c.append(
		nodeEvent(t, nodeSpec{name: "small", milliCPU: 4000, memory: 1 << 30}),
		nodeEvent(t, nodeSpec{name: "db-1", milliCPU: 4000, memory: 8 << 30, taints: []events.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}}),
		podEvent(t, podSpec{name: "big", memory: "2Gi"}),
	)
	w := newLogWatch()
	c.start(Config{Clock: time.Now, Logger: slog.New(w),
		InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, RetryUnschedulableAfter: time.Millisecond})
	want := "0/2 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {dedicated: db}."
	c.waitFor("PodUnschedulable", func(st *state.State) bool {
		for _, cond := range st.Pods[state.Key{Namespace: "default", Name: "big"}].Status.Conditions {
			if cond.Type == "PodScheduled" && cond.Message == want {
				return true
			}
		}
		return false
	})
	w.waitCount(t, "pod fits no node", 10)
	if got := c.history(events.ObjectSubject(events.KindPod, "default", "big")); !cmp.Equal(got, []string{"PodCreated", "PodUnschedulable"}) {
		t.Errorf("pod history = %v, want one PodUnschedulable after 10 attempts", got)
	}
	evs, err := c.log.History(c.ctx, events.ObjectSubject(events.KindPod, "default", "big"))
	if err != nil {
		t.Fatal(err)
	}
	got := evs[1].Data.(*events.PodUnschedulable)
	// Nodes in name order: db-1 (0), small (1); the state had the three events above.
	wantEv := &events.PodUnschedulable{UID: "uid-big", Message: want,
		Reasons:     map[string]int{"Insufficient memory": 1, "node(s) had untolerated taint {dedicated: db}": 1},
		NodeReasons: map[string]string{"Insufficient memory": "1", "node(s) had untolerated taint {dedicated: db}": "0"},
		NodeSet:     events.NodeSetDigest([]string{"db-1", "small"}), StateSeq: 3}
	if diff := cmp.Diff(wantEv, got); diff != "" {
		t.Errorf("PodUnschedulable (-want +got):\n%s", diff)
	}
}

// TestUnschedulableRetriedWhenClusterChanges: a pod that fits nowhere waits (the safety-net
// retry is an hour away) until a node change makes room, then binds.
func TestUnschedulableRetriedWhenClusterChanges(t *testing.T) {
	for _, c := range []struct {
		name string
		// setup makes "node" unable to take pod "late"; change makes room.
		setup  func(c *testCluster)
		change func(c *testCluster)
		want   string // the first message
	}{
		{
			name:  "a node registers",
			setup: func(c *testCluster) {},
			change: func(c *testCluster) {
				c.append(nodeEvent(c.t, nodeSpec{name: "node", milliCPU: 1000, memory: 1 << 30}))
			},
			want: "no nodes available to schedule pods",
		},
		{
			name: "a node becomes ready",
			setup: func(c *testCluster) {
				c.append(nodeEvent(c.t, nodeSpec{name: "node", milliCPU: 1000, memory: 1 << 30}))
				c.append(mustEvent(c.t, ref(events.KindNode, "node"), "", &events.NodeNotReady{Reason: "LeaseExpired"}))
			},
			change: func(c *testCluster) {
				c.append(mustEvent(c.t, ref(events.KindNode, "node"), "", &events.NodeReady{Reason: "LeaseRenewed"}))
			},
			want: "0/1 nodes are available: 1 node(s) were not ready.",
		},
		{
			name: "a node is uncordoned",
			setup: func(c *testCluster) {
				c.append(nodeEvent(c.t, nodeSpec{name: "node", milliCPU: 1000, memory: 1 << 30}))
				c.append(mustEvent(c.t, ref(events.KindNode, "node"), "", &events.NodeCordoned{}))
			},
			change: func(c *testCluster) {
				c.append(mustEvent(c.t, ref(events.KindNode, "node"), "", &events.NodeUncordoned{}))
			},
			want: "0/1 nodes are available: 1 node(s) were unschedulable.",
		},
		{
			name: "a pod terminates and frees its slot",
			setup: func(c *testCluster) {
				c.append(nodeEvent(c.t, nodeSpec{name: "node", milliCPU: 1000, memory: 1 << 30, maxPods: 1}),
					podEvent(c.t, podSpec{name: "early"}))
				c.waitFor("early bound", func(st *state.State) bool { return isBound(st, "early") })
			},
			change: func(c *testCluster) {
				c.append(mustEvent(c.t, ref(events.KindPod, "early"), "node", &events.PodTerminated{UID: "uid-early"}))
			},
			want: "0/1 nodes are available: 1 Too many pods.",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestCluster(t)
			tc.start(Config{Clock: time.Now, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, RetryUnschedulableAfter: time.Hour})
			c.setup(tc)
			tc.append(podEvent(t, podSpec{name: "late", cpu: "500m"}))
			tc.waitFor("late unschedulable", func(st *state.State) bool {
				for _, cond := range st.Pods[state.Key{Namespace: "default", Name: "late"}].Status.Conditions {
					if cond.Type == "PodScheduled" && cond.Status == "False" {
						return true
					}
				}
				return false
			})
			if p := tc.pod("late"); p.Status.Conditions[0].Message != c.want {
				t.Errorf("message = %q, want %q", p.Status.Conditions[0].Message, c.want)
			}
			c.change(tc)
			tc.waitFor("late bound", func(st *state.State) bool { return isBound(st, "late") })
			if got := tc.history(events.ObjectSubject(events.KindPod, "default", "late")); !cmp.Equal(got, []string{"PodCreated", "PodUnschedulable", "PodScheduled"}) {
				t.Errorf("pod history = %v", got)
			}
		})
	}
}
