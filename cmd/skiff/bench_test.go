package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
)

// bigProjection is a projection holding n running pods on 100 nodes, filled without a log: the
// benchmark measures answering and printing, not writing.
func bigProjection(t testing.TB, n int) *live.Projection {
	t.Helper()
	proj := live.New(state.New(), nil)
	var seq uint64
	apply := func(ref events.ObjectRef, node string, p events.Payload) {
		ev, err := events.New(t0, events.Meta{Actor: "bench"}, ref, node, p)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		ev.Seq = seq
		proj.Apply(ev)
	}
	for i := range 100 {
		apply(nodeRef(fmt.Sprintf("n%03d", i)), "", &events.NodeRegistered{Address: fmt.Sprintf("10.0.%d.1", i), MilliCPU: 64000, Memory: 256 << 30, MaxPods: 1000})
	}
	for i := range n {
		name, uid, node := fmt.Sprintf("web-7d4b9c6f5-%05d", i), fmt.Sprintf("u-%d", i), fmt.Sprintf("n%03d", i%100)
		ref := podRef("default", name, uid)
		apply(ref, "", &events.PodCreated{Pod: webPod(name, uid)})
		apply(ref, "", &events.PodScheduled{UID: uid, Node: node})
		apply(ref, node, &events.PodStatusReported{UID: uid, Status: events.PodStatus{Phase: events.PodRunning,
			PodIP: fmt.Sprintf("10.88.%d.%d", i%100, i/100), ContainerStatuses: []events.ContainerStatus{running(0)}}})
	}
	return proj
}

// TestGetManyPods lists 10,000 pods, an answer of several chunks, and checks every row arrives
// once, in order.
func TestGetManyPods(t *testing.T) {
	srv := eventstest.NewServer(t)
	nc := eventstest.Connect(t, srv)
	const n = 10000
	newFakeScheduler(t, nc, bigProjection(t, n))
	var out, errb bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Now: func() time.Time { return now },
		Getenv: func(k string) string { return map[string]string{"SKIFF_SERVER": srv.URL()}[k] }}
	if code := run(context.Background(), []string{"get", "pods", "-o", "wide"}, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	ls := lines(out.String())
	if len(ls) != n+1 {
		t.Fatalf("%d lines, want %d rows and a header", len(ls), n)
	}
	for i, l := range ls[1:] {
		if want := fmt.Sprintf("web-7d4b9c6f5-%05d ", i); !strings.HasPrefix(l, want) {
			t.Fatalf("row %d = %q, want it to start with %q", i, l, want)
		}
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGetPods is `skiff get pods` end to end with 30,000 and 150,000 pods in the cluster:
// the query over NATS, the scheduler-side rows (the same table package), the chunked answer,
// and the CLI's aligned printing. Connecting is part of every run, as it is for a user. Both
// sides share this process's CPUs, as they share a one-machine cluster's.
func BenchmarkGetPods(b *testing.B) {
	for _, n := range []int{30000, 150000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			srv := eventstest.NewServer(b)
			nc := eventstest.Connect(b, srv)
			newFakeScheduler(b, nc, bigProjection(b, n))
			for _, args := range [][]string{{"get", "pods"}, {"get", "pods", "-o", "wide"}} {
				b.Run(map[bool]string{false: "narrow", true: "wide"}[len(args) > 2], func(b *testing.B) {
					var errb bytes.Buffer
					env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errb, Now: func() time.Time { return now },
						Getenv: func(k string) string { return map[string]string{"SKIFF_SERVER": srv.URL()}[k] }}
					cpu := cpuTime()
					for b.Loop() {
						if code := run(context.Background(), args, env); code != 0 {
							b.Fatalf("exit %d: %s", code, errb.String())
						}
					}
					// On a shared machine the CPU both sides spent is steadier than the wall time.
					b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
				})
			}
		})
	}
}
