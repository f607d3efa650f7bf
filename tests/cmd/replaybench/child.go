package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// startup is what the child reports.
type startup struct {
	// Synced is from the process's start to the projection's Synced; Loaded to the state it
	// starts from (connected, the snapshot read and decoded).
	Synced, Loaded time.Duration
	// Snapshot is the sequence started from (0: the log's start); Folded the events folded
	// after it.
	Snapshot, Folded uint64
	Pods             int
	// RSS is the process's resident set after a GC once synced; Peak its VmHWM; Heap the Go
	// heap in use then.
	RSS, Peak, Heap int64
	// CPU is the process's user and system time, filled in by the parent.
	CPU time.Duration
}

var processStart = time.Now()

// child starts a projection as the scheduler does and reports how long it took to catch up
// with the log and what it holds in memory then.
func child(ctx context.Context, o options) error {
	if o.child != "startup" {
		return fmt.Errorf("-child %q: want startup", o.child)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	nc, err := nats.Connect(o.server)
	if err != nil {
		return err
	}
	defer nc.Close()
	st, err := store.Attach(ctx, nc, store.Config{})
	if err != nil {
		return err
	}
	start := state.New()
	if o.fromSnapshot {
		start = snapshot.Start(ctx, st, api.SnapshotBucket, nil, nil)
	}
	from := start.Seq
	loaded := time.Since(processStart)
	proj := live.New(start, nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- proj.Run(ctx, st, nil) }()
	if err := proj.WaitSynced(ctx); err != nil {
		return err
	}
	r := startup{Synced: time.Since(processStart), Loaded: loaded, Snapshot: from, Folded: proj.Folded()}
	proj.View(func(s *state.State) { r.Pods = len(s.Pods) })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.Heap = int64(ms.HeapInuse)
	r.RSS, r.Peak = procStatus("VmRSS"), procStatus("VmHWM")
	cancel()
	<-done
	return writeJSON(r)
}
