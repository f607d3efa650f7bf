package natscluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

// ackWriter appends PodCreated events, each on a subject of its own, one after the other, and
// records every acknowledged one: what a client was told is durable.
type ackWriter struct {
	t  testing.TB
	st *store.Store

	mu    sync.Mutex
	acked map[string]uint64 // event id → sequence
	n     int
	// results are the outcomes of appends, in order, with when each started.
	results []appendResult
}

type appendResult struct {
	started time.Time
	err     error
}

func (w *ackWriter) appendOne(ctx context.Context) error {
	w.mu.Lock()
	w.n++
	ev := podCreated(w.t, fmt.Sprintf("w-%06d", w.n))
	w.mu.Unlock()
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	seq, err := w.st.Append(actx, ev, 0)
	cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.acked[ev.ID] = seq
	}
	w.results = append(w.results, appendResult{started: start, err: err})
	return err
}

// since returns the results of appends started at or after t.
func (w *ackWriter) since(t time.Time) []appendResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []appendResult
	for _, r := range w.results {
		if !r.started.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

func TestReplicas(t *testing.T) {
	c := Start(t, Options{})
	c.Bootstrap(3)
	admin := c.MustConnect(c.Creds("admin"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := store.Attach(ctx, admin, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	js := st.JetStream()

	// The stream and every bucket have three replicas, on three servers.
	for _, name := range []string{store.DefaultStream, "KV_" + api.LeaseBucket, "KV_" + api.LeaderBucket, "OBJ_" + api.ImageBucket} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 {
			t.Errorf("%s: %d replicas, want 3", name, info.Config.Replicas)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Errorf("%s: cluster info %+v, want a leader and two more replicas", name, info.Cluster)
		}
	}

	w := &ackWriter{t: t, st: st, acked: map[string]uint64{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = w.appendOne(ctx)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	succeededSince := func(from time.Time, want int) func() error {
		return func() error {
			n := 0
			for _, r := range w.since(from) {
				if r.err == nil {
					n++
				}
			}
			if n < want {
				return fmt.Errorf("%d appends acknowledged since %s, want %d", n, from.Format(time.TimeOnly), want)
			}
			return nil
		}
	}
	eventstest.EventuallyErr(t, 20*time.Second, "appends before any failure", succeededSince(time.Time{}, 20))

	// One server down, the stream's leader: appends go on once a new leader is elected.
	s, err := js.Stream(ctx, store.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	first := s.CachedInfo().Cluster.Leader
	c.Kill(first)
	t.Logf("killed %s (the stream leader)", first)
	killed1 := time.Now()
	eventstest.EventuallyErr(t, 30*time.Second, "appends with one server down", succeededSince(killed1, 20))
	t.Logf("20 appends acknowledged %v after the kill", time.Since(killed1).Round(time.Millisecond))

	// Two down: no quorum, every append started now fails as Unavailable.
	var second string
	for _, srv := range c.Servers {
		if srv.Name != first {
			second = srv.Name
			break
		}
	}
	c.Kill(second)
	t.Logf("killed %s", second)
	killed2 := time.Now()
	eventstest.EventuallyErr(t, 30*time.Second, "failed appends with two servers down", func() error {
		if n := len(w.since(killed2)); n < 3 {
			return fmt.Errorf("%d appends tried", n)
		}
		return nil
	})
	close(stop)
	<-done
	t.Logf("%d appends tried with two servers down, in %v", len(w.since(killed2)), time.Since(killed2).Round(time.Millisecond))
	for i, r := range w.since(killed2) {
		if !errors.Is(r.err, events.ErrUnavailable) {
			t.Errorf("append %d with two servers down: err %v, want %v", i, r.err, events.ErrUnavailable)
		}
	}

	// Back to three: every acknowledged event is in the stream, at the sequence its ack said.
	restart := time.Now()
	c.Restart(first)
	t.Logf("restarted %s: meta leader after %v", first, time.Since(restart).Round(time.Millisecond))
	c.Restart(second)
	t.Logf("restarted %s: meta leader after %v", second, time.Since(restart).Round(time.Millisecond))
	var got map[string]uint64
	eventstest.EventuallyErr(t, 60*time.Second, "reading the stream after the restart", func() error {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		got = map[string]uint64{}
		return st.Read(rctx, store.ReadOptions{}, func(ev *events.Event) error {
			got[ev.ID] = ev.Seq
			return nil
		})
	})
	w.mu.Lock()
	lost := 0
	for id, seq := range w.acked {
		if got[id] != seq {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged event %s (seq %d) is not in the stream after the restart (found at %d)", id, seq, got[id])
			}
		}
	}
	t.Logf("%d appends acknowledged, %d lost; %d events in the stream", len(w.acked), lost, len(got))
	w.mu.Unlock()

	// And the cluster takes appends again.
	eventstest.EventuallyErr(t, 30*time.Second, "append after the restart", func() error {
		return w.appendOne(ctx)
	})
}
