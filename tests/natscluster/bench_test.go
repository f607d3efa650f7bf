package natscluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/bootstrap"
	"skiff.dev/events/natsserver"
	"skiff.dev/events/store"
)

// BenchmarkAppend measures conditional appends (store.Append with the subject's last sequence)
// per second, one writer and 16 writers on subjects of their own sharing one connection, on:
//   - embedded-R1: the embedded server as skiff up runs it (JetStream's default sync interval);
//   - embedded-R1-sync-always: the same with sync_interval: always, to separate the cost of the
//     disk from the cost of replication;
//   - cluster-R3: three stock nats-server processes in namespaces, TLS, creds, sync_interval:
//     always, the stream with three replicas (skiff cluster bootstrap --replicas 3).
//
// All in one run, so the baseline shares the machine's state:
//
//	go test -run '^$' -bench Append -benchtime 2000x -count 5 ./natscluster
func BenchmarkAppend(b *testing.B) {
	targets := []struct {
		name string
		open func(b *testing.B) *store.Store
	}{
		{"embedded-R1", func(b *testing.B) *store.Store { return embedded(b, false) }},
		{"embedded-R1-sync-always", func(b *testing.B) *store.Store { return embedded(b, true) }},
		{"cluster-R3", func(b *testing.B) *store.Store {
			c := Start(b, Options{})
			c.Bootstrap(3)
			st, err := store.Attach(context.Background(), c.MustConnect(c.Creds("admin")), store.Config{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	for _, tg := range targets {
		b.Run("server="+tg.name, func(b *testing.B) {
			st := tg.open(b)
			for _, writers := range []int{1, 16} {
				b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
					benchAppend(b, st, writers)
				})
			}
		})
	}
}

var benchRun atomic.Int64

func benchAppend(b *testing.B, st *store.Store, writers int) {
	ctx := context.Background()
	run := benchRun.Add(1)
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			var expect uint64
			pod := fmt.Sprintf("r%d-w%d", run, w)
			for left.Add(-1) >= 0 {
				seq, err := st.Append(ctx, statusReported(b, "bench", pod), expect)
				if err != nil {
					errs <- err
					return
				}
				expect = seq
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// embedded starts the embedded server with a fresh store and bootstraps the log on it.
func embedded(b *testing.B, syncAlways bool) *store.Store {
	cfg := natsserver.Config{DataDir: b.TempDir()}
	if syncAlways {
		conf := filepath.Join(b.TempDir(), "nats.conf")
		text := fmt.Sprintf("listen: \"127.0.0.1:-1\"\nmax_payload: 8388608\njetstream { store_dir: %q, sync_interval: always }\n", cfg.DataDir)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
		cfg = natsserver.Config{ConfigFile: conf}
	}
	srv, err := natsserver.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	res, err := bootstrap.Run(context.Background(), nc, bootstrap.Config{Replicas: 1})
	if err != nil {
		b.Fatal(err)
	}
	return res.Store
}
