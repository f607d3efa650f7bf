package leader

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clocktesting "k8s.io/utils/clock/testing"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/natsserver"
)

// testTTL keeps the takeover tests short; the arithmetic is the same as with DefaultTTL.
const testTTL = time.Second

// election watches a set of candidates: who leads, and whether two ever lead at once.
type election struct {
	t       *testing.T
	mu      sync.Mutex
	leaders map[string]bool
	began   map[string]time.Time
	overlap atomic.Bool
	changed chan struct{}
}

func newElection(t *testing.T) *election {
	return &election{t: t, leaders: map[string]bool{}, began: map[string]time.Time{}, changed: make(chan struct{}, 64)}
}

func (e *election) onLead(id string) func(context.Context) {
	return func(ctx context.Context) {
		e.mu.Lock()
		e.leaders[id] = true
		e.began[id] = time.Now()
		if len(e.leaders) > 1 {
			e.overlap.Store(true)
		}
		e.mu.Unlock()
		e.changed <- struct{}{}
		<-ctx.Done()
		e.mu.Lock()
		delete(e.leaders, id)
		e.mu.Unlock()
		e.changed <- struct{}{}
	}
}

func (e *election) beganAt(id string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.began[id]
}

func (e *election) current() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for id := range e.leaders {
		out = append(out, id)
	}
	return out
}

// waitLeader waits until exactly one candidate other than not leads, and returns it.
func (e *election) waitLeader(not string, within time.Duration) string {
	e.t.Helper()
	deadline := time.After(within)
	for {
		if l := e.current(); len(l) == 1 && l[0] != not {
			return l[0]
		}
		select {
		case <-e.changed:
		case <-deadline:
			e.t.Fatalf("no single new leader within %v; leading: %v", within, e.current())
		}
	}
}

// candidate runs one Run on its own connection; stop cancels it, crash closes the connection.
type testCandidate struct {
	id    string
	nc    *nats.Conn
	stop  context.CancelFunc
	done  chan error
	crash func()
}

func startCandidate(t *testing.T, srv *natsserver.Server, id string, e *election) *testCandidate {
	t.Helper()
	return startCandidateTTL(t, srv, id, e, testTTL)
}

func startCandidateTTL(t *testing.T, srv *natsserver.Server, id string, e *election, ttl time.Duration) *testCandidate {
	t.Helper()
	nc := eventstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{
		Bucket: api.LeaderBucket, History: 1, TTL: ttl, LimitMarkerTTL: ttl, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &testCandidate{id: id, nc: nc, stop: cancel, done: make(chan error, 1), crash: nc.Close}
	go func() { c.done <- Run(ctx, kv, id, Config{Logger: eventstest.Logger(t)}, e.onLead(id)) }()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

func TestOneLeaderAmongTwo(t *testing.T) {
	srv := eventstest.NewServer(t)
	e := newElection(t)
	startCandidate(t, srv, "a", e)
	startCandidate(t, srv, "b", e)
	first := e.waitLeader("", 5*testTTL)
	// Several renewal periods pass: the leader keeps the key and nobody else gets it.
	deadline := time.Now().Add(3 * testTTL)
	for time.Now().Before(deadline) {
		select {
		case <-e.changed:
		case <-time.After(time.Until(deadline)):
		}
	}
	if l := e.current(); len(l) != 1 || l[0] != first {
		t.Fatalf("leaders after 3 TTLs = %v, want only %s", l, first)
	}
	if e.overlap.Load() {
		t.Fatal("two candidates led at once")
	}
}

func TestStandbyTakesOverWhenLeaderDies(t *testing.T) {
	testTakeover(t, testTTL)
}

// TestTakeoverWithDefaultTTL measures the production setting; it takes about 12 s, so it runs
// only with SKIFF_SLOW_TESTS=1.
func TestTakeoverWithDefaultTTL(t *testing.T) {
	if os.Getenv("SKIFF_SLOW_TESTS") == "" {
		t.Skip("set SKIFF_SLOW_TESTS=1 to measure takeover with the default TTL")
	}
	testTakeover(t, DefaultTTL)
}

func testTakeover(t *testing.T, ttl time.Duration) {
	srv := eventstest.NewServer(t)
	e := newElection(t)
	cands := map[string]*testCandidate{}
	cands["a"] = startCandidateTTL(t, srv, "a", e, ttl)
	cands["b"] = startCandidateTTL(t, srv, "b", e, ttl)
	first := e.waitLeader("", 5*ttl)

	// The leader's process dies: no more renewals, no resignation.
	killed := time.Now()
	cands[first].crash()
	second := e.waitLeader(first, 3*ttl)
	takeover := e.beganAt(second).Sub(killed)
	t.Logf("takeover after crash: %v (TTL %v)", takeover, ttl)
	// The key expires TTL after the last renewal, which was at most RenewInterval (TTL/3) before
	// the crash; the server's expiry timer adds up to about 250 ms (measured).
	lo, hi := ttl-ttl/3, ttl+500*time.Millisecond
	if takeover < lo || takeover > hi {
		t.Errorf("takeover took %v, want between %v and %v", takeover, lo, hi)
	}
	if e.overlap.Load() {
		t.Fatal("two candidates led at once")
	}
}

func TestCleanStopHandsOverAtOnce(t *testing.T) {
	srv := eventstest.NewServer(t)
	e := newElection(t)
	cands := map[string]*testCandidate{}
	cands["a"] = startCandidate(t, srv, "a", e)
	cands["b"] = startCandidate(t, srv, "b", e)
	first := e.waitLeader("", 5*testTTL)

	stopped := time.Now()
	cands[first].stop()
	if err := <-cands[first].done; err != nil {
		t.Fatalf("Run returned %v after its context ended, want nil", err)
	}
	cands[first].done <- nil // for cleanup
	second := e.waitLeader(first, testTTL)
	handover := e.beganAt(second).Sub(stopped)
	t.Logf("handover after clean stop: %v (TTL %v)", handover, testTTL)
	if handover > testTTL/3 {
		t.Errorf("handover took %v; resigning should let the standby in at once", handover)
	}
}

func TestLeaderStepsDownWhenKeyIsTaken(t *testing.T) {
	srv := eventstest.NewServer(t)
	e := newElection(t)
	startCandidate(t, srv, "a", e)
	e.waitLeader("", 5*testTTL)

	// Someone overwrites the key (an operator, or a split brain): the next renewal is rejected.
	nc := eventstest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), api.LeaderBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), Key, []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(testTTL)
	for len(e.current()) != 0 {
		select {
		case <-e.changed:
		case <-deadline:
			t.Fatalf("leader did not step down within a TTL after losing its key; leading: %v", e.current())
		}
	}
}

func TestRunRefusesBucketWithoutTTL(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	kv, err := st.JetStream().CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "no-ttl"})
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), kv, "a", Config{}, func(context.Context) { t.Error("led without a TTL") })
	if !errors.Is(err, events.ErrFailedPrecondition) {
		t.Fatalf("Run on a bucket without TTL = %v, want ErrFailedPrecondition", err)
	}
}

// lossyKV loses every update while lost is set, as when the servers cannot be reached.
type lossyKV struct {
	jetstream.KeyValue
	lost atomic.Bool
}

func (k *lossyKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	if k.lost.Load() {
		return 0, errors.New("injected: update lost")
	}
	return k.KeyValue.Update(ctx, key, value, revision)
}

// TestTermFollowsTheClock: the leader renews on its clock's ticks and ends its term when its
// clock passes the deadline with no renewal through, whatever the real time: here a fake
// clock is stepped while the key's TTL, a minute of real time, is far from expiring.
func TestTermFollowsTheClock(t *testing.T) {
	srv := eventstest.NewServer(t)
	nc := eventstest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	const ttl = time.Minute
	real, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{
		Bucket: api.LeaderBucket, History: 1, TTL: ttl, LimitMarkerTTL: ttl, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	kv := &lossyKV{KeyValue: real}
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newElection(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, kv, "a", Config{Clock: clk, RenewInterval: 20 * time.Second}, e.onLead("a")) }()
	t.Cleanup(func() { cancel(); <-done })

	revision := func() uint64 {
		e, err := real.Get(t.Context(), Key)
		if err != nil {
			return 0
		}
		return e.Revision()
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			clk.Step(0) // fires what is due, such as the first campaign's timer
			<-tick.C
		}
	}
	poll("a leads", func() bool { return len(e.current()) == 1 })
	first := revision()
	clk.Step(20 * time.Second)
	poll("a renewal on the clock's tick", func() bool { return revision() > first })

	// Renewals are lost from now on: the term ends when the clock passes the deadline, TTL less
	// a tenth after the last renewal sent.
	kv.lost.Store(true)
	clk.Step(20 * time.Second)
	if len(e.current()) != 1 {
		t.Fatal("the term ended before its deadline")
	}
	clk.Step(ttl)
	poll("the term to end", func() bool { return len(e.current()) == 0 })
}
