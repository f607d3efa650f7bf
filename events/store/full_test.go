package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

// At its MaxBytes the log refuses new events with ErrFull, a FailedPrecondition whose message
// names the limit and how to raise it; it drops nothing old, not even when the limit is set below
// what it holds; and the bootstrap step run again with a higher limit lets appends go on.
func TestAppendToFullLog(t *testing.T) {
	srv := eventstest.NewServer(t)
	nc := eventstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const limit = 16 << 10
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	st := res.Store
	if !strings.Contains(res.Lines[0], "max 16 KiB, then writes fail") {
		t.Errorf("bootstrap says %q, want the limit in KiB", res.Lines[0])
	}

	var written int
	var fullErr error
	for i := 0; i < 1000 && fullErr == nil; i++ {
		if _, err := st.Append(ctx, nsEvent(t, fmt.Sprintf("ns-%d", i), "x"), 0); err != nil {
			fullErr = err
			break
		}
		written++
	}
	if fullErr == nil {
		t.Fatalf("1000 events fit into a log of %d bytes", limit)
	}
	if !errors.Is(fullErr, store.ErrFull) || !errors.Is(fullErr, events.ErrFailedPrecondition) {
		t.Fatalf("append to a full log: %v; want ErrFull and FailedPrecondition", fullErr)
	}
	t.Logf("after %d events: %v", written, fullErr)
	for _, want := range []string{"the event log is full", "its limit of 16 KiB", "skiff cluster bootstrap --max-bytes"} {
		if !strings.Contains(fullErr.Error(), want) {
			t.Errorf("error %q does not say %q", fullErr, want)
		}
	}
	// The refused event is not in the log, and nothing old was dropped to make room.
	assertNamespaces(ctx, t, st, written)

	// A limit below what the log holds refuses every write and still drops nothing.
	res, err = bootstrap.Run(ctx, nc, bootstrap.Config{MaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Lines[0], "FULL") {
		t.Errorf("bootstrap below what the log holds says %q, want a warning that it is full", res.Lines[0])
	}
	if _, err := st.Append(ctx, nsEvent(t, "small", "x"), 0); !errors.Is(err, store.ErrFull) {
		t.Fatalf("append with the limit below the log's size: %v, want ErrFull", err)
	}
	assertNamespaces(ctx, t, st, written)

	// Raising the limit resumes writes at once, through the same Store.
	if _, err := bootstrap.Run(ctx, nc, bootstrap.Config{MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, nsEvent(t, fmt.Sprintf("ns-%d", written), "x"), 0); err != nil {
		t.Fatalf("append after raising the limit: %v", err)
	}
	assertNamespaces(ctx, t, st, written+1)

	// The pipelined path says the same.
	if _, err := bootstrap.Run(ctx, nc, bootstrap.Config{MaxBytes: 4 << 10}); err != nil {
		t.Fatal(err)
	}
	errs := st.AppendAll(ctx, []store.Write{{Event: nsEvent(t, "batch", "x")}})
	if !errors.Is(errs[0], store.ErrFull) || !strings.Contains(errs[0].Error(), "its limit of 4 KiB") {
		t.Fatalf("AppendAll to a full log: %v; want ErrFull naming the limit", errs[0])
	}
}

// assertNamespaces checks that the log holds exactly namespaces ns-0 … ns-(n-1), in order.
func assertNamespaces(ctx context.Context, t *testing.T, st *store.Store, n int) {
	t.Helper()
	hist, err := st.History(ctx, events.AllFilter)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != n {
		t.Fatalf("the log holds %d events, want %d", len(hist), n)
	}
	for i, ev := range hist {
		if want := fmt.Sprintf("ns-%d", i); ev.Object.Name != want {
			t.Fatalf("event %d is %s, want %s", i, ev.Object.Name, want)
		}
	}
}

// When the server's JetStream storage (max_file_store) is used up, an append fails with ErrFull
// saying so, not with a timeout.
func TestAppendWhenServerStorageIsUsedUp(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		JetStreamMaxStore: 64 << 10, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var fullErr error
	for i := 0; i < 2000; i++ {
		if _, fullErr = res.Store.Append(ctx, nsEvent(t, fmt.Sprintf("ns-%d", i), "x"), 0); fullErr != nil {
			break
		}
	}
	if !errors.Is(fullErr, store.ErrFull) || !errors.Is(fullErr, events.ErrFailedPrecondition) {
		t.Fatalf("append beyond the server's storage: %v; want ErrFull and FailedPrecondition", fullErr)
	}
	t.Logf("%v", fullErr)
	if !strings.Contains(fullErr.Error(), "max_file_store") {
		t.Errorf("error %q does not name the server's limit", fullErr)
	}
}

// An append whose acknowledgement does not come in time is Unavailable and says its outcome is
// unknown, naming a full disk among the causes (nats-server answers nothing then).
func TestAppendWithoutAckSaysOutcomeUnknown(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err := st.Append(ctx, nsEvent(t, "late", "x"), 0)
	if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("append without an ack in time: %v, want Unavailable", err)
	}
	for _, want := range []string{"no acknowledgement", "disk is full", "no space left on device", "unknown"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
