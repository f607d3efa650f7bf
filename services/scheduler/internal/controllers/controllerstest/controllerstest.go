// Package controllerstest runs controllers against a real embedded JetStream in tests: a Cluster
// with the log, a live projection, a fake clock, helpers that write what users, the scheduler and
// nodes would write, and a FakeNodes loop that plays scheduler and node agents.
package controllerstest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/natsserver"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// Clock is a fake clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// T0 is where fake clocks start.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Cluster is a log on a real embedded JetStream with a live projection following it.
type Cluster struct {
	T          testing.TB
	Store      *store.Store
	NC         *nats.Conn
	Server     *natsserver.Server
	Projection *live.Projection
	Clock      *Clock
	Logger     *slog.Logger
}

// Timeout bounds every wait of a test.
const Timeout = eventstest.Timeout

// NewCluster starts a server, opens the log and runs a synced projection, all stopped at cleanup.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	st, nc, srv := eventstest.NewStore(t)
	return &Cluster{T: t, Store: st, NC: nc, Server: srv, Projection: eventstest.Follow(t, st), Clock: NewClock(T0), Logger: eventstest.Logger(t)}
}

// Go runs fn (a controller's Run) until cleanup, and fails the test if it returns an error.
func (c *Cluster) Go(fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			c.T.Errorf("controller: %v", err)
		}
	}()
	c.T.Cleanup(func() { cancel(); <-done })
}

// Context is a context bounded by Timeout.
func (c *Cluster) Context() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	c.T.Cleanup(cancel)
	return ctx
}

// Append writes one event as actor "test", conditional on what the projection has seen of its
// subject, and waits until the projection applied it. It returns the event's sequence. Like
// every writer (admission, for a user's command), it retries a Conflict once the projection has
// caught up: a controller may have written on the same subject in between.
func (c *Cluster) Append(ref events.ObjectRef, node string, p events.Payload) uint64 {
	c.T.Helper()
	for attempt := 1; ; attempt++ {
		seq, err := c.TryAppend(ref, node, p)
		if err == nil {
			return seq
		}
		if !errors.Is(err, events.ErrConflict) || attempt == 10 {
			c.T.Fatal(err)
		}
		head, herr := c.Store.Head(c.Context())
		if herr != nil {
			c.T.Fatal(herr)
		}
		if werr := c.Projection.WaitSeq(c.Context(), head); werr != nil {
			c.T.Fatal(werr)
		}
	}
}

// TryAppend is Append that returns its error.
func (c *Cluster) TryAppend(ref events.ObjectRef, node string, p events.Payload) (uint64, error) {
	ev, err := events.New(c.Clock.Now(), events.Meta{Actor: "test"}, ref, node, p)
	if err != nil {
		return 0, err
	}
	return eventstest.Append(c.Context(), c.Store, c.Projection, ev)
}

// Eventually waits until cond holds for the projection's state, checking after every event.
func (c *Cluster) Eventually(what string, cond func(s *state.State) bool) {
	c.T.Helper()
	eventstest.WaitState(c.T, c.Projection, Timeout, what, cond)
}

// History reads the whole log.
func (c *Cluster) History() []*events.Event {
	c.T.Helper()
	evs, err := c.Store.History(c.Context(), events.AllFilter)
	if err != nil {
		c.T.Fatal(err)
	}
	return evs
}

// Head is the log's last sequence.
func (c *Cluster) Head() uint64 {
	c.T.Helper()
	h, err := c.Store.Head(c.Context())
	if err != nil {
		c.T.Fatal(err)
	}
	return h
}

// Refs.

// PodRef names a pod.
func PodRef(ns, name, uid string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: ns, Name: name, UID: uid}
}

// NodeRef names a node.
func NodeRef(name string) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindNode, Name: name}
}

// Objects.

// RegisterNode writes NodeRegistered for name with address addr.
func (c *Cluster) RegisterNode(name, addr string) {
	c.T.Helper()
	c.Append(NodeRef(name), "", &events.NodeRegistered{Address: addr, MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110})
}

// Deployment is a Deployment of replicas pods running image, selecting app=name.
func Deployment(name string, replicas int32, image string) events.Deployment {
	return events.Deployment{
		TypeMeta: events.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: events.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name, Generation: 1},
		Spec: events.DeploymentSpec{
			Replicas: &replicas,
			Selector: &events.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: events.PodTemplateSpec{
				Metadata: events.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: events.PodSpec{Containers: []events.Container{{
					Name: "main", Image: image,
					Ports: []events.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}
}

// ApplyDeployment writes DeploymentApplied.
func (c *Cluster) ApplyDeployment(d events.Deployment) uint64 {
	c.T.Helper()
	ref := events.ObjectRef{Kind: events.KindDeployment, Namespace: d.Metadata.Namespace, Name: d.Metadata.Name, UID: d.Metadata.UID}
	return c.Append(ref, "", &events.DeploymentApplied{Deployment: d})
}

// ScaleDeployment writes DeploymentScaled with the next generation.
func (c *Cluster) ScaleDeployment(ns, name string, replicas int32) uint64 {
	c.T.Helper()
	var gen int64
	var uid string
	c.Projection.View(func(s *state.State) {
		if d := s.Deployments[state.Key{Namespace: ns, Name: name}]; d != nil {
			gen, uid = d.Metadata.Generation, d.Metadata.UID
		}
	})
	ref := events.ObjectRef{Kind: events.KindDeployment, Namespace: ns, Name: name, UID: uid}
	return c.Append(ref, "", &events.DeploymentScaled{Replicas: replicas, Generation: gen + 1})
}

// Pod returns a copy of the pod at key, or nil.
func (c *Cluster) Pod(key state.Key) *state.Pod {
	var out *state.Pod
	c.Projection.View(func(s *state.State) {
		if p := s.Pods[key]; p != nil {
			cp := *p
			out = &cp
		}
	})
	return out
}

// CreatePod writes PodCreated for a bare pod with labels and one container port named http.
func (c *Cluster) CreatePod(ns, name string, labels map[string]string) events.ObjectRef {
	c.T.Helper()
	ref := PodRef(ns, name, "uid-"+name)
	c.Append(ref, "", &events.PodCreated{Pod: events.Pod{
		Metadata: events.ObjectMeta{Name: name, Namespace: ns, UID: ref.UID, Labels: labels},
		Spec: events.PodSpec{Containers: []events.Container{{
			Name: "main", Image: "demo",
			Ports: []events.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}})
	return ref
}

// RunPod schedules and binds the pod at ref to node and reports it running and ready at ip.
func (c *Cluster) RunPod(ref events.ObjectRef, node, ip string) {
	c.T.Helper()
	c.Append(ref, "", &events.PodScheduled{UID: ref.UID, Node: node})
	pod := c.Pod(state.Key{Namespace: ref.Namespace, Name: ref.Name})
	c.Append(ref, node, &events.PodBound{Pod: pod.Pod})
	c.Append(ref, node, &events.PodStatusReported{UID: ref.UID, Status: RunningStatus(ip, true)})
}

// RunningStatus is the status of a running pod at ip, ready or not.
func RunningStatus(ip string, ready bool) events.PodStatus {
	return events.PodStatus{
		Phase: events.PodRunning, PodIP: ip,
		ContainerStatuses: []events.ContainerStatus{{Name: "main", Ready: ready,
			State: events.ContainerState{Running: &events.ContainerStateRunning{}}}},
	}
}

// Step runs one pass of a controller (its Sync), waits until the projection has applied what the
// pass wrote, and returns the result and the events written meanwhile (the pass's).
func (c *Cluster) Step(sync func(context.Context) (reconcile.Result, error)) (reconcile.Result, []*events.Event) {
	c.T.Helper()
	ctx := c.Context()
	head := c.Head()
	res, err := sync(ctx)
	if err != nil {
		c.T.Fatalf("pass: %v", err)
	}
	if err := c.Projection.WaitSeq(ctx, res.Seq); err != nil {
		c.T.Fatal(err)
	}
	var out []*events.Event
	if res.Seq > head {
		err = c.Store.Read(ctx, store.ReadOptions{From: head + 1, To: res.Seq}, func(ev *events.Event) error {
			out = append(out, ev)
			return nil
		})
		if err != nil {
			c.T.Fatal(err)
		}
	}
	return res, out
}

// Describe lists events as "Type subject", for comparing what a pass wrote.
func Describe(evs []*events.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type+" "+ev.Subject)
	}
	return out
}
