package api_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
)

// oldCall and oldGet are Call and Get as they were before acknowledgements (one request on the
// connection's shared reply subscription; one inbox of its own per query), kept to measure what
// the acknowledgement costs.
func oldCall(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	data, _ := json.Marshal(req)
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return err
	}
	return json.Unmarshal(msg.Data, resp)
}

func oldGet(ctx context.Context, nc *nats.Conn, req api.GetRequest, fn func(*api.GetChunk) error) error {
	data, _ := json.Marshal(req)
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.PublishRequest(api.SubjectGet, inbox, data); err != nil {
		return err
	}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return err
		}
		var c api.GetChunk
		if err := json.Unmarshal(msg.Data, &c); err != nil {
			return err
		}
		if err := fn(&c); err != nil || c.Last {
			return err
		}
	}
}

// A quiet local request, old path against acknowledged path, in one run: go test -bench Request
// -count 5 and compare medians. The responder is the scheduler's shape: Accept, then the answer
// (one Response, or one chunk through ChunkWriter).
func BenchmarkRequest(b *testing.B) {
	s := eventstest.NewServer(b)
	rnc := eventstest.Connect(b, s)
	for _, subject := range []string{cmdSubject, api.SubjectGet} {
		if _, err := rnc.QueueSubscribe(subject, api.QueueGroup, func(m *nats.Msg) {
			_ = api.Accept(m)
			if m.Subject == cmdSubject {
				_ = api.Reply(m, api.Response{Results: []api.Result{{Kind: "Deployment", Name: "web", Action: "unchanged"}}})
				return
			}
			w := api.NewChunkWriter(rnc, m, 1)
			w.Columns([]string{"NAME"})
			_ = w.Row([]string{"web"})
			_ = w.Close()
		}); err != nil {
			b.Fatal(err)
		}
	}
	if err := rnc.Flush(); err != nil {
		b.Fatal(err)
	}
	nc := eventstest.Connect(b, s)
	client := api.Client{Conn: nc}
	req := api.ApplyRequest{}
	noop := func(*api.GetChunk) error { return nil }
	shared := nc.NewInbox()
	sharedSub, err := nc.SubscribeSync(shared)
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"call/old", func(ctx context.Context) error { var r api.Response; return oldCall(ctx, nc, cmdSubject, req, &r) }},
		{"call/ack", func(ctx context.Context) error { var r api.Response; return client.Call(ctx, cmdSubject, req, &r) }},
		// The acknowledgement alone, without Client's inbox per request: one subscription for
		// the whole run, a header on the request, two replies instead of one.
		{"call/ack-shared-inbox", func(ctx context.Context) error {
			m := nats.NewMsg(cmdSubject)
			m.Reply, m.Data = shared, []byte("{}")
			m.Header.Set(api.HeaderAck, api.AckRequested)
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			for range 2 {
				if _, err := sharedSub.NextMsgWithContext(ctx); err != nil {
					return err
				}
			}
			return nil
		}},
		{"get/old", func(ctx context.Context) error { return oldGet(ctx, nc, api.GetRequest{Kind: "pods"}, noop) }},
		{"get/ack", func(ctx context.Context) error { return client.Get(ctx, api.GetRequest{Kind: "pods"}, noop) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for b.Loop() {
				if err := bm.do(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
