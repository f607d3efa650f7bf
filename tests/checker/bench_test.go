package checker

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/natsserver"
	"skiff.dev/events/store"
)

// benchEvents is the size of the log BenchmarkCheck reads.
const benchEvents = 100_000

// BenchmarkCheck measures Check on a log of 100,000 events: 11,111 pods each created,
// scheduled, bound, reported Pending and Running, deleted gracefully (deletion requested, stop,
// terminated, deleted), plus one node, on an embedded JetStream with file storage.
//
// On the development machine (2 cores, shared), go test -run '^$' -bench BenchmarkCheck -count 5:
// a median of 1.36 s of CPU per Check (this process's, the embedded server's included), 1.34 s
// of wall time at a load average of 7 (about 75,000 events/s) and 6.7 s at a load of 13 to 24.
// The CPU time is the figure to plan with: wall time is that divided by the cores the checker
// gets.
func BenchmarkCheck(b *testing.B) {
	st := benchLog(b)
	ctx := context.Background()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		r, err := Check(ctx, st)
		if err != nil {
			b.Fatal(err)
		}
		if r.Events != benchEvents || len(r.Violations) != 0 || len(r.Live) != 0 {
			b.Fatalf("%d events, %d live pods, %v", r.Events, len(r.Live), r.Err())
		}
	}
	b.ReportMetric(float64(benchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// CPU time (user and system, of this process: the embedded server's too) says more than
	// wall time on a machine shared with other work.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var (
	benchOnce  sync.Once
	benchStore *store.Store
	benchErr   error
	benchStop  func()
)

// benchLog writes the log once per test process (each -count and each b.N round reuse it); the
// server is stopped and its files removed by TestMain.
func benchLog(b *testing.B) *store.Store {
	b.Helper()
	benchOnce.Do(func() { benchStore, benchErr = writeBenchLog() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchStore
}

func writeBenchLog() (*store.Store, error) {
	dir, err := os.MkdirTemp("", "skiff-checker-bench-")
	if err != nil {
		return nil, err
	}
	srv, err := natsserver.Start(natsserver.Config{DataDir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	benchStop = func() { srv.Stop(); os.RemoveAll(dir) }
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{})
	if err != nil {
		return nil, err
	}
	st := res.Store
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	last := map[string]uint64{}
	// One step of every pod per AppendAll: no subject appears twice in one call.
	step := func(build func(i int) (*events.Event, error), n int) error {
		ws := make([]store.Write, n)
		for i := range n {
			ev, err := build(i)
			if err != nil {
				return err
			}
			ws[i] = store.Write{Event: ev, Expect: last[ev.Subject]}
		}
		for i, err := range st.AppendAll(ctx, ws) {
			if err != nil {
				return err
			}
			last[ws[i].Event.Subject] = ws[i].Event.Seq
		}
		return nil
	}
	meta := events.Meta{Actor: "scheduler/bench"}
	if err := step(func(int) (*events.Event, error) {
		return events.New(now, events.Meta{Actor: "node/n1"}, events.ObjectRef{Kind: events.KindNode, Name: "n1"}, "",
			&events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 64000, Memory: 256 << 30, MaxPods: 110})
	}, 1); err != nil {
		return nil, err
	}
	const pods = (benchEvents - 1) / 9
	name := func(i int) string { return fmt.Sprintf("web-%05d", i) }
	uid := func(i int) string { return fmt.Sprintf("uid-%05d", i) }
	ref := func(i int) events.ObjectRef { return podRef(name(i), uid(i)) }
	full := func(i int, node string) events.Pod { return pod(name(i), uid(i), node) }
	steps := []func(i int) (*events.Event, error){
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "", &events.PodCreated{Pod: full(i, "")})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "", &events.PodScheduled{UID: uid(i), Node: "n1", Feasible: 1, Nodes: 1})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "n1", &events.PodBound{Pod: full(i, "n1")})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "n1", &events.PodStatusReported{UID: uid(i), Status: events.PodStatus{Phase: events.PodPending}})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "n1", &events.PodStatusReported{UID: uid(i), Status: events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.0.2"}})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "", &events.PodDeletionRequested{UID: uid(i), GracePeriodSeconds: 30})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "n1", &events.PodStopRequested{UID: uid(i), GracePeriodSeconds: 30})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "n1", &events.PodTerminated{UID: uid(i)})
		},
		func(i int) (*events.Event, error) {
			return events.New(now, meta, ref(i), "", &events.PodDeleted{UID: uid(i)})
		},
	}
	for _, s := range steps {
		if err := step(s, pods); err != nil {
			return nil, err
		}
	}
	if head, err := st.Head(ctx); err != nil || head != benchEvents {
		return nil, fmt.Errorf("bench log head %d, want %d: %v", head, benchEvents, err)
	}
	return st, nil
}
