package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func nsEvent(t *testing.T, name string, label string) *events.Event {
	t.Helper()
	ev, err := events.New(t0, events.Meta{Actor: "test"}, events.ObjectRef{Kind: events.KindNamespace, Name: name},
		"", &events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: name, Labels: map[string]string{"l": label}}}})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestAppendIsConditional(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()

	seq1, err := st.Append(ctx, nsEvent(t, "a", "1"), 0)
	if err != nil {
		t.Fatalf("first append to an empty subject: %v", err)
	}
	if _, err := st.Append(ctx, nsEvent(t, "a", "2"), 0); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("append expecting an empty subject that is not: got %v, want Conflict", err)
	}
	seq2, err := st.Append(ctx, nsEvent(t, "a", "2"), seq1)
	if err != nil {
		t.Fatalf("append with the right expected sequence: %v", err)
	}
	if _, err := st.Append(ctx, nsEvent(t, "a", "3"), seq1); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("append with a stale expected sequence: got %v, want Conflict", err)
	}
	// Another subject has its own sequence.
	if _, err := st.Append(ctx, nsEvent(t, "b", "1"), 0); err != nil {
		t.Fatalf("append to another subject: %v", err)
	}
	last, err := st.LastSeq(ctx, events.ObjectSubject(events.KindNamespace, "", "a"))
	if err != nil || last != seq2 {
		t.Fatalf("LastSeq = %d, %v; want %d", last, err, seq2)
	}
	hist, err := st.History(ctx, events.ObjectSubject(events.KindNamespace, "", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Seq != seq1 || hist[1].Seq != seq2 {
		t.Fatalf("history of a: %d events, want seqs %d,%d", len(hist), seq1, seq2)
	}
	if got := hist[1].Data.(*events.NamespaceApplied).Namespace.Metadata.Labels["l"]; got != "2" {
		t.Fatalf("second event payload label = %q, want 2", got)
	}
}

func TestAppendRetryIsDeduplicated(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	ev := nsEvent(t, "a", "1")
	seq, err := st.Append(ctx, ev, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A retry of the very same event (same id) after a lost ack must not write twice, even
	// though its expected sequence is now stale.
	again, err := st.Append(ctx, ev, 0)
	if err != nil {
		t.Fatalf("retry of the same event: %v", err)
	}
	if again != seq {
		t.Fatalf("retry got seq %d, want the original %d", again, seq)
	}
	head, _ := st.Head(ctx)
	if head != 1 {
		t.Fatalf("log head = %d after a retried append, want 1", head)
	}
}

// Two writers race on one object: exactly one wins each round, the loser gets Conflict,
// re-reads and retries, and no write is lost. Each write records the sequence it was decided
// on; the history must be one chain (every write decided on the one before it), which only
// conditional appends give: without them both writers' writes land on the same sequence.
func TestRacingWritersOneWinsOtherRetries(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	subject := events.ObjectSubject(events.KindNamespace, "", "race")
	const perWriter = 50
	var mu sync.Mutex
	conflicts := map[string]int{}
	var wg sync.WaitGroup
	for _, w := range []string{"w1", "w2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				for {
					expect, err := st.LastSeq(ctx, subject)
					if err != nil {
						t.Error(err)
						return
					}
					ev := nsEvent(t, "race", fmt.Sprintf("%s-%d", w, i))
					ev.Data.(*events.NamespaceApplied).Namespace.Metadata.Labels["after"] = fmt.Sprint(expect)
					if ev.Payload, err = json.Marshal(ev.Data); err != nil {
						t.Error(err)
						return
					}
					_, err = st.Append(ctx, ev, expect)
					if err == nil {
						break
					}
					if !errors.Is(err, events.ErrConflict) {
						t.Errorf("%s: %v", w, err)
						return
					}
					mu.Lock()
					conflicts[w]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	hist, err := st.History(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2*perWriter {
		t.Fatalf("history has %d events, want %d: a write was lost or doubled", len(hist), 2*perWriter)
	}
	seen := map[string]bool{}
	var prev uint64
	for _, ev := range hist {
		labels := ev.Data.(*events.NamespaceApplied).Namespace.Metadata.Labels
		if seen[labels["l"]] {
			t.Fatalf("write %s landed twice", labels["l"])
		}
		seen[labels["l"]] = true
		if labels["after"] != fmt.Sprint(prev) {
			t.Fatalf("write %s at seq %d was decided on seq %s, but the event before it is seq %d: a write landed on a state it did not see",
				labels["l"], ev.Seq, labels["after"], prev)
		}
		prev = ev.Seq
	}
	t.Logf("conflicts seen and retried: %v", conflicts)
}

func TestPoisonEventIsReportedAndSkipped(t *testing.T) {
	st, nc, _ := eventstest.NewStore(t)
	ctx := context.Background()
	if _, err := st.Append(ctx, nsEvent(t, "a", "1"), 0); err != nil {
		t.Fatal(err)
	}
	// Somebody with raw access writes garbage and an event of a future version.
	js, _ := nc.JetStream()
	if _, err := js.Publish(events.ObjectSubject(events.KindNamespace, "", "bad"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	future := []byte(`{"id":"x","type":"NamespaceApplied","v":99,"time":"2026-11-27T12:00:00Z","actor":"t","object":{"kind":"namespace","name":"f"},"payload":{}}`)
	if _, err := js.Publish(events.ObjectSubject(events.KindNamespace, "", "f"), future); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, nsEvent(t, "b", "1"), 0); err != nil {
		t.Fatal(err)
	}
	var poison []uint64
	var good []string
	err := st.Read(ctx, store.ReadOptions{OnPoison: func(_ string, seq uint64, err error) {
		if !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("poison error %v is not InvalidArgument", err)
		}
		poison = append(poison, seq)
	}}, func(ev *events.Event) error {
		good = append(good, ev.Object.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("read stopped on a poison event: %v", err)
	}
	if fmt.Sprint(poison) != "[2 3]" || fmt.Sprint(good) != "[a b]" {
		t.Fatalf("poison %v good %v; want [2 3] and [a b]", poison, good)
	}
}

func TestFollowCatchesUpThenDeliversLive(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := st.Append(ctx, nsEvent(t, n, "1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 10)
	caughtUp := make(chan uint64, 1)
	go func() {
		_ = st.Follow(ctx, store.FollowOptions{From: 2, CaughtUp: func(h uint64) { caughtUp <- h }}, func(ev *events.Event) {
			got <- ev.Object.Name
		})
	}()
	want := []string{"b", "c"}
	for _, w := range want {
		select {
		case n := <-got:
			if n != w {
				t.Fatalf("got %s, want %s", n, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %s within 10s", w)
		}
	}
	select {
	case h := <-caughtUp:
		if h != 3 {
			t.Fatalf("caught up at %d, want 3", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("never caught up")
	}
	if _, err := st.Append(ctx, nsEvent(t, "d", "1"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != "d" {
			t.Fatalf("live event %s, want d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("live event not delivered within 10s")
	}
}

func TestFollowOnEmptyLogIsCaughtUpAtOnce(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	caughtUp := make(chan uint64, 1)
	go func() {
		_ = st.Follow(ctx, store.FollowOptions{Filters: []string{events.KindFilter(events.KindPod)}, CaughtUp: func(h uint64) { caughtUp <- h }}, func(*events.Event) {})
	}()
	select {
	case h := <-caughtUp:
		if h != 0 {
			t.Fatalf("head %d, want 0", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not caught up on an empty log")
	}
}

func TestAppendWithoutServerIsUnavailable(t *testing.T) {
	st, nc, srv := eventstest.NewStore(t)
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := st.Append(ctx, nsEvent(t, "a", "1"), 0)
	if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("append with the server gone: %v (conn %v), want Unavailable", err, nc.Status() == nats.CONNECTED)
	}
	// It kept trying until the context ended, and says what the log needs.
	if !strings.Contains(err.Error(), "tries: the log needs a majority of its servers up") || strings.Contains(err.Error(), " 1 tries") {
		t.Errorf("append with the server gone: %v, want several attempts and what the log needs", err)
	}
}

// A server where nothing answers on the JetStream API fails Bootstrap as Unavailable, with the
// cause in the chain: bootstrap waits a moment on it for a server still registering the account.
func TestBootstrapWithoutJetStreamKeepsNoResponders(t *testing.T) {
	srv := eventstest.NewServerOptions(t, &server.Options{Host: "127.0.0.1", Port: -1})
	nc := eventstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := store.Bootstrap(ctx, nc, store.Config{})
	if !errors.Is(err, events.ErrUnavailable) || !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("bootstrap without JetStream: %v, want Unavailable wrapping no responders", err)
	}
}

func TestAttachDoesNotCreate(t *testing.T) {
	srv := eventstest.NewServer(t)
	nc := eventstest.Connect(t, srv)
	ctx := context.Background()
	if _, err := store.Attach(ctx, nc, store.Config{}); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("attach before the stream exists: %v, want NotFound", err)
	}
	if _, err := store.Bootstrap(ctx, nc, store.Config{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Attach(ctx, nc, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, nsEvent(t, "a", "1"), 0); err != nil {
		t.Fatalf("append through an attached store: %v", err)
	}
}

// More writes than a connection may have in flight at once all land.
func TestAppendAllManyWrites(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	const n = 5000
	ws := make([]store.Write, n)
	for i := range ws {
		ws[i] = store.Write{Event: nsEvent(t, fmt.Sprintf("ns%d", i), "1")}
	}
	for i, err := range st.AppendAll(context.Background(), ws) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	head, err := st.Head(context.Background())
	if err != nil || head != n {
		t.Fatalf("head = %d, %v; want %d", head, err, n)
	}
}

// The watchdog calls a follower stalled only when the log has moved past what it delivered for
// two checks in a row, never while it keeps up.
func TestFollowWatchdogSeesAStall(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	old := store.StallCheck
	store.StallCheck = 20 * time.Millisecond
	t.Cleanup(func() { store.StallCheck = old })
	for i := range 3 {
		if _, err := st.Append(ctx, nsEvent(t, fmt.Sprintf("ns%d", i), "1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	filters := []string{events.KindFilter(events.KindNamespace)}

	// Caught up: no stall however long it watches.
	var last atomic.Uint64
	last.Store(3)
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	called := false
	st.Watch(wctx, filters, &last, func() { called = true })
	cancel()
	if called {
		t.Fatal("a follower that delivered everything was called stalled")
	}

	// Behind and not moving: stalled.
	last.Store(1)
	stalled := make(chan struct{})
	go st.Watch(ctx, filters, &last, func() { close(stalled) })
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("a follower two events behind that delivered nothing was never called stalled")
	}
}
