package scheduler_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/snapshot"
	"skiff.dev/services/scheduler"
)

// The leader writes snapshots; a replica started afterwards begins at the newest and folds only
// the events after it.
func TestReplicaStartsFromSnapshot(t *testing.T) {
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	conn, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	startConfig(t, scheduler.Config{Conn: conn, ID: "a", Snapshots: snapshot.WriterConfig{Every: 5}, Logger: eventstest.Logger(t)})
	registerNode(t, st, "n1")
	if resp := apply(t, nc, fmt.Sprintf(deployment, "web", 3)); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	bucket, err := snapshot.Open(t.Context(), st.JetStream(), api.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	var snap uint64
	eventstest.Eventually(t, eventstest.Timeout, "a snapshot after the pods are bound", func() bool {
		infos, err := bucket.List(t.Context())
		if err != nil || len(infos) == 0 {
			return false
		}
		snap = infos[0].Seq
		head, err := st.Head(t.Context())
		// The deployment's 3 PodBound and everything before them are in it.
		return err == nil && snap > 10 && head-snap < 5
	})

	reg := prometheus.NewPedanticRegistry()
	conn2, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	startConfig(t, scheduler.Config{Conn: conn2, ID: "b", Metrics: reg, Logger: eventstest.Logger(t)})
	folded := func() float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "skiff_scheduler_events_folded_total" {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no skiff_scheduler_events_folded_total")
		return 0
	}
	// The leader may write a newer snapshot before b starts: b folds the tail after whichever
	// is newest when it starts, at least the one seen above.
	eventstest.EventuallyErr(t, eventstest.Timeout, "replica b folded the log after a snapshot, and only that", func() error {
		head, err := st.Head(t.Context())
		if err != nil {
			return err
		}
		infos, err := bucket.List(t.Context())
		if err != nil {
			return err
		}
		got := folded()
		var tails []uint64
		for _, in := range infos {
			if in.Seq >= snap && got == float64(head-in.Seq) {
				return nil
			}
			tails = append(tails, head-in.Seq)
		}
		return fmt.Errorf("folded %v events, want the tail after one of the snapshots at or after %d (tails %v, head %d)", got, snap, tails, head)
	})
}
