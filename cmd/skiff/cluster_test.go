package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"skiff.dev/events/auth"
	"skiff.dev/events/client"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/pki"
)

// runCLI runs the CLI with no cluster behind it (cluster and creds commands work on files).
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Now: time.Now, Getenv: func(string) string { return "" }}
	code := run(ctx, args, env)
	return result{out.String(), errb.String(), code}
}

// files lists the files below dir with their modes.
func files(t *testing.T, dir string) map[string]os.FileMode {
	t.Helper()
	out := map[string]os.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fi.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClusterInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prod")
	r := runCLI(t, "cluster", "init", "--dir", dir, "--server", "n1=10.0.0.1", "--server", "n2=10.0.0.2:4333")
	if r.code != 0 {
		t.Fatalf("cluster init: %d %s", r.code, r.stderr)
	}
	want := map[string]os.FileMode{
		"ca.pem": 0o644, "ca-key.pem": 0o600,
		"keys/operator.nk": 0o600, "keys/account.nk": 0o600, "keys/system.nk": 0o600,
		"operator.jwt": 0o644, "accounts/SKIFF.jwt": 0o644, "accounts/SYS.jwt": 0o644,
		"creds/admin.creds": 0o600, "creds/scheduler.creds": 0o600, "creds/sys.creds": 0o600,
		"config/admin.yaml": 0o600, "config/scheduler.yaml": 0o600,
	}
	for _, n := range []string{"n1", "n2"} {
		for f, m := range map[string]os.FileMode{"nats.conf": 0o644, "server.pem": 0o644, "server-key.pem": 0o600, "ca.pem": 0o644} {
			want["servers/"+n+"/"+f] = m
		}
	}
	if d := cmp.Diff(want, files(t, dir)); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if strings.Count(r.stdout, "config/admin.yaml\n") != 1 || !strings.Contains(r.stdout, "next steps:") || !strings.Contains(r.stdout, "servers/n1/nats.conf") {
		t.Errorf("output does not list the files and the next steps:\n%s", r.stdout)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "config/admin.yaml"))
	for _, w := range []string{"creds: ../creds/admin.creds\n", "ca: ../ca.pem\n", "server: tls://10.0.0.1:4222,tls://10.0.0.2:4333\n"} {
		if !strings.Contains(string(raw), w) {
			t.Errorf("config/admin.yaml lacks %q (relative paths):\n%s", w, raw)
		}
	}
	cfg, err := client.ReadConfig(filepath.Join(dir, "config/admin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := client.File{Server: "tls://10.0.0.1:4222,tls://10.0.0.2:4333", Creds: filepath.Join(dir, "creds/admin.creds"), CA: filepath.Join(dir, "ca.pem")}
	if d := cmp.Diff(wantCfg, cfg); d != "" {
		t.Errorf("config/admin.yaml (-want +got):\n%s", d)
	}
	for _, who := range []string{"admin", "scheduler"} {
		id, role, err := auth.IdentityFromCreds(filepath.Join(dir, "creds", who+".creds"))
		if err != nil || id != who || string(role) != who {
			t.Errorf("creds/%s.creds: %q %q %v", who, id, role, err)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "servers/n1/nats.conf"))
	for _, w := range []string{`listen: "10.0.0.1:4222"`, `https: "10.0.0.1:8222"`, `"nats-route://10.0.0.2:6222"`, `store_dir: "/var/lib/nats"`, `dir: "/var/lib/nats/jwt"`, "sync_interval: always", "verify: true"} {
		if !strings.Contains(string(conf), w) {
			t.Errorf("servers/n1/nats.conf lacks %s", w)
		}
	}

	r = runCLI(t, "cluster", "init", "--dir", dir, "--server", "n1=10.0.0.1")
	if r.code == 0 || !strings.Contains(r.stderr, "already holds a cluster's keys") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("init over an existing cluster: %d %q", r.code, r.stderr)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "keys/account.nk"))
	if r := runCLI(t, "cluster", "init", "--dir", dir, "--server", "n1=10.0.0.1", "--force"); r.code != 0 {
		t.Fatalf("init --force: %s", r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "keys/account.nk")); bytes.Equal(before, after) {
		t.Error("--force kept the old keys")
	}
}

func TestClusterInitOperatorCA(t *testing.T) {
	own := filepath.Join(t.TempDir(), "own")
	if r := runCLI(t, "cluster", "init", "--dir", own, "--server", "n1=10.0.0.1"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "prod")
	r := runCLI(t, "cluster", "init", "--dir", dir, "--server", "n1=10.0.0.1",
		"--tls-ca", filepath.Join(own, "ca.pem"), "--tls-ca-key", filepath.Join(own, "ca-key.pem"))
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err == nil {
		t.Error("the operator's CA key was copied into DIR")
	}
	a, _ := os.ReadFile(filepath.Join(own, "ca.pem"))
	b, _ := os.ReadFile(filepath.Join(dir, "servers/n1/ca.pem"))
	if !bytes.Equal(a, b) {
		t.Error("servers/n1/ca.pem is not the operator's CA")
	}
}

// An operator with a PKI of their own gives init the CA and the servers' certificates, no CA key:
// init uses them as they are, and refuses one its CA did not sign or that names another host.
func TestClusterInitOperatorCertificates(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("operator CA", now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another CA", now)
	if err != nil {
		t.Fatal(err)
	}
	certs := t.TempDir()
	caFile := filepath.Join(certs, "ca.pem")
	if err := ca.Save(caFile, ""); err != nil {
		t.Fatal(err)
	}
	issue := func(signer *pki.CA, name, host string) {
		c, err := signer.ServerCert(name, []string{host}, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Save(filepath.Join(certs, name+".pem"), filepath.Join(certs, name+"-key.pem")); err != nil {
			t.Fatal(err)
		}
	}
	issue(ca, "n1", "10.0.0.1")
	issue(ca, "n2", "10.0.0.2")
	dir := filepath.Join(t.TempDir(), "prod")
	r := runCLI(t, "cluster", "init", "--dir", dir, "--server", "n1=10.0.0.1", "--server", "n2=10.0.0.2",
		"--tls-ca", caFile, "--tls-certs", certs)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, n := range []string{"n1", "n2"} {
		want, _ := os.ReadFile(filepath.Join(certs, n+".pem"))
		got, _ := os.ReadFile(filepath.Join(dir, "servers", n, "server.pem"))
		if !bytes.Equal(want, got) {
			t.Errorf("servers/%s/server.pem is not the operator's certificate", n)
		}
	}

	for _, tc := range []struct {
		name  string
		setup func()
		want  string
	}{
		{"another CA", func() { issue(other, "n2", "10.0.0.2") }, "server n2: " + filepath.Join(certs, "n2.pem") + ": x509: certificate signed by unknown authority"},
		{"another host", func() { issue(ca, "n2", "10.9.9.9") }, "certificate is valid for"},
		{"missing", func() { os.Remove(filepath.Join(certs, "n2-key.pem")) }, "server n2: read key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			r := runCLI(t, "cluster", "init", "--dir", filepath.Join(t.TempDir(), "x"), "--server", "n1=10.0.0.1", "--server", "n2=10.0.0.2",
				"--tls-ca", caFile, "--tls-certs", certs)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

func TestClusterInitBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no dir", []string{"--server", "n1=h"}, "error: --dir is required"},
		{"no server", []string{"--dir", dir}, "error: no --server given"},
		{"no equals", []string{"--dir", dir, "--server", "10.0.0.1"}, `error: --server "10.0.0.1": want NAME=HOST[:PORT]`},
		{"bad port", []string{"--dir", dir, "--server", "n1=h:http"}, `port "http" is not a number`},
		{"port range", []string{"--dir", dir, "--server", "n1=h:70000"}, `port "70000" is not a number from 1 to 65535`},
		{"bad name", []string{"--dir", dir, "--server", "N_1=h"}, `invalid server name "N_1"`},
		{"duplicate", []string{"--dir", dir, "--server", "n1=h1", "--server", "n1=h2"}, `server "n1" is given twice`},
		{"half a CA", []string{"--dir", dir, "--server", "n1=h", "--tls-ca", "x.pem"}, "--tls-ca and --tls-ca-key go together"},
		{"certs without CA", []string{"--dir", dir, "--server", "n1=h", "--tls-certs", dir}, "--tls-certs needs --tls-ca"},
		{"certs and CA key", []string{"--dir", dir, "--server", "n1=h", "--tls-certs", dir, "--tls-ca", "x.pem", "--tls-ca-key", "k.pem"}, "exclude each other"},
		{"missing CA", []string{"--dir", dir, "--server", "n1=h", "--tls-ca", "/nonexistent/ca.pem", "--tls-ca-key", "/nonexistent/k.pem"}, "read CA certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, append([]string{"cluster", "init"}, tc.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, tc.want)
			}
			if first, _, _ := strings.Cut(r.stderr, "\n"); !strings.HasPrefix(first, "error: ") {
				t.Errorf("first line %q", first)
			}
		})
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("bad input left files: %v", got)
	}
}

func TestCreds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prod")
	if r := runCLI(t, "cluster", "init", "--dir", dir, "--server", "n1=10.0.0.1"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	// Minting needs only the account key.
	os.Remove(filepath.Join(dir, "keys/operator.nk"))
	os.Remove(filepath.Join(dir, "keys/system.nk"))
	r := runCLI(t, "node", "creds", "w1", "w2", "--dir", dir, "--expiry", "24h")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if !strings.Contains(r.stdout, "node:w1: wrote "+filepath.Join(dir, "creds/node-w1.creds")) {
		t.Errorf("output %q", r.stdout)
	}
	for _, n := range []string{"w1", "w2"} {
		c, err := auth.ReadCreds(filepath.Join(dir, "creds/node-"+n+".creds"))
		if err != nil || c.Identity != "node:"+n || c.Role != auth.RoleNode || c.Expires.IsZero() {
			t.Errorf("node-%s.creds: %+v %v", n, c, err)
		}
		cfg, _ := os.ReadFile(filepath.Join(dir, "config/node-"+n+".yaml"))
		if !strings.Contains(string(cfg), "creds: ../creds/node-"+n+".creds") || !strings.Contains(string(cfg), "tls://10.0.0.1:4222") {
			t.Errorf("config/node-%s.yaml:\n%s", n, cfg)
		}
	}
	out := filepath.Join(t.TempDir(), "w3")
	if r := runCLI(t, "node", "creds", "w3", "--dir", dir, "--out", out); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if d := cmp.Diff(map[string]os.FileMode{"ca.pem": 0o644, "creds/node-w3.creds": 0o600, "config/node-w3.yaml": 0o600}, files(t, out)); d != "" {
		t.Errorf("--out files (-want +got):\n%s", d)
	}
	if r := runCLI(t, "user", "creds", "alice", "--dir", dir); r.code != 0 {
		t.Fatal(r.stderr)
	} else if id, role, err := auth.IdentityFromCreds(filepath.Join(dir, "creds/user-alice.creds")); id != "alice" || role != auth.RoleUser || err != nil {
		t.Errorf("user-alice.creds: %q %q %v", id, role, err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"invalid node", []string{"node", "creds", "W_1", "--dir", dir}, `error: invalid node name "W_1"`},
		{"reserved user", []string{"user", "creds", "admin", "--dir", dir}, `error: invalid user name "admin": reserved`},
		{"no dir flag", []string{"node", "creds", "w1"}, "error: --dir is required"},
		{"missing dir", []string{"node", "creds", "w1", "--dir", dir + "-nope"}, "does not exist: make one with `skiff cluster init"},
		{"no keys", []string{"node", "creds", "w1", "--dir", t.TempDir()}, "keys/account.nk does not exist"},
		{"no args", []string{"user", "creds", "--dir", dir}, "takes NAME"},
		{"revoke unknown", []string{"user", "revoke", "bob", "--dir", dir}, "no credentials of bob were minted"},
		{"revoke someone else's creds", []string{"user", "revoke", "alice", "--dir", dir, "--creds", filepath.Join(out, "creds/node-w3.creds")}, "holds the credentials of node:w3, not alice"},
		{"revoke without operator key", []string{"user", "revoke", "alice", "--dir", dir}, "the operator key (keys/operator.nk) is needed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

// startFromDir runs the servers of a cluster directory in process, each from its nats.conf as
// `nats-server -c nats.conf` would from servers/NAME (relative paths are relative to it).
func startFromDir(t *testing.T, dir string, names ...string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		sdir := filepath.Join(dir, "servers", n)
		if err := os.Chdir(sdir); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile("nats.conf")
		os.Chdir(wd)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		opts.StoreDir = filepath.Join(sdir, opts.StoreDir)
		eventstest.NewServerOptions(t, opts)
	}
}

func freePort(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", hosts[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		free := true
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", h, port))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func TestClusterRevoke(t *testing.T) {
	// Three servers on one machine: loopback addresses of their own, so that they can share
	// the cluster and monitor ports as servers on three machines do.
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	clusterPort, monitorPort := freePort(t, hosts...), freePort(t, hosts...)
	dir := filepath.Join(t.TempDir(), "prod")
	args := []string{"cluster", "init", "--dir", dir, "--store-dir", "jetstream", "--resolver-dir", "jwt",
		"--cluster-port", fmt.Sprint(clusterPort), "--monitor-port", fmt.Sprint(monitorPort)}
	for i, h := range hosts {
		args = append(args, "--server", fmt.Sprintf("n%d=%s:%d", i+1, h, freePort(t, h)))
	}
	if r := runCLI(t, args...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	startFromDir(t, dir, "n1", "n2", "n3")
	if r := runCLI(t, "node", "creds", "a", "--dir", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	cfg, err := client.ReadConfig(filepath.Join(dir, "config/node-a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lastErr error
	closed := make(chan struct{})
	nc, err := nats.Connect(cfg.Server, nats.UserCredentials(cfg.Creds), nats.RootCAs(cfg.CA), nats.CustomInboxPrefix("_INBOX.node:a"),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { mu.Lock(); lastErr = err; mu.Unlock() }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(auth.ExplainConnectError(err, cfg.Creds))
	}
	defer nc.Close()
	if err := nc.Publish("skiff.ev.status.a.ns.p", nil); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "node", "revoke", "a", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("revoke: %s", r.stderr)
	}
	if !strings.Contains(r.stdout, "pushed the account JWT to 3 of 3 servers") {
		t.Errorf("revoke output %q", r.stdout)
	}
	// The connected node is thrown out, and its reconnects are refused.
	eventstest.EventuallyErr(t, 10*time.Second, "the revoked node is thrown out", func() error {
		mu.Lock()
		e := lastErr
		mu.Unlock()
		if e != nil && (errors.Is(e, nats.ErrAuthRevoked) || errors.Is(e, nats.ErrAuthorization)) {
			return nil
		}
		return fmt.Errorf("still connected (last error %v, status %v)", e, nc.Status())
	})
	nc.Close()
	<-closed
	_, err = nats.Connect(cfg.Server, nats.UserCredentials(cfg.Creds), nats.RootCAs(cfg.CA), nats.MaxReconnects(0))
	if err == nil {
		t.Fatal("a revoked node connected")
	}
	msg := auth.ExplainConnectError(err, cfg.Creds).Error()
	if !strings.HasPrefix(msg, "the server refused the credentials in "+cfg.Creds) || !strings.Contains(msg, "skiff node creds a") {
		t.Errorf("message %q", msg)
	}
	// The revocation is kept: revoking another user keeps the node's.
	if r := runCLI(t, "user", "creds", "bob", "--dir", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := runCLI(t, "user", "revoke", "bob", "--dir", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	keys, err := auth.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := auth.ReadCreds(filepath.Join(dir, "creds/node-a.creds"))
	b, _ := auth.ReadCreds(filepath.Join(dir, "creds/user-bob.creds"))
	var got []string
	for k := range keys.Revocations {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{a.PublicKey, b.PublicKey}
	slices.Sort(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("revocations (-want +got):\n%s", d)
	}
	// A node minted again after the revocation gets in.
	if r := runCLI(t, "node", "creds", "a", "--dir", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	nc2, err := nats.Connect(cfg.Server, nats.UserCredentials(cfg.Creds), nats.RootCAs(cfg.CA), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("new creds after revoke: %v", auth.ExplainConnectError(err, cfg.Creds))
	}
	nc2.Close()
}
