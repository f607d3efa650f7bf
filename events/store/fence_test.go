package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

// rawBatch publishes an atomic batch by hand and returns the server's answer to its commit.
// Each message is {subject, expected sequence, subject the expectation is on ("" = its own)}.
type rawMsg struct {
	subject string
	expect  uint64
	on      string
}

type rawAnswer struct {
	Error *struct {
		Code        int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Seq   uint64 `json:"seq"`
	Count int    `json:"count"`
}

func rawBatch(t *testing.T, nc *nats.Conn, msgs []rawMsg) rawAnswer {
	t.Helper()
	id := nuid.Next()
	for i, m := range msgs {
		msg := nats.NewMsg(m.subject)
		msg.Data = []byte(`{}`)
		msg.Header.Set("Nats-Batch-Id", id)
		msg.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(m.expect, 10))
		if m.on != "" {
			msg.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, m.on)
		}
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(msg); err != nil {
				t.Fatal(err)
			}
			continue
		}
		msg.Header.Set("Nats-Batch-Commit", "1")
		reply, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var a rawAnswer
		if err := json.Unmarshal(reply.Data, &a); err != nil {
			t.Fatalf("answer %q: %v", reply.Data, err)
		}
		return a
	}
	t.Fatal("empty batch")
	return rawAnswer{}
}

// The server's rules that Fenced relies on, checked against the embedded server the module
// pins (nats-server v2.15.2), with the protocol spelled out by hand.
func TestServerRulesForFencing(t *testing.T) {
	st, nc, _ := eventstest.NewStore(t)
	ctx := context.Background()
	js := st.JetStream()
	term := events.TermSubject
	pa, err := js.Publish(ctx, term, []byte(`{}`), jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil {
		t.Fatal(err)
	}
	t1 := pa.Sequence
	head := func() uint64 {
		h, err := st.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	fence := func(seq uint64) rawMsg { return rawMsg{"skiff.ev.leader.pass.x", seq, term} }

	// A fence on the current term and writes whose conditions hold: stored together, in order.
	a := rawBatch(t, nc, []rawMsg{fence(t1), {"skiff.ev.pod.d.a", 0, ""}, {"skiff.ev.pod.d.b", 0, ""}})
	if a.Error != nil || a.Count != 3 || a.Seq != t1+3 {
		t.Fatalf("a batch whose conditions hold: %+v", a)
	}
	// One write's condition fails: nothing of the batch is stored, and the answer names the
	// sequence that subject is at (which is how Fenced finds the write).
	before := head()
	a = rawBatch(t, nc, []rawMsg{fence(t1), {"skiff.ev.pod.d.c", 0, ""}, {"skiff.ev.pod.d.a", 0, ""}})
	if a.Error == nil || a.Error.Code != 10071 || a.Error.Description != fmt.Sprintf("wrong last sequence: %d", t1+2) {
		t.Fatalf("a batch with one stale write: %+v, want 10071 naming seq %d", a.Error, t1+2)
	}
	if h := head(); h != before {
		t.Fatalf("a refused batch stored %d messages", h-before)
	}
	// A newer term: a batch fenced on the old one is refused whole, naming the new term's
	// sequence.
	pa, err = js.Publish(ctx, term, []byte(`{}`), jetstream.WithExpectLastSequencePerSubject(t1))
	if err != nil {
		t.Fatal(err)
	}
	t2 := pa.Sequence
	a = rawBatch(t, nc, []rawMsg{fence(t1), {"skiff.ev.pod.d.c", 0, ""}})
	if a.Error == nil || a.Error.Code != 10071 || a.Error.Description != fmt.Sprintf("wrong last sequence: %d", t2) {
		t.Fatalf("a batch of an old term: %+v, want 10071 naming seq %d", a.Error, t2)
	}
	if h := head(); h != t2 {
		t.Fatalf("head %d after a fenced batch, want %d", h, t2)
	}
	// At most 1000 messages a batch.
	big := []rawMsg{fence(t2)}
	for i := range 1000 {
		big = append(big, rawMsg{fmt.Sprintf("skiff.ev.pod.big.p%d", i), 0, ""})
	}
	if a = rawBatch(t, nc, big); a.Error == nil || a.Error.Code != 10199 {
		t.Fatalf("a batch of 1001: %+v, want 10199 (too large)", a.Error)
	}
	if a = rawBatch(t, nc, big[:1000]); a.Error != nil || a.Count != 1000 {
		t.Fatalf("a batch of 1000: %+v", a)
	}
}

func newTerm(t *testing.T, st *store.Store, replica string) store.Term {
	t.Helper()
	ctx := context.Background()
	prev, err := st.LastTerm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.New(t0, events.Meta{Actor: "scheduler/" + replica}, events.TermRef, "", &events.LeaderElected{Replica: replica, Term: prev.Number + 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, ev, prev.Seq); err != nil {
		t.Fatal(err)
	}
	term, err := st.LastTerm(ctx)
	if err != nil || term.Seq != ev.Seq || term.Number != prev.Number+1 || term.Replica != replica {
		t.Fatalf("LastTerm = %+v, %v; want term %d at %d", term, err, prev.Number+1, ev.Seq)
	}
	return term
}

func nsWrites(t *testing.T, prefix string, n int) []store.Write {
	ws := make([]store.Write, n)
	for i := range ws {
		ws[i] = store.Write{Event: nsEvent(t, fmt.Sprintf("%s%d", prefix, i), "1")}
	}
	return ws
}

// fenceCounter counts what OnFenced reports.
type fenceCounter struct {
	mu       sync.Mutex
	rejected int
	newer    store.Term
}

func (c *fenceCounter) onFenced(n int, newer store.Term) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejected += n
	c.newer = newer
}

func TestFencedWritesLandAfterTheirFence(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	if term, err := st.LastTerm(ctx); err != nil || term.Seq != 0 {
		t.Fatalf("LastTerm of an empty log = %+v, %v", term, err)
	}
	if err := st.CheckFencing(); err != nil {
		t.Fatal(err)
	}
	term := newTerm(t, st, "a")
	f := st.Fenced(term, "deployments", store.FenceConfig{Actor: "scheduler/a"})
	// More than one batch holds: split in batches of MaxBatch-1 writes, each after its fence.
	ws := nsWrites(t, "n", 2*store.MaxBatch+5)
	for i, err := range f.AppendAll(ctx, ws) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	var fences []*events.LeaderWrote
	next := 0
	err := st.Read(ctx, store.ReadOptions{From: term.Seq + 1}, func(ev *events.Event) error {
		if p, ok := ev.Data.(*events.LeaderWrote); ok {
			if ev.Subject != "skiff.ev.leader.pass.deployments" || ev.Actor != "scheduler/a" {
				t.Errorf("fence on %s by %s", ev.Subject, ev.Actor)
			}
			fences = append(fences, p)
			return nil
		}
		if next >= len(ws) || ev.Seq != ws[next].Event.Seq || ev.ID != ws[next].Event.ID {
			t.Fatalf("event %d (%s) at %d is not write %d", ev.Seq, ev.ID, ev.Seq, next)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []*events.LeaderWrote{{Term: 1, Events: store.MaxBatch - 1}, {Term: 1, Events: store.MaxBatch - 1}, {Term: 1, Events: 7}}
	if next != len(ws) || len(fences) != len(want) {
		t.Fatalf("log has %d writes and %d fences, want %d and %d", next, len(fences), len(ws), len(want))
	}
	for i := range want {
		if *fences[i] != *want[i] {
			t.Errorf("fence %d = %+v, want %+v", i, fences[i], want[i])
		}
	}
}

// A second term makes the first term's batches fail with ErrFenced, and nothing of them lands.
func TestNewerTermFencesTheOld(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	old := newTerm(t, st, "a")
	var count fenceCounter
	f := st.Fenced(old, "scheduling", store.FenceConfig{Actor: "scheduler/a", OnFenced: count.onFenced})
	if errs := f.AppendAll(ctx, nsWrites(t, "before", 3)); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	newer := newTerm(t, st, "b")
	head, _ := st.Head(ctx)

	ws := nsWrites(t, "stale", store.MaxBatch+10) // two batches: the second is not even sent
	errs := f.AppendAll(ctx, ws)
	for i, err := range errs {
		var fe *store.FencedError
		if !errors.Is(err, events.ErrFenced) || errors.Is(err, events.ErrConflict) || !errors.As(err, &fe) {
			t.Fatalf("write %d: %v, want ErrFenced only", i, err)
		}
		if fe.Term != old || fe.Newer != newer {
			t.Fatalf("write %d: fenced %+v by %+v, want %+v by %+v", i, fe.Term, fe.Newer, old, newer)
		}
	}
	if after, _ := st.Head(ctx); after != head {
		t.Fatalf("the stale term wrote %d events", after-head)
	}
	// Only what the log refused is reported: the first batch, not the one never sent.
	if count.rejected != store.MaxBatch-1 || count.newer != newer {
		t.Fatalf("OnFenced reported %d writes, newer %+v; want %d, %+v", count.rejected, count.newer, store.MaxBatch-1, newer)
	}
	// The new term writes.
	g := st.Fenced(newer, "scheduling", store.FenceConfig{Actor: "scheduler/b"})
	if errs := g.AppendAll(ctx, nsWrites(t, "stale", 3)); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
}

// Loops of one leader write at the same time without fencing each other.
func TestLoopsDoNotFenceEachOther(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	testLoopsTogether(t, st, newTerm(t, st, "a"))
}

func testLoopsTogether(t *testing.T, st *store.Store, term store.Term) {
	ctx := context.Background()
	var count fenceCounter
	var wg sync.WaitGroup
	start := time.Now()
	const loops, passes, writes = 4, 25, 20
	for l := range loops {
		f := st.Fenced(term, fmt.Sprintf("loop%d", l), store.FenceConfig{Actor: "scheduler/a", OnFenced: count.onFenced})
		wg.Go(func() {
			for p := range passes {
				for i, err := range f.AppendAll(ctx, nsWrites(t, fmt.Sprintf("l%dp%dw", l, p), writes)) {
					if err != nil {
						t.Errorf("loop %d pass %d write %d: %v", l, p, i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d loops × %d batches of %d writes: %v", loops, passes, writes, time.Since(start).Round(time.Millisecond))
	if count.rejected != 0 {
		t.Fatalf("%d writes fenced within one term", count.rejected)
	}
	evs, err := st.History(ctx, events.KindFilter(events.KindNamespace))
	if err != nil || len(evs) != loops*passes*writes {
		t.Fatalf("%d namespace events, %v; want %d", len(evs), err, loops*passes*writes)
	}
}

// A write whose subject moved on fails as a conflict; the others of its batch land.
func TestFencedConflictsArePerWrite(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	term := newTerm(t, st, "a")
	f := st.Fenced(term, "deployments", store.FenceConfig{Actor: "scheduler/a"})
	first := nsWrites(t, "n", 10)
	if errs := f.AppendAll(ctx, first); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	// Writes 2, 5 and 7 expect an empty subject, which is not; 3 and 8 expect the right
	// sequence; the rest are new subjects; the last repeats a subject of the call.
	ws := nsWrites(t, "m", 10)
	for _, i := range []int{2, 5, 7} {
		ws[i] = store.Write{Event: nsEvent(t, fmt.Sprintf("n%d", i), "2"), Expect: 0}
	}
	for _, i := range []int{3, 8} {
		ws[i] = store.Write{Event: nsEvent(t, fmt.Sprintf("n%d", i), "2"), Expect: first[i].Event.Seq}
	}
	ws = append(ws, store.Write{Event: nsEvent(t, "m0", "again")})
	errs := f.AppendAll(ctx, ws)
	for i, err := range errs {
		switch i {
		case 2, 5, 7, 10:
			if !errors.Is(err, events.ErrConflict) || errors.Is(err, events.ErrFenced) {
				t.Errorf("write %d: %v, want a conflict", i, err)
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
				continue
			}
			got, gerr := st.Get(ctx, ws[i].Event.Seq)
			if gerr != nil || got.ID != ws[i].Event.ID {
				t.Errorf("write %d: not at its seq %d: %v", i, ws[i].Event.Seq, gerr)
			}
		}
	}
	// The batch that landed is one fence and the seven writes that held.
	fences, err := st.History(ctx, "skiff.ev.leader.pass.deployments")
	if err != nil || len(fences) != 2 || fences[1].Data.(*events.LeaderWrote).Events != 7 {
		t.Fatalf("fences: %d, %v; want the second for 7 events", len(fences), err)
	}
}

// Many conflicts in one batch: each is found (the first by the refusal, the rest by asking where
// every subject is), and the writes that hold land together in one batch.
func TestFencedManyConflicts(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	term := newTerm(t, st, "a")
	f := st.Fenced(term, "deployments", store.FenceConfig{Actor: "scheduler/a"})
	const n, every = store.MaxBatch - 1, 10
	first := nsWrites(t, "n", n)
	if errs := f.AppendAll(ctx, first); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	ws := make([]store.Write, n)
	for i := range ws {
		ws[i] = store.Write{Event: nsEvent(t, fmt.Sprintf("n%d", i), "2"), Expect: first[i].Event.Seq}
		if i%every == 0 {
			ws[i].Expect = 0 // stale: the subject has an event
		}
	}
	start := time.Now()
	errs := f.AppendAll(ctx, ws)
	t.Logf("%d writes, %d stale: %v", n, (n+every-1)/every, time.Since(start))
	for i, err := range errs {
		if stale := i%every == 0; stale != errors.Is(err, events.ErrConflict) || !stale && err != nil {
			t.Fatalf("write %d (stale %v): %v", i, stale, err)
		}
	}
	fences, err := st.History(ctx, "skiff.ev.leader.pass.deployments")
	if err != nil || len(fences) != 2 || fences[1].Data.(*events.LeaderWrote).Events != n-(n+every-1)/every {
		t.Fatalf("%d fences, %v; want the second for every write that held", len(fences), err)
	}
}

// A stream made before fencing (no atomic batches) fails the writes with a precondition that
// says what to do.
func TestFencedNeedsAtomicBatches(t *testing.T) {
	srv := eventstest.NewServer(t)
	nc := eventstest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: store.DefaultStream, Subjects: []string{events.AllFilter}}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Attach(ctx, nc, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CheckFencing(); !errors.Is(err, events.ErrFailedPrecondition) {
		t.Fatalf("CheckFencing on a stream without atomic batches: %v, want FailedPrecondition", err)
	}
	term := newTerm(t, st, "a")
	errs := st.Fenced(term, "x", store.FenceConfig{Actor: "a"}).AppendAll(ctx, nsWrites(t, "n", 1))
	if !errors.Is(errs[0], events.ErrFailedPrecondition) {
		t.Fatalf("write to a stream without atomic batches: %v, want FailedPrecondition", errs[0])
	}
}

// On a 3-server cluster the server checks one expectation per subject at a time, so batches of
// several loops, whose fences all check the term subject, would refuse each other if they went
// in parallel: Fenced sends them one at a time, and every write lands.
func TestLoopsDoNotFenceEachOtherOnACluster(t *testing.T) {
	url := startCluster(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var st *store.Store
	// The cluster needs a moment to elect its meta leader.
	for st == nil {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		st, err = store.Bootstrap(actx, nc, store.Config{Replicas: 3})
		acancel()
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("bootstrap on the cluster: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	term := newTerm(t, st, "a")
	testLoopsTogether(t, st, term)
	// And a newer term fences on a cluster too.
	newer := newTerm(t, st, "b")
	errs := st.Fenced(term, "loop0", store.FenceConfig{Actor: "a"}).AppendAll(ctx, nsWrites(t, "late", 2))
	var fe *store.FencedError
	if !errors.As(errs[0], &fe) || fe.Newer != newer {
		t.Fatalf("stale write on a cluster: %v, want fenced by %+v", errs[0], newer)
	}
}

// startCluster starts three embedded servers routed to each other and returns a client URL.
// The cluster ports are picked free beforehand (a clustered JetStream server opens its route
// listener only once it is far into starting), so another process could take one first: the
// test then fails to start, it does not pass wrongly.
func startCluster(t *testing.T) string {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var servers []*server.Server
	for i := range 3 {
		o := &server.Options{
			ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
			NoLog: true, NoSigs: true, Cluster: server.ClusterOpts{Name: "skiff", Host: "127.0.0.1", Port: ports[i]},
		}
		for j, p := range ports {
			if j != i {
				o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
			}
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatal("cluster server not ready")
		}
	}
	return servers[0].ClientURL()
}
