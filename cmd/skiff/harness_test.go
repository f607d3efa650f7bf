package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/table"
)

// t0 is when the test cluster's log begins; now is the CLI's clock in every test.
var (
	t0  = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now = t0.Add(time.Hour)
)

// cluster is a real embedded JetStream log that tests append events to, and the environment the
// CLI runs in against it.
type cluster struct {
	t    testing.TB
	st   *store.Store
	nc   *nats.Conn
	url  string
	fold *state.State // what the test appended, for the expected sequences of its appends
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	st, nc, srv := eventstest.NewStore(t)
	return &cluster{t: t, st: st, nc: nc, url: srv.URL(), fold: state.New()}
}

// append writes one event at t0+at, conditionally, as every writer does.
func (c *cluster) append(at time.Duration, actor string, ref events.ObjectRef, node string, p events.Payload) uint64 {
	c.t.Helper()
	ev, err := events.New(t0.Add(at), events.Meta{Actor: actor}, ref, node, p)
	if err != nil {
		c.t.Fatalf("new %T: %v", p, err)
	}
	seq, err := c.st.Append(context.Background(), ev, c.fold.SubjectSeq(ev.Subject))
	if err != nil {
		c.t.Fatalf("append %s: %v", ev.Type, err)
	}
	if err := c.fold.Apply(ev); err != nil {
		c.t.Fatalf("the test's own event does not apply: %v", err)
	}
	return seq
}

// result is what one CLI run left behind.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the CLI with args against the cluster and waits for it.
func (c *cluster) run(args ...string) result {
	c.t.Helper()
	return c.runStdin("", args...)
}

func (c *cluster) runStdin(stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, c.env(strings.NewReader(stdin), &out, &errb))
	return result{out.String(), errb.String(), code}
}

func (c *cluster) env(stdin *strings.Reader, out, errw interface{ Write([]byte) (int, error) }) Env {
	vars := map[string]string{"SKIFF_SERVER": c.url, "USER": "alice"}
	return Env{Stdin: stdin, Stdout: out, Stderr: errw, Now: func() time.Time { return now }, Getenv: func(k string) string { return vars[k] }}
}

// background runs the CLI until stop is called, for commands that follow the log.
type background struct {
	out, err eventstest.Buffer
	cancel   context.CancelFunc
	done     chan int
}

func (c *cluster) start(args ...string) *background {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan int, 1)}
	go func() { b.done <- run(ctx, args, c.env(strings.NewReader(""), &b.out, &b.err)) }()
	c.t.Cleanup(func() { b.cancel(); <-b.done })
	return b
}

// stop interrupts the command and returns its exit status.
func (b *background) stop(t testing.TB) int {
	t.Helper()
	b.cancel()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not stop within 10s of its interruption")
	}
	return -1
}

// wait waits for the command to end by itself.
func (b *background) wait(t testing.TB) int {
	t.Helper()
	select {
	case code := <-b.done:
		b.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("the command did not end within 20s; stdout so far:\n%s\nstderr:\n%s", b.out.String(), b.err.String())
	}
	return -1
}

// waitFor polls the command's stdout until it contains want, or fails after a deadline.
func (b *background) waitFor(t testing.TB, want string) {
	t.Helper()
	err := eventstest.Poll(15*time.Second, func() error {
		if strings.Contains(b.out.String(), want) {
			return nil
		}
		select {
		case code := <-b.done:
			b.done <- code
			t.Fatalf("the command ended (status %d) before printing %q; stdout:\n%s\nstderr:\n%s", code, want, b.out.String(), b.err.String())
		default:
		}
		return errors.New("not printed")
	})
	if err != nil {
		t.Fatalf("stdout never contained %q; stdout:\n%s\nstderr:\n%s", want, b.out.String(), b.err.String())
	}
}

// fakeScheduler stands in for the scheduler's request handlers, which live in another module's
// internal packages. Queries are answered from a real projection of the test's log with the
// shared table package, as the scheduler does; commands are recorded and answered with canned
// responses, since what admission decides is not the CLI's to test.
type fakeScheduler struct {
	proj *live.Projection

	mu       sync.Mutex
	requests map[string][]json.RawMessage
	answers  map[string]api.Response
	queries  []api.GetRequest
	// unavailable is how many of the next queries fail as a lagging scheduler's do.
	unavailable int
}

func (c *cluster) startScheduler() *fakeScheduler {
	c.t.Helper()
	return newFakeScheduler(c.t, c.nc, eventstest.Follow(c.t, c.st))
}

// newFakeScheduler answers from a projection the caller fills (benchmarks).
func newFakeScheduler(t testing.TB, nc *nats.Conn, proj *live.Projection) *fakeScheduler {
	f := &fakeScheduler{proj: proj, requests: map[string][]json.RawMessage{}, answers: map[string]api.Response{}}
	f.serve(t, nc)
	return f
}

func (f *fakeScheduler) serve(t testing.TB, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.QueueSubscribe(api.SubjectGet, api.QueueGroup, func(m *nats.Msg) { f.query(nc, m) })
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := nc.QueueSubscribe("skiff.cmd.*.*", api.QueueGroup, func(m *nats.Msg) {
		// As the scheduler does: the subject's last token is the sender, recorded as the actor.
		subject := m.Subject[:strings.LastIndexByte(m.Subject, '.')]
		var req map[string]any
		data := m.Data
		if json.Unmarshal(m.Data, &req) == nil {
			req["actor"] = api.CommandActor(m.Subject)
			data, _ = json.Marshal(req)
		}
		f.mu.Lock()
		f.requests[subject] = append(f.requests[subject], json.RawMessage(data))
		resp := f.answers[subject]
		f.mu.Unlock()
		_ = api.Reply(m, resp)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe(); _ = cmds.Unsubscribe() })
}

func (f *fakeScheduler) answer(subject string, resp api.Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[subject] = resp
}

// sent returns the requests received on subject, decoded into T.
func sent[T any](t *testing.T, f *fakeScheduler, subject string) []T {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []T
	for _, raw := range f.requests[subject] {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("request on %s does not decode: %v", subject, err)
		}
		out = append(out, v)
	}
	return out
}

func (f *fakeScheduler) query(nc *nats.Conn, m *nats.Msg) {
	var req api.GetRequest
	_ = json.Unmarshal(m.Data, &req)
	f.mu.Lock()
	f.queries = append(f.queries, req)
	fail := f.unavailable > 0
	if fail {
		f.unavailable--
	}
	f.mu.Unlock()
	if fail {
		_ = api.NewChunkWriter(nc, m, 0).Fail(fmt.Errorf("this scheduler has not yet seen sequence %d: %w", req.MinSeq, events.ErrUnavailable))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.proj.WaitSeq(ctx, req.MinSeq); err != nil {
		_ = api.NewChunkWriter(nc, m, 0).Fail(fmt.Errorf("not at %d: %w", req.MinSeq, events.ErrUnavailable))
		return
	}
	opts := table.Options{Namespace: req.Namespace, AllNamespaces: req.AllNamespaces, Name: req.Name, Selector: req.Selector, Wide: req.Wide}
	var (
		rows  [][]string
		items []json.RawMessage
		seq   uint64
	)
	f.proj.View(func(st *state.State) {
		seq = st.Seq
		if req.Table {
			rows = table.Rows(st, req.Kind, opts, now)
			return
		}
		items = objects(st, req.Kind, opts)
	})
	w := api.NewChunkWriter(nc, m, seq)
	if req.Name != "" && len(rows) == 0 && len(items) == 0 {
		_ = w.Fail(fmt.Errorf("%s %q not found: %w", req.Kind, req.Name, events.ErrNotFound))
		return
	}
	if req.Table {
		w.Columns(table.Columns(req.Kind, req.Wide, req.AllNamespaces))
	}
	for _, r := range rows {
		_ = w.Row(r)
	}
	for _, it := range items {
		_ = w.Item(it)
	}
	_ = w.Close()
}

// objects selects objects the way the scheduler's query handler does: the rows say which, in
// which order.
func objects(st *state.State, kind string, opts table.Options) []json.RawMessage {
	res, _ := table.Lookup(kind)
	var out []json.RawMessage
	add := func(v any) {
		b, _ := json.Marshal(v)
		out = append(out, b)
	}
	for _, r := range table.Rows(st, kind, opts, now) {
		ns, name := opts.Namespace, r[0]
		if ns == "" {
			ns = state.DefaultNamespace
		}
		if opts.AllNamespaces && res.Namespaced {
			ns, name = r[0], r[1]
		}
		k := state.Key{Namespace: ns, Name: name}
		switch kind {
		case table.Pods:
			add(&st.Pods[k].Pod)
		case table.Deployments:
			add(&st.Deployments[k].Deployment)
		case table.Services:
			add(&st.Services[k].Service)
		case table.Endpoints:
			add(st.Endpoints[k])
		case table.Nodes:
			add(&st.Nodes[name].Node)
		case table.Namespaces:
			add(st.Namespaces[name])
		}
	}
	return out
}

// waitSeq waits until the fake scheduler's projection has applied seq.
func (f *fakeScheduler) waitSeq(t testing.TB, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.proj.WaitSeq(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// lines splits output into lines without the trailing empty one.
func lines(s string) []string {
	return slices.DeleteFunc(strings.Split(s, "\n"), func(l string) bool { return l == "" })
}

var _ = errors.New

// cliCase is one command line and all it must print: stdout as its golden file in testdata
// (none: stdout empty), stderr and the exit status exactly.
type cliCase struct {
	name       string
	args       []string
	golden     string
	wantStderr string
	wantCode   int
}

// check runs each case as a subtest against the cluster.
func (c *cluster) check(t *testing.T, tests []cliCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", r.code, r.stderr, tt.wantCode, tt.wantStderr)
			}
			if tt.golden != "" {
				eventstest.Golden(t, "testdata/"+tt.golden, r.stdout)
			} else if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}
