package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
	"skiff.dev/services/scheduler"
)

const deployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"%s"},
 "spec":{"replicas":%d,"selector":{"matchLabels":{"app":"%[1]s"}},
  "template":{"metadata":{"labels":{"app":"%[1]s"}},"spec":{"containers":[{"name":"c","image":"skiff.dev/echo:v1"}]}}}}`

func apply(t testing.TB, nc *nats.Conn, doc string) *api.Response {
	t.Helper()
	return applyAs(t, nc, "test", "", doc)
}

// applyAs sends an apply as identity (the subject's last token), claiming actor in the request.
func applyAs(t testing.TB, nc *nats.Conn, identity, actor, doc string) *api.Response {
	t.Helper()
	var resp api.Response
	req := api.ApplyRequest{Documents: []api.Document{{Source: "test", Object: json.RawMessage(doc)}}, Actor: actor}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := api.Call(ctx, nc, api.CommandSubject(api.SubjectApply, identity), req, &resp); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return &resp
}

// rows runs `get KIND -o wide` against the replicas and returns the rows.
func rows(t *testing.T, nc *nats.Conn, req api.GetRequest) ([][]string, error) {
	t.Helper()
	req.Table, req.Wide = true, true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out [][]string
	err := api.Get(ctx, nc, req, func(c *api.GetChunk) error {
		out = append(out, c.Rows...)
		return nil
	})
	return out, err
}

func registerNode(t testing.TB, st *store.Store, name string) {
	t.Helper()
	ev, err := events.New(time.Now(), events.Meta{Actor: "node/" + name}, events.ObjectRef{Kind: events.KindNode, Name: name}, "",
		&events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), ev, 0); err != nil {
		t.Fatal(err)
	}
}

func start(t testing.TB, url, id string) context.CancelFunc {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	return startConfig(t, scheduler.Config{Conn: nc, ID: id})
}

// startConfig runs a replica with cfg until the test ends or the returned stop is called, which
// closes cfg.Conn.
func startConfig(t testing.TB, cfg scheduler.Config) context.CancelFunc {
	t.Helper()
	nc, id := cfg.Conn, cfg.ID
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	go func() {
		done <- scheduler.Run(ctx, cfg)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("replica %s did not start: %v", id, err)
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s: %v", id, err)
		}
		nc.Close()
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return stop
}

// The service as a whole: commands are admitted, the control loops turn a Deployment into pods
// bound to a node, queries answer from the projection at least at the sequence asked for, and a
// rejected command writes nothing.
func TestSchedulerService(t *testing.T) {
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	start(t, srv.URL(), "a")
	registerNode(t, st, "n1")

	resp := apply(t, nc, fmt.Sprintf(deployment, "web", 2))
	if resp.Error != nil || len(resp.Results) != 1 || resp.Results[0].String() != "deployment.apps/web created" {
		t.Fatalf("apply = %+v, %v", resp.Results, resp.Error)
	}
	if again := apply(t, nc, fmt.Sprintf(deployment, "web", 2)); again.Error != nil || again.Results[0].Action != "unchanged" {
		t.Fatalf("second apply = %+v, %v", again.Results, again.Error)
	}
	// A get at the apply's sequence sees the Deployment at once.
	got, err := rows(t, nc, api.GetRequest{Kind: "deployments", MinSeq: resp.Seq})
	if err != nil || len(got) != 1 || got[0][0] != "web" {
		t.Fatalf("get deployments at seq %d = %v, %v", resp.Seq, got, err)
	}
	eventstest.Eventually(t, eventstest.Timeout, "two pods bound to n1", func() bool {
		got, err := rows(t, nc, api.GetRequest{Kind: "pods"})
		if err != nil || len(got) != 2 {
			return false
		}
		for _, r := range got {
			if r[len(r)-1] != "n1" {
				return false
			}
		}
		return true
	})

	if _, err := rows(t, nc, api.GetRequest{Kind: "pods", Name: "nope"}); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("get a missing pod: %v, want NotFound", err)
	}
	if _, err := rows(t, nc, api.GetRequest{Kind: "gizmos"}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("get an unknown kind: %v, want InvalidArgument", err)
	}

	// A request that is not JSON gets an answer that says so.
	msg, err := nc.Request(api.CommandSubject(api.SubjectScale, "test"), []byte("{nope"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var garbled api.Response
	if err := json.Unmarshal(msg.Data, &garbled); err != nil || garbled.Error == nil || garbled.Error.Code != "InvalidArgument" {
		t.Fatalf("malformed request answered %s", msg.Data)
	}

	head, _ := st.Head(context.Background())
	bad := apply(t, nc, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"Bad_Name"},"spec":{"replicas":"three"}}`)
	if bad.Error == nil || bad.Error.Code != "InvalidArgument" || len(bad.Error.Causes) < 2 {
		t.Fatalf("a bad manifest: %+v", bad.Error)
	}
	if after, _ := st.Head(context.Background()); after != head {
		// Controllers may still be writing status; only admission's writes would be Deployment
		// events named Bad_Name, which cannot exist since the name is not a valid subject token.
		evs, _ := st.History(context.Background(), events.ObjectSubject(events.KindDeployment, "default", "Bad_Name"))
		if len(evs) != 0 {
			t.Fatalf("a rejected command wrote %d events", len(evs))
		}
	}
}

// The actor recorded is the identity the subject names (the server lets each user send only on
// its own), whatever the request claims; a command or query whose reply subject points into the
// log is dropped unanswered, so nothing lands there.
func TestActorIsTheSubjectsIdentityAndRepliesGoOnlyToInboxes(t *testing.T) {
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	start(t, srv.URL(), "a")
	ctx := context.Background()

	resp := applyAs(t, nc, "mallory", "user/admin", fmt.Sprintf(deployment, "forged", 0))
	if resp.Error != nil {
		t.Fatalf("apply: %v", resp.Error)
	}
	evs, err := st.History(ctx, events.ObjectSubject(events.KindDeployment, "default", "forged"))
	if err != nil || len(evs) == 0 || evs[0].Type != "DeploymentApplied" {
		t.Fatalf("history of deployment forged: %d events, %v", len(evs), err)
	}
	if evs[0].Actor != "user/mallory" {
		t.Fatalf("actor = %q, want user/mallory (the request claimed user/admin)", evs[0].Actor)
	}

	head, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	into := events.ObjectSubject(events.KindPod, "default", "planted")
	req, _ := json.Marshal(api.ApplyRequest{Documents: []api.Document{{Source: "test", Object: json.RawMessage(fmt.Sprintf(deployment, "other", 0))}}})
	if err := nc.PublishRequest(api.CommandSubject(api.SubjectApply, "mallory"), into, req); err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(api.SubjectGet, into, []byte(`{"kind":"pods"}`)); err != nil {
		t.Fatal(err)
	}
	// A command after those, from the same connection, is handled after them: once it is
	// answered, the two have been seen and dropped.
	if r := apply(t, nc, fmt.Sprintf(deployment, "after", 0)); r.Error != nil {
		t.Fatal(r.Error)
	}
	if n, _ := st.LastSeq(ctx, into); n != 0 {
		t.Fatalf("an answer landed in the log at %s (seq %d)", into, n)
	}
	if evs, _ := st.History(ctx, events.ObjectSubject(events.KindDeployment, "default", "other")); len(evs) != 0 {
		t.Fatalf("the command with a non-inbox reply was carried out: %d events", len(evs))
	}
	if after, _ := st.Head(ctx); after <= head {
		t.Fatalf("head %d after %d: the last apply wrote nothing", after, head)
	}
}

// Two replicas: both answer, one leads; when the leader dies the standby takes over the control
// loops and a new Deployment still gets its pods.
func TestStandbyTakesOver(t *testing.T) {
	st, nc, srv := eventstest.NewStoreConfig(t, bootstrap.Config{LeaderTTL: time.Second})
	stopA := start(t, srv.URL(), "a")
	registerNode(t, st, "n1")
	if r := apply(t, nc, fmt.Sprintf(deployment, "one", 1)); r.Error != nil {
		t.Fatal(r.Error)
	}
	eventstest.Eventually(t, eventstest.Timeout, "first pod bound", func() bool {
		got, err := rows(t, nc, api.GetRequest{Kind: "pods"})
		return err == nil && len(got) == 1 && got[0][len(got[0])-1] == "n1"
	})
	start(t, srv.URL(), "b")
	stopA()
	began := time.Now()
	if r := apply(t, nc, fmt.Sprintf(deployment, "two", 1)); r.Error != nil {
		t.Fatal(r.Error)
	}
	eventstest.Eventually(t, eventstest.Timeout, "the standby schedules a new Deployment's pod", func() bool {
		got, err := rows(t, nc, api.GetRequest{Kind: "pods", Selector: map[string]string{"app": "two"}})
		return err == nil && len(got) == 1 && got[0][len(got[0])-1] == "n1"
	})
	t.Logf("standby scheduled a new pod %v after the leader stopped", time.Since(began).Round(time.Millisecond))
}
