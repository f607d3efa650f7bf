package snapshot_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// appendLog appends evs to st, each conditional on its subject's last sequence as a writer's
// projection would have it, and in the middle an event that does not decode (a reader skips
// it, its subject's sequence moves on). It returns the log's head.
func appendLog(t *testing.T, st *store.Store, evs []*events.Event) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventstest.Timeout)
	defer cancel()
	last := map[string]uint64{}
	var head uint64
	for i, ev := range evs {
		if i == len(evs)/2 {
			ack, err := st.JetStream().Publish(ctx, "skiff.ev.pod.default.junk", []byte("not an event"))
			if err != nil {
				t.Fatal(err)
			}
			last["skiff.ev.pod.default.junk"] = ack.Sequence
		}
		seq, err := st.Append(ctx, ev, last[ev.Subject])
		if err != nil {
			t.Fatal(err)
		}
		last[ev.Subject], head = seq, seq
	}
	return head
}

// replay folds the log's [from, to] (to 0: its head) matching filters onto st, as
// `skiff events replay` and every projection do, and returns how many events it folded.
func replay(t *testing.T, st *store.Store, onto *state.State, to uint64, filters ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventstest.Timeout)
	defer cancel()
	n := 0
	err := st.Read(ctx, store.ReadOptions{Filters: filters, From: onto.Seq + 1, To: to,
		OnPoison: func(subject string, seq uint64, _ error) { onto.Skip(subject, seq); n++ }},
		func(ev *events.Event) error {
			_ = onto.Apply(ev)
			n++
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), eventstest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// A snapshot at any sequence of a real log with every event type, plus the log's tail after
// it, is exactly the replay of the whole log from sequence 1: objects, subject sequences,
// indexes, shared templates. Some of the snapshots go through the bucket; the node bucket's,
// restricted to what an agent and a proxy fold, plus their filtered tails, are their replays.
func TestSnapshotPlusTailEqualsReplay(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := ctxT(t)
	head := appendLog(t, st, eventstest.History(t))
	full := state.New()
	replay(t, st, full, 0)
	if full.Seq != head {
		t.Fatalf("replay reached %d, the log's head is %d", full.Seq, head)
	}
	id, err := snapshot.Identity(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := snapshot.Open(ctx, st.JetStream(), api.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	nodeBucket, err := snapshot.Open(ctx, st.JetStream(), api.NodeSnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	filtered := func(kinds ...string) *state.State {
		var filters []string
		for _, k := range kinds {
			filters = append(filters, events.KindFilter(k))
		}
		s := state.New()
		replay(t, st, s, 0, filters...)
		return s
	}
	readers := []struct {
		name  string
		kinds []string
		want  *state.State
	}{
		{"agent", []string{events.KindNode}, filtered(events.KindNode)},
		{"proxy", []string{events.KindService, events.KindEndpoints}, filtered(events.KindService, events.KindEndpoints)},
	}

	at := state.New()
	for k := uint64(1); k <= head; k++ {
		replay(t, st, at, k) // at is the fold of [1, k]
		var got *state.State
		if k%10 == 0 || k == head {
			// Through the bucket, as a service gets it.
			h := snapshot.Header{Stream: id, Compression: snapshot.Zstd}
			if _, err := bucket.Put(ctx, headerAt(h, k), encode(t, at, h)); err != nil {
				t.Fatal(err)
			}
			l, err := bucket.Load(ctx, snapshot.LoadConfig{Stream: id, Head: head, MaxSeq: k})
			if err != nil || l == nil || l.Header.Seq != k {
				t.Fatalf("load the snapshot at %d: %+v, %v", k, l, err)
			}
			got = l.State

			nh := snapshot.Header{Stream: id, Compression: snapshot.Zstd, Kinds: snapshot.NodeKinds}
			if _, err := nodeBucket.Put(ctx, headerAt(nh, k), encode(t, at, nh)); err != nil {
				t.Fatal(err)
			}
			for _, r := range readers {
				l, err := nodeBucket.Load(ctx, snapshot.LoadConfig{Stream: id, Head: head, MaxSeq: k, Kinds: r.kinds})
				if err != nil || l == nil {
					t.Fatalf("%s: load the node snapshot at %d: %+v, %v", r.name, k, l, err)
				}
				var filters []string
				for _, kind := range r.kinds {
					filters = append(filters, events.KindFilter(kind))
				}
				replay(t, st, l.State, 0, filters...)
				if l.State.Seq < r.want.Seq {
					t.Fatalf("%s: at %d after the tail, want at least %d", r.name, l.State.Seq, r.want.Seq)
				}
				// The snapshot covers up to k, whatever the reader's last event was.
				l.State.Seq = r.want.Seq
				if d := eventstest.DiffStates(r.want, l.State); d != "" {
					t.Fatalf("%s: node snapshot at %d + tail (-filtered replay +snapshot):\n%s", r.name, k, d)
				}
			}
		} else {
			var err error
			if got, _, err = snapshot.Decode(encode(t, at, snapshot.Header{Stream: id, Compression: snapshot.S2}), id); err != nil {
				t.Fatal(err)
			}
		}
		if d := eventstest.DiffStates(at, got); d != "" {
			t.Fatalf("snapshot at %d (-fold +snapshot):\n%s", k, d)
		}
		replay(t, st, got, 0)
		if d := eventstest.DiffStates(full, got); d != "" {
			t.Fatalf("snapshot at %d + tail (-replay from 1 +snapshot and tail):\n%s", k, d)
		}
	}
	// The history had every event type, a refused one and one that does not decode.
	types := map[string]bool{}
	_ = st.Read(ctx, store.ReadOptions{}, func(ev *events.Event) error { types[ev.Type] = true; return nil })
	if len(types) != 27 {
		t.Errorf("the log has %d event types, want all 27: %v", len(types), types)
	}
}

func headerAt(h snapshot.Header, seq uint64) snapshot.Header {
	h.Seq = seq
	return h
}

// Corrupt, truncated, wrong-version, other-log, too-new and too-narrow snapshots are each
// reported in one line and skipped, newest first, down to a good one; with none good the
// reader replays the log, and says so.
func TestLoadSkipsUnusable(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := ctxT(t)
	evs := eventstest.History(t)
	head := appendLog(t, st, evs)
	id, err := snapshot.Identity(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := snapshot.Open(ctx, st.JetStream(), api.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	at := func(seq uint64) *state.State {
		s := state.New()
		replay(t, st, s, seq)
		return s
	}
	put := func(seq uint64, data []byte) {
		t.Helper()
		if _, err := bucket.Put(ctx, snapshot.Header{Stream: id, Seq: seq}, data); err != nil {
			t.Fatal(err)
		}
	}
	good := head - 10
	put(good, encode(t, at(good), snapshot.Header{Stream: id, Compression: snapshot.Zstd}))
	bad := map[uint64]string{}
	damage := func(seq uint64, why string, f func([]byte) []byte) {
		put(seq, f(encode(t, at(seq), snapshot.Header{Stream: id, Compression: snapshot.Zstd})))
		bad[seq] = why
	}
	damage(good+1, "corrupt snapshot: checksum", func(b []byte) []byte { b[len(b)-5] ^= 1; return b })
	damage(good+2, "truncated snapshot", func(b []byte) []byte { return b[:len(b)/2] })
	damage(good+3, "snapshot of another format version: version 7", func(b []byte) []byte {
		binary.LittleEndian.PutUint16(b[8:], 7)
		return snapshot.Rechecksum(b)
	})
	put(good+4, encode(t, at(good+4), snapshot.Header{Stream: "SKIFF@2020-01-01T00:00:00Z", Compression: snapshot.Zstd}))
	bad[good+4] = "snapshot of another log: folded from SKIFF@2020-01-01T00:00:00Z"
	put(good+5, encode(t, at(good+5), snapshot.Header{Stream: id, Compression: snapshot.Zstd, Kinds: snapshot.NodeKinds}))
	bad[good+5] = "it holds node, service, endpoints only, this reader folds every kind"
	// Past the log's head: of a log that had more, not this one.
	ahead := at(head)
	ahead.Seq = head + 3
	put(head+3, encode(t, ahead, snapshot.Header{Stream: id, Compression: snapshot.Zstd}))
	bad[head+3] = "past the log's last"

	var logs eventstest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	got := snapshot.Start(ctx, st, api.SnapshotBucket, nil, log)
	if got.Seq != good {
		t.Fatalf("started from sequence %d, want the good snapshot's %d\n%s", got.Seq, good, logs.String())
	}
	if d := eventstest.DiffStates(at(good), got); d != "" {
		t.Fatalf("(-replay to %d +snapshot):\n%s", good, d)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != len(bad)+1 {
		t.Fatalf("%d log lines, want one per skipped snapshot (%d) and one saying which was used:\n%s", len(lines), len(bad), logs.String())
	}
	for seq, why := range bad {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, "skipping snapshot") && strings.Contains(l, snapshot.ObjectName(seq)) && strings.Contains(l, why)
		}
		if !found {
			t.Errorf("no line skipping %s saying %q:\n%s", snapshot.ObjectName(seq), why, logs.String())
		}
	}
	if !strings.Contains(lines[len(lines)-1], "starting from snapshot") {
		t.Errorf("the last line does not say which snapshot was used: %s", lines[len(lines)-1])
	}

	// The good one gone bad too: the log from its start.
	damage(good, "corrupt", func(b []byte) []byte { b[len(b)-5] ^= 1; return b })
	logs = eventstest.Buffer{}
	log = slog.New(slog.NewTextHandler(&logs, nil))
	if got := snapshot.Start(ctx, st, api.SnapshotBucket, nil, log); got.Seq != 0 {
		t.Fatalf("with no usable snapshot, started at %d, want 0", got.Seq)
	}
	if !strings.Contains(logs.String(), "no usable snapshot: replaying the log from its start") {
		t.Errorf("no line says the log is replayed:\n%s", logs.String())
	}
	// A bucket that is not there (a log bootstrapped before snapshots): said, and replayed.
	logs = eventstest.Buffer{}
	log = slog.New(slog.NewTextHandler(&logs, nil))
	if got := snapshot.Start(ctx, st, "skiff-no-such-bucket", nil, log); got.Seq != 0 {
		t.Fatalf("without a bucket, started at %d", got.Seq)
	}
	if !strings.Contains(logs.String(), "cannot read snapshots: replaying the log from its start") || !strings.Contains(logs.String(), "skiff cluster bootstrap") {
		t.Errorf("the missing bucket is not said with what to do:\n%s", logs.String())
	}
}

// The writer writes when Every events have been folded since the last snapshot, or when the
// interval passes with anything new, keeps Keep in each bucket, and what it writes is the
// projection's state. A projection started from it folds only the tail.
func TestWriterAndStart(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := ctxT(t)
	// A projection with a consumer per filter (the proxy's) folds services and endpoints in
	// either order; History's Endpoints after their Service's deletion would be kept or not
	// depending on which came first, so this test leaves them out (the fold in log order is
	// TestSnapshotPlusTailEqualsReplay's).
	var evs []*events.Event
	deleted := false
	for _, ev := range eventstest.History(t) {
		deleted = deleted || ev.Type == "ServiceDeleted"
		if !(deleted && ev.Type == "EndpointsUpdated") {
			evs = append(evs, ev)
		}
	}
	head := appendLog(t, st, evs[:40])
	p := eventstest.Follow(t, st)
	tick := make(chan time.Time)
	full, err := snapshot.Open(ctx, st.JetStream(), api.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := snapshot.Open(ctx, st.JetStream(), api.NodeSnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	w := snapshot.NewWriter(st, full, nodes, p, snapshot.WriterConfig{Every: 10, Interval: time.Hour, Keep: 2,
		After: func(time.Duration) <-chan time.Time { return tick }, Logger: eventstest.Logger(t)})
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })

	// waitFor waits until both buckets' newest snapshot is at seq and older ones are pruned.
	waitFor := func(seq uint64) {
		t.Helper()
		eventstest.EventuallyErr(t, eventstest.Timeout, "a snapshot at the head", func() error {
			for _, b := range []*snapshot.Bucket{full, nodes} {
				infos, err := b.List(ctx)
				if err != nil {
					return err
				}
				if len(infos) == 0 || infos[0].Seq != seq || len(infos) > 2 {
					return fmt.Errorf("%s holds %+v", b.Name(), infos)
				}
			}
			return nil
		})
	}
	// 40 events in the log, none snapshotted: one at once.
	waitFor(head)
	// 5 more: not due; 10 more: due.
	rest := evs[40:]
	last := map[string]uint64{}
	p.View(func(s *state.State) {
		for _, ev := range rest {
			last[ev.Subject] = s.SubjectSeq(ev.Subject)
		}
	})
	add := func(n int) {
		t.Helper()
		for _, ev := range rest[:n] {
			seq, err := st.Append(ctx, ev, last[ev.Subject])
			if err != nil {
				t.Fatal(err)
			}
			last[ev.Subject], head = seq, seq
		}
		rest = rest[n:]
		if err := p.WaitSeq(ctx, head); err != nil {
			t.Fatal(err)
		}
	}
	add(5)
	before := head
	add(5)
	waitFor(head)
	// Fewer than Every, then the interval: written at the tick.
	add(3)
	tick <- time.Time{}
	waitFor(head)
	infos, err := full.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nodeInfos, err := nodes.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || len(nodeInfos) != 2 || infos[1].Seq != before+5 || nodeInfos[0].Seq != head {
		t.Fatalf("buckets hold %+v and %+v; want the 2 newest, at %d and %d", infos, nodeInfos, head, before+5)
	}
	var want *state.State
	p.View(func(s *state.State) {
		body, _ := s.MarshalSnapshot(nil, nil)
		want, _ = state.UnmarshalSnapshot(body)
	})
	l, err := full.Load(ctx, snapshot.LoadConfig{Stream: mustIdentity(t, st)})
	if err != nil || l == nil {
		t.Fatal(l, err)
	}
	if d := eventstest.DiffStates(want, l.State); d != "" {
		t.Fatalf("(-projection +snapshot):\n%s", d)
	}

	// More events after the last snapshot: a new projection from Start folds only those.
	add(len(rest))
	for _, r := range []struct {
		bucket  string
		kinds   []string
		filters []string
	}{
		{api.SnapshotBucket, nil, nil},
		{api.NodeSnapshotBucket, []string{events.KindNode}, []string{events.KindFilter(events.KindNode)}},
		{api.NodeSnapshotBucket, []string{events.KindService, events.KindEndpoints},
			[]string{events.KindFilter(events.KindService), events.KindFilter(events.KindEndpoints)}},
	} {
		tail := state.New()
		tail.Seq = l.Header.Seq
		wantFolded := replay(t, st, tail, 0, r.filters...)
		q := live.New(snapshot.Start(ctx, st, r.bucket, r.kinds, eventstest.Logger(t)), eventstest.Logger(t))
		qctx, qstop := context.WithCancel(ctx)
		qdone := make(chan error, 1)
		go func() { qdone <- q.Run(qctx, st, r.filters) }()
		if err := q.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		if got := q.Folded(); got != uint64(wantFolded) {
			t.Errorf("%s %v: folded %d events, want the %d after the snapshot at %d", r.bucket, r.kinds, got, wantFolded, l.Header.Seq)
		}
		replayed := state.New()
		replay(t, st, replayed, 0, r.filters...)
		var body []byte
		q.View(func(s *state.State) { body, _ = s.MarshalSnapshot(nil, nil) })
		gotState, err := state.UnmarshalSnapshot(body)
		if err != nil {
			t.Fatal(err)
		}
		gotState.Seq = replayed.Seq // the snapshot covers more of the log than the filters show
		if d := eventstest.DiffStates(replayed, gotState); d != "" {
			t.Errorf("%s %v (-replay +snapshot and tail):\n%s", r.bucket, r.kinds, d)
		}
		qstop()
		if err := <-qdone; err != nil {
			t.Fatal(err)
		}
	}
}

func mustIdentity(t *testing.T, st *store.Store) string {
	t.Helper()
	id, err := snapshot.Identity(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
