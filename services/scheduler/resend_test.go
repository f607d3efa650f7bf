package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

// copyOf is one copy of a command in flight, on an inbox of its own.
type copyOf struct {
	sub *nats.Subscription
}

// sendCopy sends one copy of a command the way a resending client does (acknowledgement asked,
// request id, its own inbox) without waiting for the answer, so several copies can be in flight
// at once.
func sendCopy(t *testing.T, nc *nats.Conn, subject, id string, req any) copyOf {
	t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	msg := nats.NewMsg(subject)
	msg.Reply, msg.Data = inbox, data
	msg.Header.Set(api.HeaderAck, api.AckRequested)
	msg.Header.Set(api.HeaderRequestID, id)
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	return copyOf{sub}
}

// answer is the copy's answer, and whether an acknowledgement came before it.
func (c copyOf) answer(t *testing.T) (acked bool, resp api.Response) {
	t.Helper()
	for {
		m, err := c.sub.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("no answer on %s: %v", c.sub.Subject, err)
		}
		if len(m.Data) == 0 && m.Header.Get(api.HeaderAck) == api.AckAccepted {
			acked = true
			continue
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			t.Fatalf("answer %q: %v", m.Data, err)
		}
		return acked, resp
	}
}

func countTypes(t *testing.T, st *store.Store, subject string) map[string]int {
	t.Helper()
	evs, err := st.History(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, ev := range evs {
		n[ev.Type]++
	}
	return n
}

// A command resent because its acknowledgement was lost (the replica took it, the client did
// not hear): every copy, at once or later, gets the first copy's answer, and the log holds its
// events once. A new request id is a new command; a reused id with other content too.
func TestResentCommandIsCarriedOutOnce(t *testing.T) {
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	start(t, srv.URL(), "a")
	applySubject := api.CommandSubject(api.SubjectApply, "test")
	web := func(replicas int) api.ApplyRequest {
		return api.ApplyRequest{Documents: []api.Document{{Source: "test", Object: json.RawMessage(fmt.Sprintf(deployment, "web", replicas))}}}
	}
	expect := func(c copyOf, action string) api.Response {
		t.Helper()
		acked, resp := c.answer(t)
		if !acked {
			t.Errorf("%s: no acknowledgement before the answer", action)
		}
		if resp.Error != nil || len(resp.Results) != 1 || resp.Results[0].Action != action {
			t.Fatalf("answer %+v (%v), want %s", resp.Results, resp.Error, action)
		}
		return resp
	}

	// Two copies in flight together, then a third after both were answered.
	c1, c2 := sendCopy(t, nc, applySubject, "A", web(2)), sendCopy(t, nc, applySubject, "A", web(2))
	first := expect(c1, "created")
	if got := expect(c2, "created"); got.Results[0].Seq != first.Results[0].Seq {
		t.Errorf("concurrent copy: seq %d, want the first's %d", got.Results[0].Seq, first.Results[0].Seq)
	}
	if got := expect(sendCopy(t, nc, applySubject, "A", web(2)), "created"); got.Results[0].Seq != first.Results[0].Seq {
		t.Errorf("later copy: seq %d, want the first's %d", got.Results[0].Seq, first.Results[0].Seq)
	}
	expect(sendCopy(t, nc, applySubject, "B", web(2)), "unchanged")
	expect(sendCopy(t, nc, applySubject, "A", web(3)), "configured")

	deleteSubject := api.CommandSubject(api.SubjectDelete, "test")
	del := api.DeleteRequest{Kind: "Deployment", Namespace: "default", Name: "web"}
	expect(sendCopy(t, nc, deleteSubject, "C", del), "deleted")
	expect(sendCopy(t, nc, deleteSubject, "C", del), "deleted")

	got := countTypes(t, st, events.ObjectSubject(events.KindDeployment, "default", "web"))
	if got["DeploymentApplied"] != 2 || got["DeploymentDeleted"] != 1 {
		t.Errorf("events on the Deployment's subject %v, want 2 DeploymentApplied (created, configured) and 1 DeploymentDeleted", got)
	}
}

// The scheduler's own responders behind a silent queue member (a replica cut off before the
// server notices): every get and apply through api.Client is answered.
func TestSchedulerAnswersPastASilentReplica(t *testing.T) {
	_, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	start(t, srv.URL(), "a")
	dead := eventstest.Connect(t, srv)
	var mu sync.Mutex
	lost := map[string]bool{}
	for _, subject := range []string{api.SubjectApply + ".*", api.SubjectGet} {
		if _, err := dead.QueueSubscribe(subject, api.QueueGroup, func(m *nats.Msg) {
			mu.Lock()
			lost[api.RequestID(m)] = true
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dead.Flush(); err != nil {
		t.Fatal(err)
	}
	c := api.Client{Conn: nc, AckTimeout: 100 * time.Millisecond}
	const n = 20
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var resp api.Response
		req := api.ApplyRequest{Documents: []api.Document{{Source: "test", Object: json.RawMessage(fmt.Sprintf(deployment, "web", 1))}}}
		if err := c.Call(ctx, api.CommandSubject(api.SubjectApply, "test"), req, &resp); err != nil || resp.Error != nil {
			t.Fatalf("apply %d: %v %v", i, err, resp.Error)
		}
		err := c.Get(ctx, api.GetRequest{Kind: "deployments", Table: true, MinSeq: resp.Seq}, func(ch *api.GetChunk) error {
			if len(ch.Rows) != 1 || ch.Rows[0][0] != "web" {
				return fmt.Errorf("rows %v, want web's", ch.Rows)
			}
			return nil
		})
		cancel()
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d of %d requests needed a resend", len(lost), 2*n)
	if len(lost) == 0 {
		t.Errorf("no request reached the silent member: the test proves nothing")
	}
}
