package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/client"
	"skiff.dev/tests/cluster"
)

// Network layout: the servers' LAN lives in the run's namespaces only, so it repeats from run to
// run without clashing.
const (
	// ClientAddress is the namespace the test's own sockets (and Exec's processes) come from.
	ClientAddress = "10.212.0.2"
	// ClientPort, ClusterPort and MonitorPort are every server's ports.
	ClientPort  = 4222
	ClusterPort = 6222
	MonitorPort = 8222
)

// ServerAddress is the address of server i (1-based): 10.212.0.1i.
func ServerAddress(i int) string { return fmt.Sprintf("10.212.0.%d", 10+i) }

// Options shape a cluster. The zero value is three servers, configured by skiff cluster init:
// TLS, JWT authentication, sync_interval: always.
type Options struct {
	// Servers is the number of servers; default 3.
	Servers int
	// Timeout bounds start-up and every wait; default 60 s.
	Timeout time.Duration
}

// Cluster is a running cluster of stock nats-server processes.
type Cluster struct {
	// Dir is what `skiff cluster init` wrote: servers/NAME/nats.conf, creds/, ca.pem, keys/.
	Dir string
	// URLs are the servers' client URLs, comma-separated, as a client config holds them.
	URLs string
	// Servers in order n1, n2, ...
	Servers []*Server
	// SkiffBin and NATSServer are the binaries in use.
	SkiffBin, NATSServer string
	// ClientNetns is the namespace Connect dials from and Exec runs in.
	ClientNetns string

	t    testing.TB
	opts Options
	run  cluster.Run

	mu    sync.Mutex
	conns []*nats.Conn
}

// Server is one nats-server process in its own namespace.
type Server struct {
	Name, Address, Netns string
	// Dir is servers/NAME: the conf, its certificates, and (relative to it) the JetStream store
	// and the JWT resolver's directory.
	Dir  string
	proc *cluster.Process
}

// Start makes the cluster's configuration with `skiff cluster init`, starts one nats-server per
// namespace and waits until JetStream has a meta leader. Everything is torn down at t's cleanup,
// even when the test fails. Without root t fails.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	cluster.RequireRoot(t, "makes network namespaces")
	if opts.Servers == 0 {
		opts.Servers = 3
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: %v", tool, err)
		}
	}
	c := &Cluster{
		t: t, opts: opts,
		NATSServer: cluster.NATSServer(t),
		SkiffBin:   cluster.SkiffCLI(t),
	}
	run, err := cluster.NewRun()
	if err != nil {
		t.Fatal(err)
	}
	c.run = run
	c.Dir = filepath.Join(run.Dir, "cluster")
	c.ClientNetns = run.ID + "-client"
	t.Cleanup(c.cleanup)

	machines := []cluster.Machine{{Netns: c.ClientNetns, Port: "v-client", Address: ClientAddress}}
	var urls []string
	for i := 1; i <= opts.Servers; i++ {
		s := &Server{Name: fmt.Sprintf("n%d", i), Address: ServerAddress(i), Netns: fmt.Sprintf("%s-n%d", run.ID, i)}
		s.Dir = filepath.Join(c.Dir, "servers", s.Name)
		c.Servers = append(c.Servers, s)
		machines = append(machines, cluster.Machine{Netns: s.Netns, Port: "v-" + s.Name, Address: s.Address})
		urls = append(urls, fmt.Sprintf("tls://%s:%d", s.Address, ClientPort))
	}
	c.URLs = strings.Join(urls, ",")
	if err := cluster.SetupLAN(run.ID+"-lan", machines); err != nil {
		t.Fatalf("network: %v", err)
	}
	if err := c.initConfig(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, s := range c.Servers {
		s.proc = cluster.NewProcess(cluster.ProcessSpec{
			Name: "nats-" + s.Name, Netns: s.Netns, Dir: s.Dir,
			Argv: []string{c.NATSServer, "-c", filepath.Join(s.Dir, "nats.conf")},
			Log:  filepath.Join(run.Dir, "nats-"+s.Name+".log"),
		})
		if err := s.proc.Start(run); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitMetaLeader()
	t.Logf("natscluster %s: %d servers, meta leader elected in %v (dir %s)", run.ID, len(c.Servers), time.Since(start).Round(time.Millisecond), c.Dir)
	return c
}

// initConfig runs `skiff cluster init` for the servers. The store and resolver directories are
// relative, so each server (started in its own servers/NAME directory) gets its own.
func (c *Cluster) initConfig() error {
	args := []string{"cluster", "init", "--dir", c.Dir, "--store-dir", "jetstream", "--resolver-dir", "jwt"}
	for _, s := range c.Servers {
		args = append(args, "--server", fmt.Sprintf("%s=%s:%d", s.Name, s.Address, ClientPort))
	}
	out, err := exec.Command(c.SkiffBin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Server returns the server named name (n1, n2, ...).
func (c *Cluster) Server(name string) *Server {
	c.t.Helper()
	for _, s := range c.Servers {
		if s.Name == name {
			return s
		}
	}
	c.t.Fatalf("no server %q", name)
	return nil
}

// CA is the cluster CA's certificate file.
func (c *Cluster) CA() string { return filepath.Join(c.Dir, "ca.pem") }

// Creds is the credentials file creds/NAME.creds (admin, scheduler, sys, node-X, user-U).
func (c *Cluster) Creds(name string) string { return filepath.Join(c.Dir, "creds", name+".creds") }

// Dialer makes the test's sockets inside the client namespace.
func (c *Cluster) Dialer() nats.CustomDialer {
	return cluster.NetnsDialer(c.ClientNetns, 2*time.Second)
}

// ClientOptions are the connection options a Skiff client with creds uses against this cluster: the
// dialer into the namespaces, the CA, the creds and the inbox prefix of its identity, reconnecting
// forever.
func (c *Cluster) ClientOptions(creds string) ([]nats.Option, error) {
	opts := []nats.Option{nats.SetCustomDialer(c.Dialer()), nats.RootCAs(c.CA())}
	id := "anonymous"
	if creds != "" {
		var err error
		if id, err = client.IdentityOf(creds); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(creds), nats.CustomInboxPrefix(client.InboxPrefix(id)))
	}
	return append(opts,
		nats.Name("natscluster-test "+id),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.Timeout(5*time.Second),
	), nil
}

// Connect connects with creds (a path; see Creds; "" for none) and extra options, which come after the
// defaults of ClientOptions and so override them. The connection is closed at cleanup.
func (c *Cluster) Connect(creds string, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.ClientOptions(creds)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.URLs, append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns = append(c.conns, nc)
	c.mu.Unlock()
	return nc, nil
}

// MustConnect is Connect that fails the test on error.
func (c *Cluster) MustConnect(creds string, extra ...nats.Option) *nats.Conn {
	c.t.Helper()
	nc, err := c.Connect(creds, extra...)
	if err != nil {
		c.t.Fatalf("connect with %s: %v", filepath.Base(creds), err)
	}
	return nc
}

// Exec runs argv in the client namespace (so it reaches the servers) and returns its combined
// output.
func (c *Cluster) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + c.ClientNetns, "--"}, argv...)...)
	return cmd.CombinedOutput()
}

// Skiff runs the skiff CLI in the client namespace with args and returns its combined output.
func (c *Cluster) Skiff(ctx context.Context, args ...string) ([]byte, error) {
	out, err := c.Exec(ctx, append([]string{c.SkiffBin}, args...)...)
	if err != nil {
		return out, fmt.Errorf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Config is the client config file config/NAME.yaml (admin, scheduler, node-X, user-U).
func (c *Cluster) Config(name string) string { return filepath.Join(c.Dir, "config", name+".yaml") }

// Bootstrap runs `skiff cluster bootstrap --replicas N` with the admin config: the one step
// that creates the stream and the buckets.
func (c *Cluster) Bootstrap(replicas int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if _, err := c.Skiff(ctx, "cluster", "bootstrap", "--config", c.Config("admin"), "--replicas", fmt.Sprint(replicas)); err != nil {
		c.t.Fatal(err)
	}
}

// NodeCreds mints creds for node name (`skiff node creds`) and returns the creds file.
func (c *Cluster) NodeCreds(name string) string {
	c.t.Helper()
	if _, err := c.Skiff(context.Background(), "node", "creds", name, "--dir", c.Dir); err != nil {
		c.t.Fatal(err)
	}
	return c.Creds("node-" + name)
}

// UserCreds mints creds for CLI user name (`skiff user creds`) and returns the creds file.
func (c *Cluster) UserCreds(name string) string {
	c.t.Helper()
	if _, err := c.Skiff(context.Background(), "user", "creds", name, "--dir", c.Dir); err != nil {
		c.t.Fatal(err)
	}
	return c.Creds("user-" + name)
}

// Kill kills server name with SIGKILL and waits until it is gone.
func (c *Cluster) Kill(name string) {
	c.t.Helper()
	if err := c.Server(name).proc.Kill(); err != nil {
		c.t.Fatal(err)
	}
}

// Restart starts a stopped server again and waits until it reports the meta leader.
func (c *Cluster) Restart(name string) {
	c.t.Helper()
	s := c.Server(name)
	if err := s.proc.Start(c.run); err != nil {
		c.t.Fatal(err)
	}
	c.WaitMetaLeader()
}

// Running reports whether server name's process runs.
func (s *Server) Running() bool { return s.proc != nil && s.proc.Running() }

// Log is the server's output since its last start.
func (s *Server) Log() string { return s.proc.Log() }

// jsz is the part of the monitoring endpoint /jsz the harness reads.
type jsz struct {
	Meta *struct {
		Leader string `json:"leader"`
		Size   int    `json:"cluster_size"`
	} `json:"meta_cluster"`
}

// MetaLeader asks server s's monitoring endpoint which server it follows as JetStream meta
// leader ("" while there is none).
func (c *Cluster) MetaLeader(ctx context.Context, s *Server) (string, error) {
	var j jsz
	if err := c.monitor(ctx, s, "/jsz", &j); err != nil {
		return "", err
	}
	if j.Meta == nil {
		return "", nil
	}
	return j.Meta.Leader, nil
}

// monitor GETs path from s's monitoring port (https with the cluster CA) through the client
// namespace and decodes the JSON answer into v.
func (c *Cluster) monitor(ctx context.Context, s *Server, path string, v any) error {
	dialer := c.Dialer()
	dial := func(_ context.Context, network, addr string) (net.Conn, error) { return dialer.Dial(network, addr) }
	url := fmt.Sprintf("https://%s:%d%s", s.Address, MonitorPort, path)
	if err := cluster.NATSMonitor(ctx, dial, c.CA(), url, v); err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return nil
}

// WaitMetaLeader polls until every running server names the same running server as meta leader.
func (c *Cluster) WaitMetaLeader() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	var last error
	for {
		leader, err := c.agreedLeader(ctx)
		if err == nil {
			return leader
		}
		last = err
		select {
		case <-ctx.Done():
			c.t.Fatalf("no JetStream meta leader within %v: %v\n%s", c.opts.Timeout, last, c.logTails(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) agreedLeader(ctx context.Context) (string, error) {
	leader := ""
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		l, err := c.MetaLeader(ctx, s)
		if err != nil {
			return "", err
		}
		if l == "" {
			return "", fmt.Errorf("%s has no meta leader", s.Name)
		}
		if leader != "" && l != leader {
			return "", fmt.Errorf("servers disagree on the meta leader: %s and %s", leader, l)
		}
		leader = l
	}
	if leader == "" {
		return "", errors.New("no server is running")
	}
	for _, s := range c.Servers {
		if s.Name == leader && !s.Running() {
			return "", fmt.Errorf("the meta leader %s is not running", leader)
		}
	}
	return leader, nil
}

func (c *Cluster) logTails(lines int) string {
	var b strings.Builder
	for _, s := range c.Servers {
		if s.proc == nil {
			continue
		}
		l := strings.Split(strings.TrimRight(s.proc.Log(), "\n"), "\n")
		if len(l) > lines {
			l = l[len(l)-lines:]
		}
		fmt.Fprintf(&b, "--- %s (running: %v)\n%s\n", s.Name, s.Running(), strings.Join(l, "\n"))
	}
	return b.String()
}

func (c *Cluster) cleanup() {
	if c.t.Failed() {
		c.t.Logf("natscluster %s: server logs of a failed test:\n%s", c.run.ID, c.logTails(40))
	}
	c.mu.Lock()
	for _, nc := range c.conns {
		nc.Close()
	}
	c.mu.Unlock()
	for _, s := range c.Servers {
		if s.proc != nil {
			s.proc.Stop(10 * time.Second)
		}
	}
	c.run.Sweep(c.t.Logf)
}
