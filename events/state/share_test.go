package state_test

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// owned is a pod of Deployment owner, as its controller creates it.
func owned(name, owner, image string) *events.PodCreated {
	p := pod(name, "100m")
	p.Pod.Spec.Containers[0].Image = image
	p.Pod.Spec.Containers[0].Ports = []events.ContainerPort{{Name: "http", ContainerPort: 8080}}
	p.Pod.Metadata.Labels = map[string]string{"app": owner, "pod-template-hash": image}
	p.Pod.Metadata.OwnerReferences = []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner, UID: "uid-" + owner, Controller: true}}
	return p
}

// decoded is evs as a reader gets them: encoded, then decoded, so no two events share memory.
func decoded(t testing.TB, evs []*events.Event) []*events.Event {
	t.Helper()
	out := make([]*events.Event, len(evs))
	for i, ev := range evs {
		data, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = events.Decode(ev.Subject, ev.Seq, data); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func same[T any](a, b T) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// TestPodsOfOneOwnerShareTheirTemplate: the fold keeps one copy of the spec, labels and owner
// references for the pods of one owner that have them alike, a copy per template a rollout
// brings, and none once the owner's last pod is gone; every pod still reads as it was created.
func TestPodsOfOneOwnerShareTheirTemplate(t *testing.T) {
	l := &log{t: t}
	created := map[string]*events.PodCreated{
		"a1": owned("a1", "a", "echo:v1"), "a2": owned("a2", "a", "echo:v1"),
		"a3": owned("a3", "a", "echo:v2"), "a4": owned("a4", "a", "echo:v2"),
		"b1": owned("b1", "b", "echo:v1"),
	}
	for _, name := range []string{"a1", "a2", "a3", "a4", "b1"} {
		l.add(podRef(name), "", created[name])
	}
	st := state.New()
	for _, ev := range decoded(t, l.evs) {
		if err := st.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) *state.Pod { return st.Pods[state.Key{Namespace: "default", Name: name}] }
	for name, c := range created {
		p := get(name)
		want := c.Pod
		if !reflect.DeepEqual(p.Spec, want.Spec) || !reflect.DeepEqual(p.Metadata.Labels, want.Metadata.Labels) ||
			!reflect.DeepEqual(p.Metadata.OwnerReferences, want.Metadata.OwnerReferences) {
			t.Errorf("pod %s reads %+v %v %v, created as %+v %v %v", name, p.Spec, p.Metadata.Labels, p.Metadata.OwnerReferences,
				want.Spec, want.Metadata.Labels, want.Metadata.OwnerReferences)
		}
		if c := p.Spec.Containers; cap(c) != len(c) || cap(c[0].Ports) != len(c[0].Ports) {
			t.Errorf("pod %s: containers cap %d len %d, ports cap %d len %d: an append would write into the shared array", name, cap(c), len(c), cap(c[0].Ports), len(c[0].Ports))
		}
	}
	for _, tc := range []struct {
		x, y  string
		share bool
	}{{"a1", "a2", true}, {"a3", "a4", true}, {"a2", "a3", false}, {"a1", "b1", false}} {
		x, y := get(tc.x), get(tc.y)
		gotSpec := &x.Spec.Containers[0] == &y.Spec.Containers[0]
		gotLabels := same(x.Metadata.Labels, y.Metadata.Labels)
		gotOwners := &x.Metadata.OwnerReferences[0] == &y.Metadata.OwnerReferences[0]
		if gotSpec != tc.share || gotLabels != tc.share {
			t.Errorf("%s and %s share spec %v, labels %v; want %v", tc.x, tc.y, gotSpec, gotLabels, tc.share)
		}
		if wantOwners := tc.share || tc.x[0] == tc.y[0]; gotOwners != wantOwners {
			t.Errorf("%s and %s share owner references %v, want %v", tc.x, tc.y, gotOwners, wantOwners)
		}
	}
	if st.Templates() != 2 {
		t.Errorf("%d templates, want 2 (a and b)", st.Templates())
	}
	for _, name := range []string{"a1", "a2", "a3", "a4"} {
		if err := st.Apply(l.add(podRef(name), "", &events.PodDeleted{UID: "uid-" + name})); err != nil {
			t.Fatal(err)
		}
	}
	if st.Templates() != 1 {
		t.Errorf("%d templates after a's pods are gone, want 1 (b)", st.Templates())
	}
}

// BenchmarkFoldMemory reports the heap the fold holds for 150,000 running pods (1,500
// Deployments of 100 on 5,000 nodes), each event encoded and decoded as a reader gets it off
// the stream; shared=false is the same without sharing templates (the baseline, same run).
func BenchmarkFoldMemory(b *testing.B) {
	const deps, per, nodes = 1500, 100, 5000
	l := &log{t: b}
	for i := range nodes {
		ref, reg := node(fmt.Sprintf("n%d", i), 64000, 256<<30)
		l.add(ref, "", reg)
	}
	for d := range deps {
		for i := range per {
			name := fmt.Sprintf("app%d-5d8f7c9b6d-%05d", d, i)
			ref, n := podRef(name), fmt.Sprintf("n%d", (d*per+i)%nodes)
			l.add(ref, "", owned(name, fmt.Sprintf("app%d", d), "skiff.dev/echo:v1"))
			l.add(ref, "", &events.PodScheduled{UID: ref.UID, Node: n})
			l.add(ref, n, &events.PodStatusReported{UID: ref.UID, Status: events.PodStatus{Phase: events.PodRunning, PodIP: "10.88.1.7",
				ContainerStatuses: []events.ContainerStatus{{Name: "c", Image: "skiff.dev/echo:v1", Ready: true, ContainerID: "containerd://0123456789abcdef",
					State: events.ContainerState{Running: &events.ContainerStateRunning{StartedAt: &t0}}}}}})
		}
	}
	data := make([][]byte, len(l.evs))
	for i, ev := range l.evs {
		var err error
		if data[i], err = ev.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
	for _, shared := range []bool{true, false} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			defer state.ShareTemplates(shared)()
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				st := state.New()
				for i, ev := range l.evs {
					dec, err := events.Decode(ev.Subject, ev.Seq, data[i])
					if err != nil {
						b.Fatal(err)
					}
					if err := st.Apply(dec); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(deps*per), "heap-bytes/pod")
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
				runtime.KeepAlive(st)
			}
		})
	}
}
