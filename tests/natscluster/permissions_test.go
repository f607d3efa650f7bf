package natscluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/images"
	"skiff.dev/events/store"
)

// actor is one identity's connection, with every permission violation the server reported to
// it.
type actor struct {
	name       string
	nc         *nats.Conn
	st         *store.Store
	js         jetstream.JetStream
	violations chan error
}

func newActor(t *testing.T, c *Cluster, creds string) *actor {
	t.Helper()
	a := &actor{name: creds, violations: make(chan error, 64)}
	a.nc = c.MustConnect(creds, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case a.violations <- err:
			default:
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Attach(ctx, a.nc, store.Config{})
	if err != nil {
		t.Fatalf("%s: attach: %v", creds, err)
	}
	a.st, a.js = st, st.JetStream()
	return a
}

// refused runs do, which must fail, and checks that the server refused the very subject: a
// permission violation naming it reaches the connection.
func (a *actor) refused(t *testing.T, subject string, do func(ctx context.Context) error) {
	t.Helper()
	for len(a.violations) > 0 {
		<-a.violations
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := do(ctx)
	cancel()
	if err == nil {
		t.Fatalf("succeeded; want the server to refuse %s", subject)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case v := <-a.violations:
			if strings.Contains(v.Error(), subject) {
				t.Logf("refused: %v (the call returned: %v)", v, err)
				return
			}
		case <-deadline:
			t.Fatalf("no permission violation for %s reached the client (the call returned: %v)", subject, err)
		}
	}
}

func TestPermissions(t *testing.T) {
	c := Start(t, Options{})
	c.Bootstrap(3)
	admin := newActor(t, c, c.Creds("admin"))
	sched := newActor(t, c, c.Creds("scheduler"))
	nodeA := newActor(t, c, c.NodeCreds("a"))
	alice := newActor(t, c, c.UserCreds("alice"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	count := func(t *testing.T) uint64 {
		t.Helper()
		n, err := msgCount(ctx, admin.js, store.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	appendAllowed := func(t *testing.T, a *actor, ev *events.Event) {
		t.Helper()
		before := count(t)
		if _, err := a.st.Append(ctx, ev, 0); err != nil {
			t.Fatalf("%s: append %s on %s: %v", a.name, ev.Type, ev.Subject, err)
		}
		if after := count(t); after != before+1 {
			t.Errorf("stream has %d messages after the append, want %d", after, before+1)
		}
	}
	appendRefused := func(t *testing.T, a *actor, ev *events.Event) {
		t.Helper()
		before := count(t)
		a.refused(t, ev.Subject, func(ctx context.Context) error {
			_, err := a.st.Append(ctx, ev, 0)
			// The append reports the refusal itself, not only a timeout.
			if !errors.Is(err, events.ErrPermissionDenied) {
				t.Errorf("%s: refused append %s on %s returned %v, want PermissionDenied", a.name, ev.Type, ev.Subject, err)
			}
			return err
		})
		if after := count(t); after != before {
			t.Errorf("stream has %d messages after a refused append, want %d", after, before)
		}
	}
	streamUpdate := func(a *actor) func(context.Context) error {
		return func(ctx context.Context) error {
			s, err := admin.js.Stream(ctx, store.DefaultStream)
			if err != nil {
				return err
			}
			cfg := s.CachedInfo().Config
			cfg.Description = "changed by " + a.name
			_, err = a.js.UpdateStream(ctx, cfg)
			return err
		}
	}
	// readOne reads the first event of filter with an ordered consumer, as the agent does.
	readOne := func(a *actor, filter string) func(context.Context) error {
		return func(ctx context.Context) error {
			cons, err := a.js.OrderedConsumer(ctx, store.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
			if err != nil {
				return err
			}
			_, err = cons.Next(jetstream.FetchMaxWait(time.Second))
			return err
		}
	}
	imagePut := func(a *actor) func(context.Context) error {
		return func(ctx context.Context) error {
			obs, err := images.OpenBucket(ctx, a.js)
			if err != nil {
				return err
			}
			_, err = obs.PutBytes(ctx, "skiff.dev/test-"+strings.NewReplacer(":", "-", "/", "-").Replace(a.name[strings.LastIndex(a.name, "/")+1:]), []byte("not really a tarball"))
			return err
		}
	}
	// commandSeen publishes a command as a and reports whether admin, listening on every
	// command subject, got it.
	commandSeen := func(a *actor, subject string) func(context.Context) error {
		return func(ctx context.Context) error {
			sub, err := admin.nc.SubscribeSync("skiff.cmd.>")
			if err != nil {
				return err
			}
			defer sub.Unsubscribe()
			if err := admin.nc.Flush(); err != nil {
				return err
			}
			// Interest in skiff.cmd.> reaches the other servers shortly after the
			// subscription: publish until it arrives.
			for {
				if err := a.nc.Publish(subject, []byte("{}")); err != nil {
					return err
				}
				if err := a.nc.Flush(); err != nil {
					return err
				}
				m, err := sub.NextMsg(200 * time.Millisecond)
				if err == nil {
					if m.Subject != subject {
						return fmt.Errorf("got %s, want %s", m.Subject, subject)
					}
					return nil
				}
				if ctx.Err() != nil {
					return fmt.Errorf("%s did not arrive: %w", subject, err)
				}
			}
		}
	}
	must := func(t *testing.T, what string, do func(context.Context) error) {
		t.Helper()
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		if err := do(actx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	t.Run("scheduler", func(t *testing.T) {
		appendAllowed(t, sched, podCreated(t, "p1"))
		appendAllowed(t, sched, podBound(t, "a", "p1"))
		appendAllowed(t, sched, podBound(t, "b", "p2"))
		appendRefused(t, sched, statusReported(t, "a", "p1"))
		// It starts leader terms, and its fenced batches land on the replicated stream.
		appendAllowed(t, sched, newEvent(t, "", events.TermRef, &events.LeaderElected{Replica: "natscluster", Term: 1}))
		term, err := sched.st.LastTerm(ctx)
		if err != nil || term.Number != 1 {
			t.Fatalf("last term = %+v, %v", term, err)
		}
		fenced := sched.st.Fenced(term, "natscluster", store.FenceConfig{Actor: "scheduler/natscluster"})
		if err := errors.Join(fenced.AppendAll(ctx, []store.Write{{Event: podCreated(t, "p-fenced")}})...); err != nil {
			t.Fatalf("fenced batch: %v", err)
		}
		sched.refused(t, "$JS.API.STREAM.UPDATE.SKIFF", streamUpdate(sched))
	})
	t.Run("node", func(t *testing.T) {
		appendAllowed(t, nodeA, statusReported(t, "a", "p1"))
		appendRefused(t, nodeA, statusReported(t, "b", "p2"))
		appendRefused(t, nodeA, podBound(t, "a", "p3"))
		appendRefused(t, nodeA, newEvent(t, "", events.TermRef, &events.LeaderElected{Replica: "node-a", Term: 9}))
		// Its own registration, yes; what controllers and admission say of it (cordon, pod
		// CIDR, readiness, on skiff.ev.node._.a), no: it cannot uncordon itself.
		nodeRef := events.ObjectRef{Kind: events.KindNode, Name: "a"}
		appendAllowed(t, nodeA, newEvent(t, "", nodeRef, &events.NodeRegistered{Address: "10.0.0.9", MilliCPU: 1000, Memory: 1 << 30, MaxPods: 10}))
		appendRefused(t, nodeA, newEvent(t, "", nodeRef, &events.NodeUncordoned{}))
		appendRefused(t, nodeA, newEvent(t, "", events.ObjectRef{Kind: events.KindNode, Name: "b"}, &events.NodeRegistered{}))
		nodeA.refused(t, "$JS.API.STREAM.UPDATE.SKIFF", streamUpdate(nodeA))
		nodeA.refused(t, "$O.skiff-images.", imagePut(nodeA))
		must(t, "node a reads its own bindings", readOne(nodeA, events.NodeWorkFilter("a")))
		nodeA.refused(t, "$JS.API.CONSUMER.CREATE.SKIFF.", readOne(nodeA, events.NodeWorkFilter("b")))
		nodeA.refused(t, "$JS.API.CONSUMER.CREATE.SKIFF.", readOne(nodeA, events.KindFilter(events.KindPod)))
	})
	t.Run("user", func(t *testing.T) {
		must(t, "alice's command on skiff.cmd.apply.alice", commandSeen(alice, "skiff.cmd.apply.alice"))
		alice.refused(t, "skiff.cmd.apply.admin", commandSeen(alice, "skiff.cmd.apply.admin"))
		alice.refused(t, "$JS.API.STREAM.UPDATE.SKIFF", streamUpdate(alice))
		must(t, "alice imports an image", imagePut(alice))
		appendRefused(t, alice, podCreated(t, "p9"))
		appendRefused(t, alice, newEvent(t, "", events.TermRef, &events.LeaderElected{Replica: "alice", Term: 9}))
	})
	t.Run("admin", func(t *testing.T) {
		must(t, "admin updates the stream", streamUpdate(admin))
		s, err := admin.js.Stream(ctx, store.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		if d := s.CachedInfo().Config.Description; !strings.HasPrefix(d, "changed by") {
			t.Errorf("description after admin's update: %q", d)
		}
	})
}
