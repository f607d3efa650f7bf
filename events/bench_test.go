package events_test

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// benchLog builds a sequence of events as they would come off the stream.
type benchLog struct {
	t   testing.TB
	seq uint64
	evs []*events.Event
}

func (l *benchLog) add(ref events.ObjectRef, node string, p events.Payload) {
	ev, err := events.New(t0.Add(time.Duration(l.seq)*time.Millisecond), events.Meta{Actor: "bench"}, ref, node, p)
	if err != nil {
		l.t.Fatal(err)
	}
	l.seq++
	ev.Seq = l.seq
	l.evs = append(l.evs, ev)
}

// workload returns n events of a realistic mix: nodes register, then pods go through their
// whole life (created, scheduled, bound, reported twice, deletion, stop, terminated, deleted),
// encoded as they sit in the stream.
func workload(b testing.TB, n int) (subjects []string, data [][]byte) {
	l := &benchLog{t: b}
	for i := 0; i < 100; i++ {
		l.add(events.ObjectRef{Kind: events.KindNode, Name: fmt.Sprintf("n%d", i)}, "",
			&events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 32000, Memory: 256 << 30, MaxPods: 110})
	}
	for i := 0; len(l.evs) < n; i++ {
		name := fmt.Sprintf("web-%d", i)
		ref := events.ObjectRef{Kind: events.KindPod, Namespace: "default", Name: name, UID: "uid-" + name}
		nodeName := fmt.Sprintf("n%d", i%100)
		p := &events.PodCreated{Pod: events.Pod{
			Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: ref.UID},
			Spec: events.PodSpec{Containers: []events.Container{{Name: "c", Image: "skiff.dev/echo:v1",
				Resources: events.ResourceRequirements{Requests: events.ResourceList{"cpu": "100m", "memory": "64Mi"}}}}},
		}}
		p.Pod.Metadata.Labels = map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6d"}
		p.Pod.Metadata.OwnerReferences = []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d1", Controller: true}}
		l.add(ref, "", p)
		l.add(ref, "", &events.PodScheduled{UID: ref.UID, Node: nodeName, Score: 80, Feasible: 100, Nodes: 100})
		bound := p.Pod
		bound.Spec.NodeName = nodeName
		l.add(ref, nodeName, &events.PodBound{Pod: bound})
		started := t0
		for _, phase := range []string{events.PodPending, events.PodRunning} {
			l.add(ref, nodeName, &events.PodStatusReported{UID: ref.UID, Status: events.PodStatus{Phase: phase, PodIP: "10.88.1.7", StartTime: &started,
				ContainerStatuses: []events.ContainerStatus{{Name: "c", Ready: phase == events.PodRunning, ContainerID: "containerd://0123456789abcdef",
					State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: &started}}}}}})
		}
		l.add(ref, "", &events.PodDeletionRequested{UID: ref.UID, GracePeriodSeconds: 30})
		l.add(ref, nodeName, &events.PodStopRequested{UID: ref.UID, GracePeriodSeconds: 30})
		l.add(ref, nodeName, &events.PodTerminated{UID: ref.UID})
		l.add(ref, "", &events.PodDeleted{UID: ref.UID})
	}
	l.evs = l.evs[:n]
	for _, ev := range l.evs {
		b, err := ev.Marshal()
		if err != nil {
			panic(err)
		}
		subjects = append(subjects, ev.Subject)
		data = append(data, b)
	}
	return subjects, data
}

// BenchmarkReplay measures the fold's replay speed over 1,000,000 events: decoding each message
// as it comes off the stream and applying it to a fresh state. The target is 500,000
// events/s. decode=parallel is the path store.Read and store.Follow take (events.Decoder: every
// core decodes, one folds in order); decode=serial decodes and folds on one goroutine; codec=std
// is the serial replay with encoding/json. All three run in the same run, as baselines of each
// other.
func BenchmarkReplay(b *testing.B) {
	const n = 1_000_000
	subjects, data := workload(b, n)
	b.Run("decode=parallel,codec=goccy", func(b *testing.B) { replayParallel(b, subjects, data) })
	b.Run("decode=serial,codec=goccy", func(b *testing.B) { replaySerial(b, subjects, data) })
	b.Run("decode=serial,codec=std", func(b *testing.B) {
		defer events.UseStdJSON()()
		replaySerial(b, subjects, data)
	})
}

func replaySerial(b *testing.B, subjects []string, data [][]byte) {
	start := time.Now()
	for i := 0; i < b.N; i++ {
		st := state.New()
		for j := range data {
			ev, err := events.Decode(subjects[j], uint64(j+1), data[j])
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Apply(ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(data)*b.N)/time.Since(start).Seconds(), "events/s")
}

func replayParallel(b *testing.B, subjects []string, data [][]byte) {
	start := time.Now()
	for i := 0; i < b.N; i++ {
		st := state.New()
		dec := events.NewDecoder(false)
		go func() {
			for j := range data {
				dec.Submit(subjects[j], uint64(j+1), data[j], "")
			}
			dec.Close()
		}()
		for {
			m, ok := dec.Next()
			if !ok {
				break
			}
			if m.Err != nil {
				b.Fatal(m.Err)
			}
			if err := st.Apply(m.Event); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(data)*b.N)/time.Since(start).Seconds(), "events/s")
}
