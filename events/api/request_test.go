package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
)

// The command subject the test replicas answer, as the scheduler answers skiff.cmd.apply.*.
var cmdSubject = api.CommandSubject(api.SubjectApply, "test")

// Test replica behaviours.
const (
	answer   = iota // acknowledge if asked, then answer: the scheduler
	oldNoAck        // answer without ever acknowledging: a scheduler from before acknowledgements
	silent          // take requests and never answer: a replica cut off before the server notices
	ackOnly         // acknowledge and never answer: a replica that took the request and then died
	hold            // hand every copy to the test, which answers (or not) when it likes
)

// replica is one member of the scheduler queue group, with its own connection.
type replica struct {
	name   string
	mode   int
	nc     *nats.Conn
	copies chan *nats.Msg // hold: every copy received

	mu  sync.Mutex
	got []*nats.Msg
}

func newReplica(t testing.TB, s interface{ ClientURL() string }, name string, mode int) *replica {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r := &replica{name: name, mode: mode, nc: nc, copies: make(chan *nats.Msg, 1000)}
	for _, subject := range []string{cmdSubject, api.SubjectGet} {
		if _, err := nc.QueueSubscribe(subject, api.QueueGroup, r.serve); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replica) serve(msg *nats.Msg) {
	r.mu.Lock()
	r.got = append(r.got, msg)
	r.mu.Unlock()
	if r.mode == answer || r.mode == ackOnly {
		if err := api.Accept(msg); err != nil {
			panic(err)
		}
	}
	switch r.mode {
	case answer, oldNoAck:
		r.answer(msg, "")
	case hold:
		r.copies <- msg
	}
}

// answer answers msg: a Response naming the replica, or a query answer in three chunks naming
// the replica and tag (which copy it answers).
func (r *replica) answer(msg *nats.Msg, tag string) {
	if msg.Subject == cmdSubject {
		_ = api.Reply(msg, api.Response{Results: []api.Result{{Kind: "Deployment", Name: r.name, Action: "created"}}})
		return
	}
	for i := range 3 {
		r.chunk(msg, fmt.Sprintf("%s%s-%d", r.name, tag, i), i == 2)
	}
}

func (r *replica) chunk(msg *nats.Msg, row string, last bool) {
	data, _ := json.Marshal(api.GetChunk{Rows: [][]string{{row}}, Last: last})
	if err := r.nc.Publish(msg.Reply, data); err != nil {
		panic(err)
	}
}

// requests is how many distinct requests (by request id) reached the replica, and how many
// copies.
func (r *replica) requests() (ids, copies int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, m := range r.got {
		seen[api.RequestID(m)] = true
	}
	return len(seen), len(r.got)
}

// takeCopies waits for n copies held by a hold replica.
func (r *replica) takeCopies(t *testing.T, n int) []*nats.Msg {
	t.Helper()
	var out []*nats.Msg
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case m := <-r.copies:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("%d copies reached %s within 10s, want %d", len(out), r.name, n)
		}
	}
	return out
}

func get(ctx context.Context, c api.Client) ([]string, error) {
	var rows []string
	err := c.Get(ctx, api.GetRequest{Kind: "pods"}, func(ch *api.GetChunk) error {
		for _, r := range ch.Rows {
			rows = append(rows, r[0])
		}
		return nil
	})
	return rows, err
}

func call(ctx context.Context, c api.Client) (string, error) {
	var resp api.Response
	if err := c.Call(ctx, cmdSubject, api.ApplyRequest{}, &resp); err != nil {
		return "", err
	}
	return resp.Results[0].Name, nil
}

// ackTimeout is short so the tests are quick; a local acknowledgement takes well under 1 ms.
const ackTimeout = 100 * time.Millisecond

// Issue 8, scenario 4: of two replicas in the queue group, one is cut off but still subscribed
// as far as the server knows. Every request still gets its answer, from the live one.
func TestRequestsGetPastASilentReplica(t *testing.T) {
	for _, tt := range []struct {
		name string
		do   func(context.Context, api.Client) error
	}{
		{"get", func(ctx context.Context, c api.Client) error {
			rows, err := get(ctx, c)
			if err == nil && !cmp.Equal(rows, []string{"live-0", "live-1", "live-2"}) {
				err = fmt.Errorf("rows %q, want live's three", rows)
			}
			return err
		}},
		{"call", func(ctx context.Context, c api.Client) error {
			name, err := call(ctx, c)
			if err == nil && name != "live" {
				err = fmt.Errorf("answer from %q, want live", name)
			}
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := eventstest.NewServer(t)
			newReplica(t, s, "live", answer)
			dead := newReplica(t, s, "dead", silent)
			c := api.Client{Conn: eventstest.Connect(t, s), AckTimeout: ackTimeout}
			const n = 50
			for i := range n {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := tt.do(ctx, c)
				cancel()
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			resent, lost := dead.requests()
			t.Logf("%d of %d requests needed a resend (%d copies lost to the silent replica)", resent, n, lost)
			// The server picks a queue member at random: 50 requests all missing it is 2^-50.
			if resent == 0 {
				t.Errorf("no request reached the silent replica: the test proves nothing")
			}
		})
	}
}

// A client that does not ask for acknowledgements (an old CLI) gets none from a new replica:
// its first message is the answer, as before.
func TestOldClientGetsNoAcknowledgement(t *testing.T) {
	s := eventstest.NewServer(t)
	newReplica(t, s, "new", answer)
	nc := eventstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	msg, err := nc.RequestWithContext(ctx, cmdSubject, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var resp api.Response
	if err := json.Unmarshal(msg.Data, &resp); err != nil || len(resp.Results) != 1 {
		t.Errorf("first message %q (headers %v): want the answer: %v", msg.Data, msg.Header, err)
	}

	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(api.SubjectGet, inbox, []byte(`{"kind":"pods"}`)); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for len(rows) < 3 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("after %d chunks: %v", len(rows), err)
		}
		var ch api.GetChunk
		if err := json.Unmarshal(m.Data, &ch); err != nil {
			t.Fatalf("message %q (headers %v) is no chunk: %v", m.Data, m.Header, err)
		}
		rows = append(rows, ch.Rows[0][0])
	}
	if diff := cmp.Diff([]string{"new-0", "new-1", "new-2"}, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// A new client and an old replica: a quick answer is simply the answer (one copy sent); a slow
// one gets more copies, and the answer to the first is still taken, because every earlier
// inbox stays open.
func TestNewClientWithOldReplica(t *testing.T) {
	t.Run("quick", func(t *testing.T) {
		s := eventstest.NewServer(t)
		old := newReplica(t, s, "old", oldNoAck)
		c := api.Client{Conn: eventstest.Connect(t, s)} // the default AckTimeout
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if name, err := call(ctx, c); err != nil || name != "old" {
			t.Fatalf("call: %q, %v", name, err)
		}
		if rows, err := get(ctx, c); err != nil || len(rows) != 3 {
			t.Fatalf("get: %q, %v", rows, err)
		}
		if _, copies := old.requests(); copies != 2 {
			t.Errorf("the old replica got %d copies of 2 requests, want 2", copies)
		}
	})
	t.Run("slow", func(t *testing.T) {
		s := eventstest.NewServer(t)
		old := newReplica(t, s, "old", hold)
		c := api.Client{Conn: eventstest.Connect(t, s), AckTimeout: ackTimeout}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			name, err := call(ctx, c)
			if err == nil && name != "old" {
				err = fmt.Errorf("answer from %q", name)
			}
			done <- err
		}()
		copies := old.takeCopies(t, 3)
		if api.RequestID(copies[0]) == "" || api.RequestID(copies[2]) != api.RequestID(copies[0]) {
			t.Errorf("request ids %q, %q: want one, the same on every copy", api.RequestID(copies[0]), api.RequestID(copies[2]))
		}
		if copies[0].Reply == copies[1].Reply {
			t.Errorf("two copies share the inbox %s", copies[0].Reply)
		}
		old.answer(copies[0], "")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// When two copies are answered (an old replica answering both), the chunks of one are read and
// never mixed with the other's: the first inbox to receive a chunk wins.
func TestAnswersOfTwoCopiesAreNotMixed(t *testing.T) {
	s := eventstest.NewServer(t)
	r := newReplica(t, s, "r", hold)
	c := api.Client{Conn: eventstest.Connect(t, s), AckTimeout: ackTimeout}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		rows []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		rows, err := get(ctx, c)
		done <- result{rows, err}
	}()
	copies := r.takeCopies(t, 2)
	r.chunk(copies[1], "second-0", false)
	r.chunk(copies[0], "first-0", false)
	r.chunk(copies[0], "first-1", true)
	r.chunk(copies[1], "second-1", true)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if diff := cmp.Diff([]string{"second-0", "second-1"}, res.rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// A request a replica acknowledged is not sent again, however long the answer takes.
func TestAcknowledgedRequestIsNotResent(t *testing.T) {
	s := eventstest.NewServer(t)
	r := newReplica(t, s, "r", ackOnly)
	c := api.Client{Conn: eventstest.Connect(t, s), AckTimeout: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := call(ctx, c)
		done <- err
	}()
	// An observation window, not synchronisation: 25 acknowledgement timeouts pass, during
	// which a client that ignored the acknowledgement would have sent 25 more copies.
	deadline := time.Now().Add(25 * 20 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, copies := r.requests(); copies > 1 {
			t.Fatalf("%d copies sent after an acknowledgement, want 1", copies)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	first := r.got[0]
	r.mu.Unlock()
	r.answer(first, "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// What a client hears when nobody answers: whether anyone took the request decides the advice.
func TestNoAnswer(t *testing.T) {
	for _, tt := range []struct {
		name     string
		replica  int // -1: none
		want     string
		taken    bool
		minSends int
	}{
		{"nobody subscribed", -1, "no scheduler is answering skiff.q.get: is skiff-scheduler (or skiff up) running?", false, 0},
		{"only a silent replica", silent, "no scheduler took skiff.q.get within", false, 5},
		{"taken, never answered", ackOnly, "the scheduler that took skiff.q.get did not answer within", true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := eventstest.NewServer(t)
			if tt.replica >= 0 {
				newReplica(t, s, "r", tt.replica)
			}
			c := api.Client{Conn: eventstest.Connect(t, s), AckTimeout: ackTimeout}
			ctx, cancel := context.WithTimeout(context.Background(), 10*ackTimeout)
			defer cancel()
			_, err := get(ctx, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, events.ErrUnavailable) {
				t.Fatalf("error %v, want one of class unavailable containing %q", err, tt.want)
			}
			var na *api.NoAnswerError
			if tt.replica < 0 {
				if errors.As(err, &na) {
					t.Errorf("a NoAnswerError (%v) for no responders", na)
				}
				return
			}
			if !errors.As(err, &na) {
				t.Fatalf("%T, want *api.NoAnswerError", err)
			}
			if na.Taken != tt.taken || na.Sends < tt.minSends || (tt.taken && na.Sends != 1) {
				t.Errorf("taken %v after %d sends, want taken %v after at least %d (exactly 1 once taken)",
					na.Taken, na.Sends, tt.taken, tt.minSends)
			}
			if !tt.taken && !strings.Contains(err.Error(), "is skiff-scheduler (or skiff up) running?") {
				t.Errorf("error %q does not ask whether the scheduler runs", err)
			}
		})
	}
}
