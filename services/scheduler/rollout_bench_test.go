package scheduler_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/services/scheduler"
	ct "skiff.dev/services/scheduler/internal/controllers/controllerstest"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// nodeSim plays the node agents for the scheduler's tests and benchmarks: a pod bound to a node
// is reported running and ready at once, a pod whose stop was requested terminated. It writes as
// agents do, plain conditional appends on the status subjects.
func nodeSim(b testing.TB, st *store.Store, ctx context.Context) {
	proj := live.New(state.New(), nil)
	go func() { _ = proj.Run(ctx, st, nil) }()
	ips := 0
	loop := reconcile.NewLoop(reconcile.Config{Name: "nodesim", Projection: proj}, func(ctx context.Context) (reconcile.Result, error) {
		batch := reconcile.NewBatch(time.Now(), events.Meta{Actor: "nodesim"})
		proj.View(func(s *state.State) {
			for _, p := range s.Pods {
				node := p.Spec.NodeName
				if !p.Bound || p.Terminated {
					continue
				}
				ref := ct.PodRef(p.Metadata.Namespace, p.Metadata.Name, p.Metadata.UID)
				subject := events.StatusSubject(node, ref.Namespace, ref.Name)
				switch {
				case p.StopRequested:
					batch.Add(ref, node, &events.PodTerminated{UID: ref.UID}, s.SubjectSeq(subject))
				case p.Status.Phase != events.PodRunning:
					ips++
					batch.Add(ref, node, &events.PodStatusReported{UID: ref.UID,
						Status: ct.RunningStatus(fmt.Sprintf("10.88.%d.%d", ips>>8&255, ips&255), true)}, s.SubjectSeq(subject))
				}
			}
		})
		return batch.Flush(ctx, st)
	})
	go func() { _ = loop.Run(ctx) }()
}

// BenchmarkRollout measures what fencing adds to the log and costs in time in a rolling update
// of a 1,000-pod Deployment behind a Service: one leader, simulated nodes, from the new
// template's apply until every pod runs it. "unfenced" is the same with the loops writing plain
// conditional appends, as before fencing. Run with -benchtime 1x.
func BenchmarkRollout(b *testing.B) {
	b.Run("fenced", func(b *testing.B) { benchRollout(b, true) })
	b.Run("unfenced", func(b *testing.B) { benchRollout(b, false) })
}

func benchRollout(b *testing.B, fenced bool) {
	const replicas = 1000
	for b.Loop() {
		st, nc, srv := eventstest.NewStoreConfig(b, bootstrap.Config{LeaderTTL: 5 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		rc, err := nats.Connect(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		cfg := scheduler.Config{Conn: rc, ID: "a", LeaseTimeout: time.Hour}
		if !fenced {
			cfg = scheduler.WithHooks(cfg, nil, func(string, scheduler.Appender) scheduler.Appender { return st })
		}
		startConfig(b, cfg)
		for i := range 12 {
			registerNode(b, st, fmt.Sprintf("n%d", i))
		}
		nodeSim(b, st, ctx)
		doc := func(image string) string {
			return strings.Replace(fmt.Sprintf(deployment, "web", replicas), "skiff.dev/echo:v1", image, 1)
		}
		if r := apply(b, nc, doc("skiff.dev/echo:v1")); r.Error != nil {
			b.Fatal(r.Error)
		}
		if r := apply(b, nc, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},
			"spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}`); r.Error != nil {
			b.Fatal(r.Error)
		}
		rolledOut := func(image string) func() bool {
			return func() bool {
				evs, err := st.History(ctx, events.ObjectSubject(events.KindDeployment, "default", "web"))
				if err != nil || len(evs) == 0 {
					return false
				}
				p, ok := evs[len(evs)-1].Data.(*events.DeploymentRolloutProgressed)
				return ok && p.Status.UpdatedReplicas == replicas && p.Status.AvailableReplicas == replicas && p.Status.Replicas == replicas
			}
		}
		eventstest.Eventually(b, 5*time.Minute, "1,000 pods available", rolledOut("skiff.dev/echo:v1"))
		from, _ := st.Head(ctx)
		start := time.Now()
		if r := apply(b, nc, doc("skiff.dev/echo:v2")); r.Error != nil {
			b.Fatal(r.Error)
		}
		eventstest.Eventually(b, 5*time.Minute, "the rollout completes", rolledOut("skiff.dev/echo:v2"))
		took := time.Since(start)
		// The projection of a live scheduler holds no more writes of the rollout once the
		// status says complete, but pods being deleted may still finish: count what is there.
		byType, fences := map[string]int{}, map[string]int{}
		var total, fenced, bytes, fenceBytes int
		err = st.Read(ctx, store.ReadOptions{From: from + 1}, func(ev *events.Event) error {
			total++
			byType[ev.Type]++
			data, err := ev.Marshal()
			if err != nil {
				return err
			}
			bytes += len(data)
			if p, ok := ev.Data.(*events.LeaderWrote); ok {
				fences[strings.TrimPrefix(ev.Subject, "skiff.ev.leader.pass.")]++
				fenced += p.Events
				fenceBytes += len(data)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("rollout of %d pods: %v, %d events (%d KiB), of which %d fences (%.1f%% of events, %d KiB) opening batches of %d events; fences by loop: %v",
			replicas, took.Round(time.Millisecond), total, bytes>>10, byType["LeaderWrote"], 100*float64(byType["LeaderWrote"])/float64(total),
			fenceBytes>>10, fenced, fences)
		for _, typ := range slices.Sorted(maps.Keys(byType)) {
			b.Logf("  %-28s %d", typ, byType[typ])
		}
		b.ReportMetric(float64(byType["LeaderWrote"]), "fences")
		b.ReportMetric(float64(total), "events")
		b.ReportMetric(took.Seconds(), "s")
	}
}
