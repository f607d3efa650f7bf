package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
	"skiff.dev/services/scheduler"
)

// gate stands in for SIGSTOP of one part of a replica: while frozen, whatever passes through
// it waits.
type gate struct {
	mu      sync.Mutex
	frozen  chan struct{} // nil while running; closed at the thaw
	blocked chan string   // what was held
}

func newGate() *gate { return &gate{blocked: make(chan string, 1000)} }

func (g *gate) freeze() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.frozen = make(chan struct{})
}

func (g *gate) thaw() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.frozen != nil {
		close(g.frozen)
		g.frozen = nil
	}
}

// pass waits while the gate is frozen and reports whether it had to.
func (g *gate) pass(what string) bool {
	g.mu.Lock()
	f := g.frozen
	g.mu.Unlock()
	if f == nil {
		return false
	}
	select {
	case g.blocked <- what:
	default:
	}
	<-f
	return true
}

// frozenKV holds the leader's renewals at its gate, ignoring their deadline as a stopped
// process does: the leader neither renews nor notices it could not.
type frozenKV struct {
	jetstream.KeyValue
	g *gate
}

func (k frozenKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	k.g.pass("renew")
	return k.KeyValue.Update(ctx, key, value, rev)
}

// frozenLog holds a loop's writes at the gate and counts what became of those it held.
type frozenLog struct {
	loop string
	next scheduler.Appender
	g    *gate
	held *heldWrites
}

type heldWrites struct {
	mu     sync.Mutex
	fenced int // refused by the log: a newer term began
	landed int
	// cancelled were not sent: the first refusal ended the term, and with it the context of
	// every loop's writes still on their way (which loop gets to the log first is a race).
	cancelled, failed int
	loops             map[string]int
}

func (l frozenLog) AppendAll(ctx context.Context, ws []store.Write) []error {
	held := l.g.pass(l.loop)
	errs := l.next.AppendAll(ctx, ws)
	if held {
		l.held.mu.Lock()
		defer l.held.mu.Unlock()
		l.held.loops[l.loop] += len(ws)
		for _, err := range errs {
			switch {
			case err == nil:
				l.held.landed++
			case errors.Is(err, events.ErrFenced):
				l.held.fenced++
			case errors.Is(err, context.Canceled):
				l.held.cancelled++
			default:
				l.held.failed++
			}
		}
	}
	return errs
}

// lastTerm polls the log's newest term.
func lastTerm(t *testing.T, st *store.Store) store.Term {
	t.Helper()
	term, err := st.LastTerm(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return term
}

func boundPods(t *testing.T, nc *nats.Conn, app string) int {
	t.Helper()
	got, err := rows(t, nc, api.GetRequest{Kind: "pods", Selector: map[string]string{"app": app}})
	if err != nil {
		return -1
	}
	for _, r := range got {
		if r[len(r)-1] != "n1" {
			return -1
		}
	}
	return len(got)
}

var lostLine = regexp.MustCompile(`lost leadership: (\d+) writes rejected by a newer term \(term (\d+), now (\d+)\)`)

// Scenario 2 of the faults, in process: the leader stops (its renewals and its loops' writes
// held, as SIGSTOP would), its key expires, the standby begins a newer term and does the work;
// then the old leader resumes with a pass it decided before: every write of it is refused by
// the log, counted in one line, the old leader steps down, and the Deployment ends with exactly
// its replicas.
func TestStaleLeaderIsFenced(t *testing.T) {
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	renewals, writes := newGate(), newGate()
	held := &heldWrites{loops: map[string]int{}}
	var aLog eventstest.Buffer
	aConn, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfgA := scheduler.WithHooks(scheduler.Config{Conn: aConn, ID: "a", Logger: slog.New(slog.NewTextHandler(&aLog, nil))},
		func(kv jetstream.KeyValue) jetstream.KeyValue { return frozenKV{kv, renewals} },
		func(loop string, l scheduler.Appender) scheduler.Appender {
			return frozenLog{loop: loop, next: l, g: writes, held: held}
		})
	startConfig(t, cfgA)
	// Before a is stopped (cleanups run last first), even when the test failed frozen.
	t.Cleanup(func() { writes.thaw(); renewals.thaw() })
	eventstest.Eventually(t, eventstest.Timeout, "a leads", func() bool { return lastTerm(t, st).Replica == "a" })
	termA := lastTerm(t, st)
	registerNode(t, st, "n1")
	if r := apply(t, nc, fmt.Sprintf(deployment, "web", 3)); r.Error != nil {
		t.Fatal(r.Error)
	}
	eventstest.Eventually(t, eventstest.Timeout, "a binds three pods and records the rollout", func() bool {
		if boundPods(t, nc, "web") != 3 {
			return false
		}
		evs, err := st.History(context.Background(), events.ObjectSubject(events.KindDeployment, "default", "web"))
		if err != nil || len(evs) == 0 {
			return false
		}
		p, ok := evs[len(evs)-1].Data.(*events.DeploymentRolloutProgressed)
		return ok && p.Status.Replicas == 3
	})
	start(t, srv.URL(), "b")

	// a stops. A scale-up arrives: a's deployments controller decides from its view and is
	// held before its writes reach the log.
	renewals.freeze()
	writes.freeze()
	if r := apply(t, nc, fmt.Sprintf(deployment, "web", 5)); r.Error != nil {
		t.Fatal(r.Error)
	}
	deadline := time.After(20 * time.Second)
	for held := ""; held != "deployments"; {
		select {
		case held = <-writes.blocked:
		case <-deadline:
			t.Fatal("a's deployments controller did not try to write the scale-up")
		}
	}
	// a's key expires; b begins a newer term and scales up itself.
	eventstest.Eventually(t, eventstest.Timeout, "b begins a newer term", func() bool { return lastTerm(t, st).Replica == "b" })
	termB := lastTerm(t, st)
	if termB.Number != termA.Number+1 {
		t.Fatalf("b's term = %+v after a's %+v", termB, termA)
	}
	eventstest.Eventually(t, eventstest.Timeout, "b binds five pods", func() bool { return boundPods(t, nc, "web") == 5 })

	// a resumes: its held pass goes to the log and is refused, and a steps down.
	writes.thaw()
	var m []string
	eventstest.Eventually(t, eventstest.Timeout, "a says it lost leadership", func() bool {
		m = lostLine.FindStringSubmatch(aLog.String())
		return m != nil
	})
	renewals.thaw()
	n, _ := strconv.Atoi(m[1])
	held.mu.Lock()
	fencedHeld, landedHeld, cancelledHeld, failedHeld, loops := held.fenced, held.landed, held.cancelled, held.failed, fmt.Sprint(held.loops)
	held.mu.Unlock()
	t.Logf("a's line: %q; writes held while frozen, by loop: %s", m[0], loops)
	if m[2] != strconv.FormatUint(termA.Number, 10) || m[3] != strconv.FormatUint(termB.Number, 10) {
		t.Errorf("line names terms %s and %s, want %d and %d", m[2], m[3], termA.Number, termB.Number)
	}
	// The held writes are the scale-up's pass (two pods and the rollout's progress) and
	// perhaps the scheduling loop's for b's pods: the first to reach the log is refused, and
	// the term's end cancels the rest.
	if n < 1 || n != fencedHeld || landedHeld != 0 || failedHeld != 0 {
		t.Errorf("line counts %d rejected writes; of the held writes %d were fenced, %d landed, %d cancelled, %d failed otherwise: "+
			"want the line's count fenced (at least one), the rest cancelled, none landed", n, fencedHeld, landedHeld, cancelledHeld, failedHeld)
	}
	eventstest.Eventually(t, eventstest.Timeout, "a's loops stop", func() bool {
		return bytes.Contains([]byte(aLog.String()), []byte(`msg="control loops stopped" replica=a term=1`))
	})

	// Nothing a decided after b's term began is in the log, and the Deployment has exactly
	// five pods.
	var created int
	err = st.Read(context.Background(), store.ReadOptions{}, func(ev *events.Event) error {
		if ev.Seq > termB.Seq && ev.Actor == "scheduler/a" {
			t.Errorf("a wrote %s on %s at %d, after b's term began at %d", ev.Type, ev.Subject, ev.Seq, termB.Seq)
		}
		if ev.Type == "PodCreated" {
			created++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if created != 5 || boundPods(t, nc, "web") != 5 {
		t.Fatalf("%d pods created, %d bound; want exactly 5", created, boundPods(t, nc, "web"))
	}
	if last := lastTerm(t, st); last != termB {
		t.Fatalf("last term = %+v, want b's %+v", last, termB)
	}
}
