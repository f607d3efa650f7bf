package natsconf

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events/auth"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/pki"
)

// golden is a fixed cluster: the JWTs are placeholders, the renderer does not look into them.
func golden() Config {
	return Config{
		ClusterName: "skiff",
		Servers: []Server{
			{Name: "n1", Host: "10.0.0.1"},
			{Name: "n2", Host: "10.0.0.2", Port: 4333},
			{Name: "n3", Host: "n3.example.com", ClusterPort: 7222, MonitorPort: -1},
		},
		TLS:           &TLS{Cert: "server.pem", Key: "server-key.pem", CA: "ca.pem"},
		StoreDir:      "/var/lib/nats/jetstream",
		ResolverDir:   "/var/lib/nats/jwt",
		Operator:      "OPERATOR.JWT",
		SystemAccount: "ASYS",
		Accounts:      []Account{{Name: "SYS", PublicKey: "ASYS", JWT: "SYS.JWT"}, {Name: "SKIFF", PublicKey: "ASKIFF", JWT: "SKIFF.JWT"}},
	}
}

func TestRenderGolden(t *testing.T) {
	single := golden()
	single.Servers = []Server{{Name: "skiff", Host: "127.0.0.1", MonitorPort: -1}}
	single.TLS = nil
	single.StoreDir, single.ResolverDir = "data/jetstream", "data/jwt"
	for _, tc := range []struct {
		file   string
		cfg    Config
		server string
	}{
		{"n1.conf", golden(), "n1"},
		{"n3.conf", golden(), "n3"},
		{"single.conf", single, "skiff"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Render(tc.cfg, tc.server)
			if err != nil {
				t.Fatal(err)
			}
			eventstest.Golden(t, "testdata/"+tc.file, got)
		})
	}
	if _, err := Render(golden(), "n9"); err == nil || !strings.Contains(err.Error(), `no server "n9"`) {
		t.Errorf("Render of an unknown server: %v", err)
	}
}

// testCluster is what a real cluster needs: keys, a CA, and for each server a directory with
// its certificate, on loopback ports of its own.
type testCluster struct {
	keys  *auth.Keys
	ca    *pki.CA
	dir   string
	cfg   Config
	creds map[auth.Role]string
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newTestCluster(t *testing.T, names ...string) *testCluster {
	t.Helper()
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.Save(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	opJWT, _ := keys.OperatorJWT()
	accJWT, _ := keys.AccountJWT()
	sysJWT, _ := keys.SystemAccountJWT()
	accPub, _ := keys.Account.PublicKey()
	sysPub, _ := keys.System.PublicKey()
	c := &testCluster{keys: keys, ca: ca, dir: dir, creds: map[auth.Role]string{}}
	c.cfg = Config{
		Operator: opJWT, SystemAccount: sysPub,
		Accounts: []Account{{Name: "SYS", PublicKey: sysPub, JWT: sysJWT}, {Name: "SKIFF", PublicKey: accPub, JWT: accJWT}},
		// Each server's own directories: Render takes one for all, so they are patched below.
		StoreDir: "STORE", ResolverDir: "JWT",
		TLS: &TLS{Cert: "CERT", Key: "KEY", CA: filepath.Join(dir, "ca.pem")},
	}
	for _, n := range names {
		c.cfg.Servers = append(c.cfg.Servers, Server{Name: n, Host: "127.0.0.1", Port: freePort(t), ClusterPort: freePort(t), MonitorPort: freePort(t)})
		sc, err := ca.ServerCert(n, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Save(filepath.Join(dir, n, "server.pem"), filepath.Join(dir, n, "server-key.pem")); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []auth.Role{auth.RoleAdmin} {
		data, err := keys.UserCreds(r, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		c.creds[r] = filepath.Join(dir, string(r)+".creds")
		os.WriteFile(c.creds[r], data, 0o600)
	}
	return c
}

// conf renders server name's file with absolute paths of its own.
func (c *testCluster) conf(t *testing.T, name string) string {
	t.Helper()
	cfg := c.cfg
	tls := *cfg.TLS
	tls.Cert, tls.Key = filepath.Join(c.dir, name, "server.pem"), filepath.Join(c.dir, name, "server-key.pem")
	cfg.TLS = &tls
	cfg.StoreDir, cfg.ResolverDir = filepath.Join(c.dir, name, "jetstream"), filepath.Join(c.dir, name, "jwt")
	data, err := Render(cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.dir, name, "nats.conf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestProcessConfigFile(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	opts, err := server.ProcessConfigFile(c.conf(t, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, r := range opts.Routes {
		routes = append(routes, r.String())
	}
	n := c.cfg.Servers
	got := map[string]any{
		"name": opts.ServerName, "port": opts.Port, "jetstream": opts.JetStream, "syncAlways": opts.SyncAlways,
		"tls": opts.TLSConfig != nil, "httpsPort": opts.HTTPSPort, "cluster": opts.Cluster.Name, "clusterPort": opts.Cluster.Port,
		"routeTLS": opts.Cluster.TLSConfig != nil, "routes": routes, "operators": len(opts.TrustedOperators),
		"systemAccount": opts.SystemAccount, "maxPayload": opts.MaxPayload,
		"ping": opts.PingInterval, "pingMax": opts.MaxPingsOut, "routePing": opts.Cluster.PingInterval, "routePingMax": opts.Cluster.MaxPingsOut,
	}
	want := map[string]any{
		"name": "n1", "port": n[0].Port, "jetstream": true, "syncAlways": true,
		"tls": true, "httpsPort": n[0].MonitorPort, "cluster": "skiff", "clusterPort": n[0].ClusterPort,
		"routeTLS": true, "routes": []string{fmt.Sprintf("nats-route://127.0.0.1:%d", n[1].ClusterPort), fmt.Sprintf("nats-route://127.0.0.1:%d", n[2].ClusterPort)},
		"operators": 1, "systemAccount": c.cfg.SystemAccount, "maxPayload": int32(MaxPayload),
		"ping": PingInterval, "pingMax": PingMax, "routePing": ClusterPingInterval, "routePingMax": PingMax,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("options (-want +got):\n%s", d)
	}
	if opts.Cluster.TLSConfig != nil && opts.Cluster.TLSConfig.ClientAuth.String() != "RequireAndVerifyClientCert" {
		t.Errorf("route TLS client auth %v, want RequireAndVerifyClientCert", opts.Cluster.TLSConfig.ClientAuth)
	}

	single := c.cfg
	single.Servers = single.Servers[:1]
	single.TLS = nil
	single.StoreDir, single.ResolverDir = t.TempDir(), t.TempDir()
	data, err := Render(single, "n1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "single.conf")
	os.WriteFile(path, data, 0o644)
	opts, err = server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || !opts.SyncAlways || opts.TLSConfig != nil || len(opts.Routes) != 0 || opts.Cluster.Port != 0 {
		t.Errorf("single server: jetstream %v, sync always %v, TLS %v, routes %v, cluster port %d",
			opts.JetStream, opts.SyncAlways, opts.TLSConfig != nil, opts.Routes, opts.Cluster.Port)
	}
}

func TestCluster(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	var urls []string
	for _, s := range c.cfg.Servers {
		opts, err := server.ProcessConfigFile(c.conf(t, s.Name))
		if err != nil {
			t.Fatal(err)
		}
		eventstest.NewServerOptions(t, opts)
		urls = append(urls, s.ClientURL(true))
	}
	url := strings.Join(urls, ",")
	ca := filepath.Join(c.dir, "ca.pem")

	nc, err := nats.Connect(url, nats.UserCredentials(c.creds[auth.RoleAdmin]), nats.RootCAs(ca))
	if err != nil {
		t.Fatal(auth.ExplainConnectError(err, c.creds[auth.RoleAdmin]))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The meta leader is elected once the routes are up: retry until then.
	var info *jetstream.StreamInfo
	eventstest.EventuallyErr(t, 30*time.Second, "an R3 stream takes an event", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SKIFF", Subjects: []string{"skiff.ev.>"}, Replicas: 3})
		if err != nil {
			return err
		}
		if _, err = js.Publish(ctx, "skiff.ev.pod.ns.p", []byte("{}")); err != nil {
			return err
		}
		info, _ = st.Info(ctx)
		return nil
	})
	if info == nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v, want a leader and 2 replicas", info)
	}

	t.Run("no CA", func(t *testing.T) {
		_, err := nats.Connect(urls[0], nats.UserCredentials(c.creds[auth.RoleAdmin]), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("connected without the CA")
		}
		msg := auth.ExplainTLSError(err, "").Error()
		if !strings.Contains(msg, "not signed by the system's CAs; pass the cluster's CA with --tls-ca") {
			t.Errorf("message %q", msg)
		}
		if msg := auth.ExplainConnectError(err, c.creds[auth.RoleAdmin]).Error(); !strings.HasPrefix(msg, "TLS: ") {
			t.Errorf("connect message %q", msg)
		}
	})
	t.Run("another CA", func(t *testing.T) {
		other, _ := pki.NewCA("other", time.Now())
		path := filepath.Join(t.TempDir(), "other.pem")
		other.Save(path, "")
		_, err := nats.Connect(urls[0], nats.UserCredentials(c.creds[auth.RoleAdmin]), nats.RootCAs(path), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("connected with another CA")
		}
		if msg := auth.ExplainTLSError(err, path).Error(); !strings.Contains(msg, "not signed by the CA in "+path) {
			t.Errorf("message %q", msg)
		}
	})
	// nats.go upgrades a nats:// connection to TLS when the server requires it, so a plain-text
	// URL fails as a client without the CA does, and works with the CA.
	t.Run("plain text", func(t *testing.T) {
		plain := strings.Replace(urls[0], "tls://", "nats://", 1)
		_, err := nats.Connect(plain, nats.UserCredentials(c.creds[auth.RoleAdmin]), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("connected in plain text")
		}
		if msg := auth.ExplainConnectError(err, c.creds[auth.RoleAdmin]).Error(); !strings.Contains(msg, "pass the cluster's CA with --tls-ca") {
			t.Errorf("message %q", msg)
		}
		nc, err := nats.Connect(plain, nats.UserCredentials(c.creds[auth.RoleAdmin]), nats.RootCAs(ca), nats.MaxReconnects(0))
		if err != nil {
			t.Fatalf("nats:// with the CA: %v", err)
		}
		nc.Close()
	})
}

// cutProxy forwards TCP to a server until cut, then swallows everything both ways while keeping
// the connections open: what a machine whose packets are dropped looks like to the server.
type cutProxy struct {
	ln  net.Listener
	cut chan struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, cut: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *cutProxy) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-p.cut:
			continue // dropped
		default:
		}
		if _, err := to.Write(buf[:n]); err != nil {
			return
		}
	}
}

// With the rendered ping settings the server drops a client whose machine was cut off, and with
// it the client's place in a queue group, within (PingMax+1) ping intervals; before, it kept it
// for up to six minutes and handed it its share of the requests.
func TestCutOffClientIsDropped(t *testing.T) {
	c := newTestCluster(t, "n1")
	opts, err := server.ProcessConfigFile(c.conf(t, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	srv := eventstest.NewServerOptions(t, opts)
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(c.cfg.Servers[0].Port))
	connect := func(name, url string) *nats.Conn {
		nc, err := nats.Connect(url, nats.Name(name), nats.UserCredentials(c.creds[auth.RoleAdmin]),
			nats.RootCAs(filepath.Join(c.dir, "ca.pem")), nats.MaxReconnects(0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	live := connect("live", "tls://"+addr)
	proxy := newCutProxy(t, addr)
	cutOff := connect("cut-off", "tls://"+proxy.ln.Addr().String())
	for _, nc := range []*nats.Conn{live, cutOff} {
		if _, err := nc.QueueSubscribe("svc", "g", func(m *nats.Msg) {
			if nc == live {
				_ = m.Respond([]byte("ok"))
			}
		}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	present := func() bool {
		cz, err := srv.Connz(&server.ConnzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ci := range cz.Conns {
			if ci.Name == "cut-off" {
				return true
			}
		}
		return false
	}
	if !present() {
		t.Fatal("the cut-off client is not connected to begin with")
	}

	close(proxy.cut)
	began := time.Now()
	eventstest.Eventually(t, time.Duration(PingMax+1)*PingInterval+2*time.Second, "the server drops the cut-off client",
		func() bool { return !present() })
	t.Logf("the server dropped the cut-off client %s after the cut", time.Since(began).Round(100*time.Millisecond))
	client := connect("client", "tls://"+addr)
	for i := range 20 {
		if _, err := client.Request("svc", nil, 2*time.Second); err != nil {
			t.Fatalf("request %d after the drop: %v", i, err)
		}
	}
}
