package bootstrap_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
)

// Bootstrap makes the stream and every bucket with the replicas asked for, brings them to new
// settings when run again, and says clearly when a server cannot give what is asked.
func TestBootstrap(t *testing.T) {
	srv := eventstest.NewServer(t)
	nc := eventstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := bootstrap.Run(ctx, nc, bootstrap.Config{LeaderTTL: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, api.LeaderBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil || st.TTL() != 3*time.Second {
		t.Fatalf("leader bucket TTL = %v, %v; want 3s", st.TTL(), err)
	}
	// Again, with a longer TTL and a retention: existing buckets change, nothing is lost.
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{LeaderTTL: 7 * time.Second, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ = kv.Status(ctx); st.TTL() != 7*time.Second {
		t.Fatalf("leader bucket TTL after the second run = %v, want 7s", st.TTL())
	}
	if !strings.Contains(strings.Join(res.Lines, "\n"), "max age 1h0m0s") {
		t.Fatalf("lines %q do not say the new retention", res.Lines)
	}
	for _, b := range []string{api.LeaseBucket, api.LeaderBucket} {
		if _, err := js.KeyValue(ctx, b); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
	for _, b := range []string{api.ImageBucket, api.SnapshotBucket, api.NodeSnapshotBucket} {
		if _, err := js.ObjectStore(ctx, b); err != nil {
			t.Errorf("object store %s: %v", b, err)
		}
	}

	// One server cannot hold three replicas: the error says what to do.
	_, err = bootstrap.Run(ctx, nc, bootstrap.Config{Replicas: 3})
	if !errors.Is(err, events.ErrInvalidArgument) || !strings.Contains(err.Error(), "not part of a cluster") {
		t.Fatalf("replicas 3 on one server: %v, want InvalidArgument saying it is not a cluster", err)
	}
	if _, err := bootstrap.Run(ctx, nc, bootstrap.Config{Replicas: 7}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("replicas 7: %v, want InvalidArgument", err)
	}
}

// A log made before the leader's writes were fenced has no atomic batches; bootstrapping again
// turns them on and keeps every event.
func TestBootstrapAllowsAtomicBatchesOnAnOldStream(t *testing.T) {
	srv := eventstest.NewServer(t)
	nc := eventstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	old, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SKIFF", Subjects: []string{events.AllFilter}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "skiff.ev.namespace._.team", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if old.CachedInfo().Config.AllowAtomicPublish {
		t.Fatal("the old stream allows atomic batches already")
	}
	if _, err := bootstrap.Run(ctx, nc, bootstrap.Config{}); err != nil {
		t.Fatal(err)
	}
	info, err := old.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Config.AllowAtomicPublish || info.State.Msgs != 1 {
		t.Fatalf("after bootstrap: atomic batches %v, %d events; want true, 1", info.Config.AllowAtomicPublish, info.State.Msgs)
	}
}
