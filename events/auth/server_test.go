package auth_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/auth"
	"skiff.dev/events/eventstest"
)

// opServer is a real server in operator mode trusting keys, with the stream and buckets made
// by admin, as `skiff cluster bootstrap` makes them.
type opServer struct {
	t    *testing.T
	keys *auth.Keys
	url  string
	dir  string
}

func startOpServer(t *testing.T, keys *auth.Keys) *opServer {
	t.Helper()
	opJWT, err := keys.OperatorJWT()
	if err != nil {
		t.Fatal(err)
	}
	op, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	accJWT, err := keys.AccountJWT()
	if err != nil {
		t.Fatal(err)
	}
	sysJWT, err := keys.SystemAccountJWT()
	if err != nil {
		t.Fatal(err)
	}
	accPub, _ := keys.Account.PublicKey()
	sysPub, _ := keys.System.PublicKey()
	res := &server.MemAccResolver{}
	if err := res.Store(accPub, accJWT); err != nil {
		t.Fatal(err)
	}
	if err := res.Store(sysPub, sysJWT); err != nil {
		t.Fatal(err)
	}
	s := eventstest.NewServerOptions(t, &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		TrustedOperators: []*jwt.OperatorClaims{op}, SystemAccount: sysPub, AccountResolver: res,
	})
	return &opServer{t: t, keys: keys, url: s.URL(), dir: t.TempDir()}
}

// creds writes role's creds for name to a file and returns its path.
func (s *opServer) creds(role auth.Role, name string, expiry time.Duration) string {
	s.t.Helper()
	data, err := s.keys.UserCreds(role, name, expiry)
	if err != nil {
		s.t.Fatal(err)
	}
	return writeCreds(s.t, s.dir, data)
}

func writeCreds(t *testing.T, dir string, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "*.creds")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}

// client is one connection as a Skiff program makes it, recording the server's permission
// errors, which arrive asynchronously.
type client struct {
	t  *testing.T
	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	refused []string
}

func (s *opServer) connect(role auth.Role, name string) *client {
	s.t.Helper()
	path := s.creds(role, name, 0)
	id, _, err := auth.IdentityFromCreds(path)
	if err != nil {
		s.t.Fatal(err)
	}
	c := &client{t: s.t}
	nc, err := nats.Connect(s.url, nats.UserCredentials(path), nats.CustomInboxPrefix(auth.InboxPrefix(id)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.refused = append(c.refused, err.Error())
			c.mu.Unlock()
		}))
	if err != nil {
		s.t.Fatalf("connect as %s: %v", id, auth.ExplainConnectError(err, path))
	}
	s.t.Cleanup(nc.Close)
	c.nc = nc
	c.js, err = jetstream.New(nc)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// ok runs op, which must succeed.
func (c *client) ok(what string, op func(ctx context.Context) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := op(ctx); err != nil {
		c.t.Errorf("%s: %v (refused: %v)", what, err, c.takeRefused())
	}
	c.takeRefused()
}

// denied runs op, which must fail, and waits for the server's permissions violation naming
// subject: the server, not the client, refused it.
func (c *client) denied(what, subject string, op func(ctx context.Context) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := op(ctx)
	refused := eventstest.Poll(5*time.Second, func() error {
		for _, r := range c.takeRefused() {
			if strings.Contains(r, "ermissions violation") && strings.Contains(r, subject) {
				return nil
			}
		}
		return errors.New("no permissions violation")
	})
	switch {
	case refused != nil:
		c.t.Errorf("%s: no permissions violation for %q from the server (op error: %v)", what, subject, err)
	case err == nil:
		c.t.Errorf("%s: the server refused %s but the operation reported success", what, subject)
	}
}

func (c *client) takeRefused() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.refused
	c.refused = nil
	return r
}

func publish(c *client, subject string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.js.Publish(ctx, subject, []byte(`{}`))
		return err
	}
}

// readOne creates an ordered consumer on filter and reads one message.
func readOne(c *client, filter string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		cons, err := c.js.OrderedConsumer(ctx, "SKIFF", jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		if err != nil {
			return err
		}
		_, err = cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		return err
	}
}

// getObject reads name from bucket and wants want.
func getObject(c *client, bucket, name string, want []byte) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		obs, err := c.js.ObjectStore(ctx, bucket)
		if err != nil {
			return err
		}
		got, err := obs.GetBytes(ctx, name)
		if err == nil && !bytes.Equal(got, want) {
			err = errors.New(bucket + "/" + name + " differs")
		}
		return err
	}
}

// putObject writes name to bucket twice (the second replaces the first, purging its chunks),
// and with del deletes it after.
func putObject(c *client, bucket, name string, del bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		obs, err := c.js.ObjectStore(ctx, bucket)
		if err != nil {
			return err
		}
		for range 2 {
			if _, err := obs.PutBytes(ctx, name, []byte("snapshot")); err != nil {
				return err
			}
		}
		if del {
			return obs.Delete(ctx, name)
		}
		return nil
	}
}

// bootstrap makes the stream and buckets as admin, and some events for the others to read.
func bootstrap(t *testing.T, s *opServer) (admin *client, image []byte) {
	admin = s.connect(auth.RoleAdmin, "")
	ctx := context.Background()
	if _, err := admin.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SKIFF", Subjects: []string{"skiff.ev.>"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: api.LeaseBucket, History: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: api.LeaderBucket, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	obs, err := admin.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: api.ImageBucket})
	if err != nil {
		t.Fatal(err)
	}
	image = bytes.Repeat([]byte("layer"), 100_000) // several chunks
	if _, err := obs.PutBytes(ctx, "nginx:latest", image); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{api.SnapshotBucket, api.NodeSnapshotBucket} {
		obs, err := admin.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: b})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := obs.PutBytes(ctx, "snapshot-1", image); err != nil {
			t.Fatal(err)
		}
	}
	for _, subj := range []string{"skiff.ev.bind.a.ns.p", "skiff.ev.bind.b.ns.q", "skiff.ev.pod.ns.p", "skiff.ev.service.ns.s",
		"skiff.ev.endpoints.ns.s", "skiff.ev.node._.b", "skiff.ev.node.b"} {
		if _, err := admin.js.Publish(ctx, subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	return admin, image
}

func TestRolesOnServer(t *testing.T) {
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	s := startOpServer(t, keys)
	admin, image := bootstrap(t, s)

	t.Run("node", func(t *testing.T) {
		s.t = t
		n := s.connect(auth.RoleNode, "a")
		n.ok("publish own status", publish(n, "skiff.ev.status.a.ns.p"))
		n.ok("publish own registration", publish(n, "skiff.ev.node.a"))
		n.ok("read own bind and status", readOne(n, "skiff.ev.*.a.*.*"))
		n.ok("read services", readOne(n, "skiff.ev.service.>"))
		n.ok("read endpoints", readOne(n, "skiff.ev.endpoints.>"))
		n.ok("read nodes", readOne(n, "skiff.ev.node.>"))
		n.ok("direct get own bind", func(ctx context.Context) error {
			st, err := n.js.Stream(ctx, "SKIFF")
			if err != nil {
				return err
			}
			_, err = st.GetLastMsgForSubject(ctx, "skiff.ev.bind.a.ns.p")
			return err
		})
		n.ok("read an image", func(ctx context.Context) error {
			obs, err := n.js.ObjectStore(ctx, api.ImageBucket)
			if err != nil {
				return err
			}
			got, err := obs.GetBytes(ctx, "nginx:latest")
			if err == nil && !bytes.Equal(got, image) {
				err = errors.New("image differs")
			}
			return err
		})
		n.ok("renew own lease", func(ctx context.Context) error {
			kv, err := n.js.KeyValue(ctx, api.LeaseBucket)
			if err != nil {
				return err
			}
			if _, err := kv.Put(ctx, "a", []byte("1")); err != nil {
				return err
			}
			_, err = kv.Get(ctx, "a")
			return err
		})
		n.ok("read a snapshot of what nodes read", getObject(n, api.NodeSnapshotBucket, "snapshot-1", image))
		n.denied("read a snapshot of the whole fold", "$JS.API.STREAM.INFO.OBJ_skiff-snapshots",
			getObject(n, api.SnapshotBucket, "snapshot-1", image))
		n.denied("write a snapshot", "$O.skiff-snapshots-nodes", putObject(n, api.NodeSnapshotBucket, "snapshot-2", false))
		n.denied("publish another node's status", "skiff.ev.status.b.ns.p", publish(n, "skiff.ev.status.b.ns.p"))
		n.denied("publish a binding", "skiff.ev.bind.a.ns.p", publish(n, "skiff.ev.bind.a.ns.p"))
		n.denied("start a leader term", events.TermSubject, publish(n, events.TermSubject))
		n.denied("publish what controllers say of it (uncordon itself, its pod CIDR)", "skiff.ev.node._.a", publish(n, "skiff.ev.node._.a"))
		n.denied("read pods", "skiff.ev.pod.>", readOne(n, "skiff.ev.pod.>"))
		n.denied("read another node's bindings", "skiff.ev.bind.b.>", readOne(n, "skiff.ev.bind.b.>"))
		n.denied("read the whole log", "$JS.API.CONSUMER.CREATE.SKIFF", readOne(n, ">"))
		// Several filters travel only in the request body, which permissions cannot see: a node
		// reads services and endpoints with one consumer each.
		n.denied("read services and endpoints with one consumer", "$JS.API.CONSUMER.CREATE.SKIFF", func(ctx context.Context) error {
			_, err := n.js.OrderedConsumer(ctx, "SKIFF", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"skiff.ev.service.>", "skiff.ev.endpoints.>"}})
			return err
		})
		n.denied("update the stream", "$JS.API.STREAM.UPDATE.SKIFF", func(ctx context.Context) error {
			_, err := n.js.UpdateStream(ctx, jetstream.StreamConfig{Name: "SKIFF", Subjects: []string{"skiff.ev.>"}, MaxMsgs: 1})
			return err
		})
		n.denied("put an image", "$O.skiff-images", func(ctx context.Context) error {
			obs, err := n.js.ObjectStore(ctx, api.ImageBucket)
			if err != nil {
				return err
			}
			_, err = obs.PutBytes(ctx, "evil:latest", []byte("x"))
			return err
		})
		n.denied("renew another node's lease", "$KV.skiff-leases.b", func(ctx context.Context) error {
			kv, err := n.js.KeyValue(ctx, api.LeaseBucket)
			if err != nil {
				return err
			}
			_, err = kv.Put(ctx, "b", []byte("1"))
			return err
		})
	})

	// A JWT travels in the CONNECT line, which the server caps at 4 KiB: the longest node name
	// (a DNS label of 63) still connects and reads what a node reads.
	t.Run("node with the longest name", func(t *testing.T) {
		s.t = t
		name := strings.Repeat("n", 63)
		if _, err := admin.js.Publish(context.Background(), "skiff.ev.bind."+name+".ns.p", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		n := s.connect(auth.RoleNode, name)
		n.ok("read a snapshot of what nodes read", getObject(n, api.NodeSnapshotBucket, "snapshot-1", image))
		n.ok("read its own bind and status", readOne(n, "skiff.ev.*."+name+".*.*"))
	})

	t.Run("scheduler", func(t *testing.T) {
		s.t = t
		sc := s.connect(auth.RoleScheduler, "")
		sc.ok("append a pod event", publish(sc, "skiff.ev.pod.ns.p"))
		sc.ok("append a binding", publish(sc, "skiff.ev.bind.a.ns.p"))
		sc.ok("start a leader term", publish(sc, events.TermSubject))
		sc.ok("fence a leader's batch", publish(sc, "skiff.ev.leader.pass.scheduling"))
		sc.ok("read the whole log", readOne(sc, ">"))
		sc.ok("run the leader election", func(ctx context.Context) error {
			kv, err := sc.js.KeyValue(ctx, api.LeaderBucket)
			if err != nil {
				return err
			}
			if _, err := kv.Status(ctx); err != nil {
				return err
			}
			w, err := kv.Watch(ctx, "leader", jetstream.UpdatesOnly())
			if err != nil {
				return err
			}
			defer w.Stop()
			rev, err := kv.Create(ctx, "leader", []byte("s1"))
			if err != nil {
				return err
			}
			select {
			case <-w.Updates():
			case <-ctx.Done():
				return ctx.Err()
			}
			if _, err := kv.Get(ctx, "leader"); err != nil {
				return err
			}
			if rev, err = kv.Update(ctx, "leader", []byte("s1"), rev); err != nil {
				return err
			}
			return kv.Delete(ctx, "leader", jetstream.LastRevision(rev))
		})
		sc.ok("delete a gone node's lease", func(ctx context.Context) error {
			kv, err := sc.js.KeyValue(ctx, api.LeaseBucket)
			if err != nil {
				return err
			}
			return kv.Delete(ctx, "a")
		})
		sc.ok("serve commands", func(ctx context.Context) error {
			_, err := sc.nc.Subscribe("skiff.cmd.>", func(*nats.Msg) {})
			if err == nil {
				err = sc.nc.Flush()
			}
			return err
		})
		for _, b := range []string{api.SnapshotBucket, api.NodeSnapshotBucket} {
			sc.ok("write, replace and delete a snapshot in "+b, putObject(sc, b, "snapshot-2", true))
		}
		sc.ok("read a snapshot", getObject(sc, api.SnapshotBucket, "snapshot-1", image))
		sc.ok("list snapshots", func(ctx context.Context) error {
			obs, err := sc.js.ObjectStore(ctx, api.SnapshotBucket)
			if err == nil {
				_, err = obs.List(ctx)
			}
			return err
		})
		sc.denied("publish a node's status", "skiff.ev.status.a.ns.p", publish(sc, "skiff.ev.status.a.ns.p"))
		sc.denied("update the stream", "$JS.API.STREAM.UPDATE.SKIFF", func(ctx context.Context) error {
			_, err := sc.js.UpdateStream(ctx, jetstream.StreamConfig{Name: "SKIFF", Subjects: []string{"skiff.ev.>"}, MaxMsgs: 1})
			return err
		})
	})

	t.Run("user", func(t *testing.T) {
		s.t = t
		u := s.connect(auth.RoleUser, "alice")
		got := make(chan string, 10)
		if _, err := admin.nc.Subscribe("skiff.cmd.>", func(m *nats.Msg) { got <- m.Subject }); err != nil {
			t.Fatal(err)
		}
		admin.nc.Flush()
		u.ok("command as itself", func(ctx context.Context) error {
			if err := u.nc.Publish("skiff.cmd.apply.alice", nil); err != nil {
				return err
			}
			select {
			case s := <-got:
				if s != "skiff.cmd.apply.alice" {
					return errors.New("got " + s)
				}
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		u.denied("command as admin", "skiff.cmd.apply.admin", func(ctx context.Context) error {
			if err := u.nc.Publish("skiff.cmd.apply.admin", nil); err != nil {
				return err
			}
			u.nc.Flush()
			select {
			case s := <-got:
				return errors.New("the scheduler got " + s)
			case <-time.After(200 * time.Millisecond):
				return errors.New("not delivered")
			}
		})
		u.ok("read the log", readOne(u, ">"))
		u.ok("get an event by sequence", func(ctx context.Context) error {
			st, err := u.js.Stream(ctx, "SKIFF")
			if err != nil {
				return err
			}
			_, err = st.GetMsg(ctx, 1)
			return err
		})
		u.ok("import an image twice", func(ctx context.Context) error {
			obs, err := u.js.ObjectStore(ctx, api.ImageBucket)
			if err != nil {
				return err
			}
			for range 2 {
				if _, err := obs.PutBytes(ctx, "app:v1", image); err != nil {
					return err
				}
			}
			b, err := obs.GetBytes(ctx, "app:v1")
			if err == nil && !bytes.Equal(b, image) {
				err = errors.New("image differs")
			}
			return err
		})
		u.ok("read a snapshot", getObject(u, api.SnapshotBucket, "snapshot-1", image))
		u.denied("write a snapshot", "$O.skiff-snapshots", putObject(u, api.SnapshotBucket, "snapshot-2", false))
		u.denied("append an event", "skiff.ev.pod.ns.p", publish(u, "skiff.ev.pod.ns.p"))
		u.denied("start a leader term", events.TermSubject, publish(u, events.TermSubject))
		u.denied("serve commands", "skiff.cmd.>", func(ctx context.Context) error {
			_, err := u.nc.Subscribe("skiff.cmd.>", func(*nats.Msg) {})
			u.nc.Flush()
			return errors.Join(err, errors.New("subscriptions are refused asynchronously"))
		})
	})
}

// TestConversations checks the request/reply exchanges between roles: chunked query answers,
// and container logs, where the node sends chunks as requests to the CLI's log inbox and the
// CLI acknowledges each.
func TestConversations(t *testing.T) {
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	s := startOpServer(t, keys)
	sc := s.connect(auth.RoleScheduler, "")
	node := s.connect(auth.RoleNode, "a")
	user := s.connect(auth.RoleUser, "alice")

	if _, err := sc.nc.Subscribe("skiff.q.get", func(m *nats.Msg) {
		for i := range 3 {
			m.Respond([]byte{byte('0' + i)})
		}
	}); err != nil {
		t.Fatal(err)
	}
	sc.nc.Flush()
	user.ok("query answered in chunks", func(ctx context.Context) error {
		inbox := user.nc.NewInbox()
		sub, err := user.nc.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := user.nc.PublishRequest("skiff.q.get", inbox, nil); err != nil {
			return err
		}
		for range 3 {
			if _, err := sub.NextMsgWithContext(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if len(sc.takeRefused()) > 0 {
		t.Error("the scheduler's chunked answer was refused")
	}

	if _, err := node.nc.Subscribe("skiff.logs.a", func(m *nats.Msg) {
		// The request names the inbox the chunks go to; each chunk waits for an ack.
		ack, err := node.nc.Request(string(m.Data), []byte("chunk"), 2*time.Second)
		if err == nil {
			m.Respond(ack.Data)
		}
	}); err != nil {
		t.Fatal(err)
	}
	node.nc.Flush()
	user.ok("container logs", func(ctx context.Context) error {
		logInbox := auth.InboxPrefix("alice") + ".logs." + nats.NewInbox()[len("_INBOX."):]
		if _, err := user.nc.Subscribe(logInbox, func(m *nats.Msg) { m.Respond([]byte("ack")) }); err != nil {
			return err
		}
		m, err := user.nc.RequestWithContext(ctx, "skiff.logs.a", []byte(logInbox))
		if err == nil && string(m.Data) != "ack" {
			err = errors.New("got " + string(m.Data))
		}
		return err
	})
	if r := node.takeRefused(); len(r) > 0 {
		t.Errorf("the node was refused: %v", r)
	}
	node.denied("a node asks another node for logs", "skiff.logs.b", func(ctx context.Context) error {
		_, err := node.nc.RequestWithContext(ctx, "skiff.logs.b", nil)
		return err
	})
}

func TestRefusedAtConnect(t *testing.T) {
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := keys.UserCreds(auth.RoleNode, "gone", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := auth.ParseCreds(revoked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Revoke(c.PublicKey, time.Now()); err != nil {
		t.Fatal(err)
	}
	s := startOpServer(t, keys)

	past := &auth.Keys{Account: keys.Account, Now: func() time.Time { return time.Now().Add(-time.Hour) }}
	expired, err := past.UserCreds(auth.RoleNode, "old", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewKeys()
	foreign, err := other.UserCreds(auth.RoleUser, "bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		creds []byte
		want  []string
	}{
		{"expired", expired, []string{"the user JWT of node:old expired at", "mint new ones with `skiff node creds old --dir DIR`"}},
		{"revoked", revoked, []string{"authorization violation for node:gone", "revoked", "skiff node creds gone"}},
		{"other cluster", foreign, []string{"not signed by this cluster's account key", "skiff user creds bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeCreds(t, t.TempDir(), tc.creds)
			nc, err := nats.Connect(s.url, nats.UserCredentials(path), nats.MaxReconnects(0))
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			msg := auth.ExplainConnectError(err, path).Error()
			if !strings.HasPrefix(msg, "the server refused the credentials in "+path+": ") {
				t.Errorf("message %q does not say which file was refused", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}

	t.Run("expires while connected", func(t *testing.T) {
		path := s.creds(auth.RoleUser, "brief", 2*time.Second)
		closed := make(chan struct{})
		var mu sync.Mutex
		var reason error
		nc, err := nats.Connect(s.url, nats.UserCredentials(path), nats.MaxReconnects(0),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { mu.Lock(); reason = err; mu.Unlock() }),
			nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
		if err != nil {
			t.Fatal(auth.ExplainConnectError(err, path))
		}
		defer nc.Close()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection outlived its JWT")
		}
		mu.Lock()
		defer mu.Unlock()
		if err := reason; !errors.Is(err, nats.ErrAuthExpired) {
			t.Fatalf("last error %v, want %v", err, nats.ErrAuthExpired)
		} else if msg := auth.ExplainConnectError(err, path).Error(); !strings.Contains(msg, "the user JWT of brief expired at") {
			t.Errorf("message %q", msg)
		}
	})
}

func TestKeysSaveLoad(t *testing.T) {
	dir := t.TempDir()
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{auth.OperatorSeedFile, auth.AccountSeedFile, auth.SystemSeedFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	u1, _ := nkeys.CreateUser()
	u2, _ := nkeys.CreateUser()
	p1, _ := u1.PublicKey()
	p2, _ := u2.PublicKey()
	if _, err := keys.Revoke(p1, time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	if err := keys.Save(dir); err != nil {
		t.Fatal(err)
	}
	// A later revocation by keys loaded from the directory keeps the earlier one.
	loaded, err := auth.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, err := loaded.Revoke(p2, time.Unix(200, 0))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAccountClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Revocations) != 2 || !ac.Limits.IsJSEnabled() {
		t.Errorf("account revocations %v, JetStream %v; want 2 and enabled", ac.Revocations, ac.Limits.IsJSEnabled())
	}
	// Each version is issued in a later second than the one before it, the saved one included:
	// servers take an equal iat as newer, so two versions of one second could swap back.
	saved, err := os.ReadFile(filepath.Join(dir, auth.AccountJWTFile))
	if err != nil {
		t.Fatal(err)
	}
	prev, err := jwt.DecodeAccountClaims(strings.TrimSpace(string(saved)))
	if err != nil {
		t.Fatal(err)
	}
	if ac.IssuedAt <= prev.IssuedAt {
		t.Errorf("the revocation's account JWT was issued at %d, the saved one at %d: want later", ac.IssuedAt, prev.IssuedAt)
	}
	u3, _ := nkeys.CreateUser()
	p3, _ := u3.PublicKey()
	again, err := loaded.Revoke(p3, time.Unix(300, 0))
	if err != nil {
		t.Fatal(err)
	}
	if next, err := jwt.DecodeAccountClaims(again); err != nil || next.IssuedAt <= ac.IssuedAt {
		t.Errorf("the next revocation's account JWT: %v, issued at %d after %d; want later", err, next.IssuedAt, ac.IssuedAt)
	}
	if _, err := auth.LoadKeys(t.TempDir()); err == nil || !strings.Contains(err.Error(), "skiff cluster init") {
		t.Errorf("LoadKeys(empty dir) = %v", err)
	}
}
