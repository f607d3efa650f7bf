package controllers

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/state"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
	"skiff.dev/services/scheduler/internal/controllers/deployments"
	"skiff.dev/services/scheduler/internal/controllers/endpoints"
	"skiff.dev/services/scheduler/internal/controllers/nodelifecycle"
	"skiff.dev/services/scheduler/internal/controllers/podlifecycle"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// cluster builds, in memory, nodes nodes and deps Deployments of per pods each, all running and
// ready, each behind a Service, with endpoints and statuses up to date: the steady state a pass
// finds most of the time.
func cluster(b *testing.B, nodes, deps, per int) *ct.MemLog {
	m := ct.NewMemLog()
	for i := range nodes {
		m.Add(ct.NodeRef(fmt.Sprintf("n%d", i)), "", &events.NodeRegistered{Address: "192.168.0.1", MilliCPU: 64000, Memory: 256 << 30, MaxPods: 110})
	}
	ip := 0
	for d := range deps {
		name := fmt.Sprintf("app%d", d)
		dep := ct.Deployment(name, int32(per), "demo:v1")
		m.Add(events.ObjectRef{Kind: events.KindDeployment, Namespace: "default", Name: name, UID: dep.Metadata.UID}, "",
			&events.DeploymentApplied{Deployment: dep})
		m.Add(events.ObjectRef{Kind: events.KindService, Namespace: "default", Name: name}, "",
			&events.ServiceApplied{Service: events.Service{Metadata: events.ObjectMeta{Name: name, Namespace: "default"},
				Spec: events.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []events.ServicePort{{Port: 80, TargetPort: events.FromString("http")}}}}})
		hash := deployments.TemplateHash(dep.Spec.Template)
		for p := range per {
			pod := fmt.Sprintf("%s-%s-%05d", name, hash, p)
			ref := ct.PodRef("default", pod, "uid-"+pod)
			node := fmt.Sprintf("n%d", ip%nodes)
			ip++
			m.Add(ref, "", &events.PodCreated{Pod: events.Pod{
				Metadata: events.ObjectMeta{Name: pod, Namespace: "default", UID: ref.UID,
					Labels:          map[string]string{"app": name, deployments.TemplateHashLabel: hash},
					OwnerReferences: []events.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: dep.Metadata.UID, Controller: true}}},
				Spec: dep.Spec.Template.Spec,
			}})
			m.Add(ref, "", &events.PodScheduled{UID: ref.UID, Node: node})
			var bound events.Pod
			m.P.View(func(s *state.State) { bound = s.Pods[state.Key{Namespace: "default", Name: pod}].Pod })
			m.Add(ref, node, &events.PodBound{Pod: bound})
			m.Add(ref, node, &events.PodStatusReported{UID: ref.UID, Status: ct.RunningStatus(fmt.Sprintf("10.%d.%d.%d", 88+ip>>16, ip>>8&255, ip&255), true)})
		}
	}
	return m
}

// settle runs passes until one writes nothing, so the benchmark measures the steady state.
func settle(b *testing.B, sync func(context.Context) (reconcile.Result, error)) {
	for range 10 {
		res, err := sync(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if res.Written == 0 && res.Conflicts == 0 {
			return
		}
	}
	b.Fatal("controller does not settle")
}

func benchPass(b *testing.B, sync func(context.Context) (reconcile.Result, error)) {
	settle(b, sync)
	b.ResetTimer()
	for b.Loop() {
		res, err := sync(context.Background())
		if err != nil || res.Written != 0 {
			b.Fatalf("steady pass: %+v, %v", res, err)
		}
	}
}

// sizes: 500 Deployments (each behind a Service) of 2 or 20 pods, on 100 nodes.
var sizes = []struct{ nodes, deps, per int }{{100, 500, 2}, {100, 500, 20}}

func benchSizes(b *testing.B, pass func(m *ct.MemLog) func(context.Context) (reconcile.Result, error)) {
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("pods=%d", sz.deps*sz.per), func(b *testing.B) {
			m := cluster(b, sz.nodes, sz.deps, sz.per)
			benchPass(b, pass(m))
		})
	}
}

func BenchmarkDeploymentsPass(b *testing.B) {
	benchSizes(b, func(m *ct.MemLog) func(context.Context) (reconcile.Result, error) {
		return deployments.New(deployments.Config{Log: m, Projection: m.P, Clock: ct.NewClock(ct.T0).Now}).Sync
	})
}

func BenchmarkEndpointsPass(b *testing.B) {
	benchSizes(b, func(m *ct.MemLog) func(context.Context) (reconcile.Result, error) {
		return endpoints.New(endpoints.Config{Log: m, Projection: m.P, Clock: ct.NewClock(ct.T0).Now}).Sync
	})
}

func BenchmarkPodLifecyclePass(b *testing.B) {
	benchSizes(b, func(m *ct.MemLog) func(context.Context) (reconcile.Result, error) {
		return podlifecycle.New(podlifecycle.Config{Log: m, Projection: m.P, Clock: ct.NewClock(ct.T0).Now}).Sync
	})
}

// BenchmarkNodeLifecyclePass: 1,000 nodes.
func BenchmarkNodeLifecyclePass(b *testing.B) {
	m := cluster(b, 1000, 1, 1)
	benchPass(b, nodelifecycle.New(nodelifecycle.Config{Log: m, Projection: m.P, Clock: ct.NewClock(ct.T0).Now}).Sync)
}

// BenchmarkPassAfterOnePodChange is what the controllers do when one pod changes (its readiness
// flips): a pass of the deployments, endpoints and pod lifecycle controllers, each writing what
// that change calls for (its Deployment's status, its Service's endpoints). "changed" passes
// look only at what changed, as under Run; "everything" passes look at every object, as every
// pass did before (the baseline, in the same run). Deployments of 100 pods, each behind a
// Service, 30 pods a node. The aim: "changed" flat from 1,000 to 150,000 pods.
func BenchmarkPassAfterOnePodChange(b *testing.B) {
	for _, pods := range []int{1000, 150000} {
		for _, mode := range []string{"changed", "everything"} {
			b.Run(fmt.Sprintf("pods=%d/%s", pods, mode), func(b *testing.B) {
				m := cluster(b, pods/30, pods/100, 100)
				clock := ct.NewClock(ct.T0).Now
				d := deployments.New(deployments.Config{Log: m, Projection: m.P, Clock: clock})
				e := endpoints.New(endpoints.Config{Log: m, Projection: m.P, Clock: clock})
				p := podlifecycle.New(podlifecycle.Config{Log: m, Projection: m.P, Clock: clock})
				syncs := []func(context.Context) (reconcile.Result, error){d.Sync, e.Sync, p.Sync}
				if mode == "changed" {
					for _, w := range []func() func(){d.Watch, e.Watch, p.Watch} {
						b.Cleanup(w())
					}
				}
				for _, sync := range syncs {
					settle(b, sync)
				}
				// The pod that flips: the first of the middle Deployment.
				var ref events.ObjectRef
				var node, ip string
				m.P.View(func(s *state.State) {
					for _, pod := range s.PodsOwnedBy(fmt.Sprintf("uid-app%d", pods/200)) {
						ref = ct.PodRef(pod.Metadata.Namespace, pod.Metadata.Name, pod.Metadata.UID)
						node, ip = pod.Spec.NodeName, pod.Status.PodIP
						break
					}
				})
				ready := true
				b.ResetTimer()
				for b.Loop() {
					b.StopTimer()
					ready = !ready
					m.Add(ref, node, &events.PodStatusReported{UID: ref.UID, Status: ct.RunningStatus(ip, ready)})
					b.StartTimer()
					written := 0
					for _, sync := range syncs {
						res, err := sync(context.Background())
						if err != nil {
							b.Fatal(err)
						}
						written += res.Written
					}
					if written != 2 {
						b.Fatalf("one pod's readiness flipped: %d events written, want its Deployment's status and its Service's endpoints", written)
					}
				}
			})
		}
	}
}

// BenchmarkStateMemory reports the heap the fold of 150,000 running pods (1,500 Deployments of
// 100 behind a Service each, on 5,000 nodes) holds, per pod: most of the scheduler's memory.
func BenchmarkStateMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := cluster(b, 5000, 1500, 100)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/150000, "heap-bytes/pod")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		runtime.KeepAlive(m)
	}
}
