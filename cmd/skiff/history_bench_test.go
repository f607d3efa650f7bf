package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/state"
)

// podLives writes, to a real file-backed log, 100 nodes and then the lives of n pods: each
// created, scheduled, bound, reported pending and running; every third one, 50 pods later,
// deleted again (deletion requested, stop requested, terminated, deleted). The log ends with
// 2n/3 live pods, in 5n+4n/3+100 events. It returns the fold of every prefix's pod count the
// benchmark asks about: the number of pods at seq.
func podLives(b testing.TB, js jetstream.JetStream, n int) (head uint64, podsAt func(seq uint64) int) {
	b.Helper()
	fold := state.New()
	counts := map[uint64]int{}
	var seq uint64
	add := func(ref events.ObjectRef, node string, p events.Payload) {
		ev, err := events.New(t0.Add(time.Duration(seq)*time.Millisecond), events.Meta{Actor: "bench"}, ref, node, p)
		if err != nil {
			b.Fatal(err)
		}
		data, err := ev.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync(ev.Subject, data); err != nil {
			b.Fatal(err)
		}
		// A window of acks at a time: an unbounded one stalls the client on a loaded machine.
		if seq%1000 == 999 {
			waitPublished(b, js)
		}
		seq++
		ev.Seq = seq
		if err := fold.Apply(ev); err != nil {
			b.Fatalf("event %d does not apply: %v", seq, err)
		}
		counts[seq] = len(fold.Pods)
	}
	for i := range 100 {
		add(nodeRef(fmt.Sprintf("n%03d", i)), "", &events.NodeRegistered{Address: fmt.Sprintf("10.0.%d.1", i), MilliCPU: 64000, Memory: 256 << 30, MaxPods: 1000})
	}
	name := func(i int) string { return fmt.Sprintf("web-7d4b9c6f5-%05d", i) }
	node := func(i int) string { return fmt.Sprintf("n%03d", i%100) }
	for i := range n + 50 {
		if i < n {
			uid := fmt.Sprintf("u-%d", i)
			ref := podRef("default", name(i), uid)
			add(ref, "", &events.PodCreated{Pod: webPod(name(i), uid)})
			add(ref, "", &events.PodScheduled{UID: uid, Node: node(i), Score: 80, Feasible: 100, Nodes: 100})
			bound := webPod(name(i), uid)
			bound.Spec.NodeName = node(i)
			add(ref, node(i), &events.PodBound{Pod: bound})
			for _, phase := range []string{events.PodPending, events.PodRunning} {
				add(ref, node(i), &events.PodStatusReported{UID: uid, Status: events.PodStatus{Phase: phase,
					PodIP: fmt.Sprintf("10.88.%d.%d", i%100, i/100%250), ContainerStatuses: []events.ContainerStatus{running(0)}}})
			}
		}
		if d := i - 50; d >= 0 && d%3 == 0 {
			uid := fmt.Sprintf("u-%d", d)
			ref := podRef("default", name(d), uid)
			add(ref, "", &events.PodDeletionRequested{UID: uid, GracePeriodSeconds: 30})
			add(ref, node(d), &events.PodStopRequested{UID: uid, GracePeriodSeconds: 30})
			add(ref, node(d), &events.PodTerminated{UID: uid})
			add(ref, "", &events.PodDeleted{UID: uid})
		}
	}
	waitPublished(b, js)
	return seq, func(s uint64) int { return counts[s] }
}

func waitPublished(b testing.TB, js jetstream.JetStream) {
	b.Helper()
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("the log was not written within a minute")
	}
}

// BenchmarkGetPodsAt is `skiff get pods --at SEQ` end to end on a log of 30,000 pods' lives
// (190,100 events, 20,000 pods live at the end) in a real file-backed JetStream stream: the
// CLI reads the log up to SEQ through store.Read (decoded on every core), folds it, and prints
// the table. SEQ is the middle of the log and its head.
func BenchmarkGetPodsAt(b *testing.B) {
	st, _, srv := eventstest.NewStore(b)
	head, podsAt := podLives(b, st.JetStream(), 30000)
	if h, err := st.Head(context.Background()); err != nil || h != head {
		b.Fatalf("the log's head is %d (%v), want %d", h, err, head)
	}
	for _, seq := range []uint64{head / 2, head} {
		b.Run(fmt.Sprintf("seq=%d", seq), func(b *testing.B) {
			var out, errb bytes.Buffer
			env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Now: func() time.Time { return now },
				Getenv: func(k string) string { return map[string]string{"SKIFF_SERVER": srv.URL()}[k] }}
			cpu := cpuTime()
			start := time.Now()
			for b.Loop() {
				out.Reset()
				if code := run(context.Background(), []string{"get", "pods", "--at", strconv.FormatUint(seq, 10)}, env); code != 0 {
					b.Fatalf("exit %d: %s", code, errb.String())
				}
			}
			elapsed := time.Since(start)
			if got, want := strings.Count(out.String(), "\n")-1, podsAt(seq); got != want {
				b.Fatalf("%d pods listed at sequence %d, want %d", got, seq, want)
			}
			b.ReportMetric(float64(seq)*float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}
