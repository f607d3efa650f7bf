package cluster

// Net proxies. New starts none: a test that needs Service virtual IPs starts skiff-netproxy on
// the nodes it wants with StartNetProxy (or all of them with StartNetProxies), and can kill and
// restart it. The proxy runs in the node's network namespace, like the agent, always at debug
// level: its "rules synced" lines are how a test learns that a change of the log has reached the
// node's nftables table (RulesSyncs, WaitRulesSynced).
//
// A node namespace has only its LAN address and the routes the agent makes to pods. A program on
// the node that connects to a ClusterIP needs a route for it before the nat output hook can
// rewrite the destination (a real machine has a default route), so StartNetProxy gives the node
// a default route via the control plane's address. Traffic to an address nobody serves goes
// there and is dropped (the control plane namespace does not forward).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"skiff.dev/events"
)

// NetProxyTable is the nftables table (family ip) skiff-netproxy programs by default.
const NetProxyTable = "skiff"

var (
	netProxyOnce sync.Once
	netProxyBin  string
	netProxyErr  error

	// proxies maps a *Node to its net proxy's *proc. It lives here rather than in Node so that
	// this file is the whole of the harness's net proxy support.
	proxies sync.Map
)

// NetProxyBinary returns skiff-netproxy, building it once per test process next to the other
// binaries Build made (so Main removes it), or taking it from SKIFF_BIN when that directory
// has one.
func NetProxyBinary(t testing.TB) string {
	t.Helper()
	b := Build(t)
	netProxyOnce.Do(func() { netProxyBin, netProxyErr = buildNetProxy(b) })
	if netProxyErr != nil {
		t.Fatalf("build skiff-netproxy: %v", netProxyErr)
	}
	return netProxyBin
}

func buildNetProxy(b Binaries) (string, error) {
	if src := os.Getenv("SKIFF_BIN"); src != "" {
		if p, _ := filepath.Abs(filepath.Join(src, "skiff-netproxy")); exists(p) {
			return p, nil
		}
	}
	// buildDir is Build's own temporary directory, which exists even with SKIFF_BIN (it holds
	// the NATS helper then); it is removed by Main and swept like the rest when left behind.
	dir := buildDir
	if dir == "" {
		dir = b.Dir()
	}
	out := filepath.Join(dir, "skiff-netproxy")
	cmd := exec.Command(goTool(), "build", "-o", out, "./services/netproxy/cmd/skiff-netproxy")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./services/netproxy/cmd/skiff-netproxy: %v\n%s", err, msg)
	}
	return out, nil
}

func proxyOf(n *Node) *proc {
	if p, ok := proxies.Load(n); ok {
		return p.(*proc)
	}
	return nil
}

// StartNetProxies starts the net proxy on every node; see StartNetProxy.
func (c *Cluster) StartNetProxies() {
	c.t.Helper()
	for _, n := range c.nodes {
		c.StartNetProxy(n.Name)
	}
}

// StartNetProxy gives the node a default route via the control plane (see the top of this
// file), starts skiff-netproxy in the node's namespace and waits until it has caught up with
// the log and synced its table once. A proxy started before is started again (it must not be
// running). The proxy is stopped when the test ends, before the cluster is torn down.
func (c *Cluster) StartNetProxy(node string) {
	c.t.Helper()
	n := c.Node(node)
	bin := NetProxyBinary(c.t)
	if err := ip("-n", n.Netns, "route", "replace", "default", "via", ControlPlaneAddress); err != nil {
		c.t.Fatalf("default route for %s: %v", node, err)
	}
	p := proxyOf(n)
	if p == nil {
		args := []string{bin, "--server", c.Server, "--creds", c.Creds("node:" + n.Name), "--tls-ca", c.CA(), "--log-level", "debug",
			"--node-name", n.Name}
		args = append(args, c.metricsArgs(n.Name+"-netproxy", n.Netns, NetProxyMetricsPort)...)
		p = c.newProc(n.Name+"-netproxy", n.Netns, args...)
		proxies.Store(n, p)
		// Registered after New's teardown, so it runs before it.
		c.t.Cleanup(func() {
			if c.t.Failed() {
				c.t.Logf("--- %s (%s)\n%s", p.name, p.logPath, tail(readFile(p.logPath), 60))
			}
			p.stop(10 * time.Second)
			proxies.Delete(n)
		})
	}
	if err := p.start(c.pidsPath()); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if !PollContext(ctx, func() bool { return len(parseRulesSyncs(p.log())) > 0 || !p.running() }) || !p.running() {
		c.t.Fatalf("net proxy of %s did not sync its rules within %v:\n%s", node, c.opts.Timeout, tail(p.log(), 60))
	}
}

// KillNetProxy sends sig to the node's net proxy; for SIGKILL, SIGTERM and SIGINT it waits
// until the proxy has exited. The proxy leaves its table behind by design.
func (c *Cluster) KillNetProxy(node string, sig syscall.Signal) {
	c.t.Helper()
	p := proxyOf(c.Node(node))
	if p == nil || !p.running() {
		c.t.Fatalf("net proxy of %s is not running", node)
	}
	wait := time.Duration(0)
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		wait = 30 * time.Second
	}
	if !p.signal(sig, wait) && wait > 0 {
		c.t.Fatalf("net proxy of %s did not exit within %v of %v", node, wait, sig)
	}
}

// NetProxyPID is the PID of the node's net proxy, 0 when it is not running.
func (n *Node) NetProxyPID() int {
	if p := proxyOf(n); p != nil {
		return p.pid()
	}
	return 0
}

// NetProxyLog is what the node's net proxy logged since it was last started.
func (n *Node) NetProxyLog() string {
	if p := proxyOf(n); p != nil {
		return p.log()
	}
	return ""
}

// RulesSync is one successful sync of a net proxy's table, from its "rules synced" log line.
type RulesSync struct {
	// Time is when the proxy logged it, right after the kernel acknowledged the transaction.
	Time time.Time
	// Seq is the last log sequence (of a Service or Endpoints event) the table reflects.
	Seq          uint64
	ServicePorts int
	// Took is how long the sync took in the proxy.
	Took time.Duration
}

// RulesSyncs lists the syncs the node's net proxy logged since it was last started.
func (n *Node) RulesSyncs() []RulesSync { return parseRulesSyncs(n.NetProxyLog()) }

// WaitRulesSynced waits until the node's net proxy has synced a table that reflects log
// sequence seq (or later), and returns the first such sync. It fails the test after
// Options.Timeout or if the proxy exits.
func (c *Cluster) WaitRulesSynced(node string, seq uint64) RulesSync {
	c.t.Helper()
	n := c.Node(node)
	var got RulesSync
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	found := func() bool {
		for _, s := range n.RulesSyncs() {
			if s.Seq >= seq {
				got = s
				return true
			}
		}
		return false
	}
	if !PollContext(ctx, func() bool { return found() || n.NetProxyPID() == 0 }) || got.Time.IsZero() {
		c.t.Fatalf("net proxy of %s did not sync sequence %d within %v:\n%s", node, seq, c.opts.Timeout, tail(n.NetProxyLog(), 40))
	}
	return got
}

// parseRulesSyncs reads the "rules synced" lines of a net proxy's log (slog's text format).
func parseRulesSyncs(log string) []RulesSync {
	var out []RulesSync
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="rules synced"`) {
			continue
		}
		var s RulesSync
		ok := true
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			var err error
			switch k {
			case "time":
				s.Time, err = time.Parse(time.RFC3339Nano, v)
			case "seq":
				s.Seq, err = strconv.ParseUint(v, 10, 64)
			case "servicePorts":
				s.ServicePorts, err = strconv.Atoi(v)
			case "took":
				s.Took, err = time.ParseDuration(v)
			}
			ok = ok && err == nil
		}
		if ok && !s.Time.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// ServicePort names a service port in the proxy's table.
type ServicePort struct {
	VIP      string
	Protocol string // "tcp" or "udp"
	Port     int
}

func (p ServicePort) String() string { return p.VIP + " " + p.Protocol + " " + strconv.Itoa(p.Port) }

// ServiceRules is what a node's net proxy table holds, read back from the kernel.
type ServiceRules struct {
	// Verdicts are the elements of map service-ips: "goto lb-N" per service port with endpoints.
	Verdicts map[ServicePort]string
	// Endpoints are the elements of map endpoints: per service port, slot → "IP:port".
	Endpoints map[ServicePort]map[int]string
	// NoEndpoints are the elements of set no-endpoints.
	NoEndpoints map[ServicePort]bool
	// Chains are the table's chains, sorted.
	Chains []string
}

// VIPs are the virtual IPs that appear anywhere in the table, sorted.
func (r ServiceRules) VIPs() []string {
	seen := map[string]bool{}
	for p := range r.Verdicts {
		seen[p.VIP] = true
	}
	for p := range r.Endpoints {
		seen[p.VIP] = true
	}
	for p := range r.NoEndpoints {
		seen[p.VIP] = true
	}
	return sortedKeys(seen)
}

// ServiceRules reads the node's net proxy table with `nft -j list table ip skiff` in the node's
// namespace. Errors: the table is missing, or nft's output does not parse.
func (c *Cluster) ServiceRules(node string) (ServiceRules, error) {
	c.t.Helper()
	out, err := c.ExecInNode(node, "nft", "-j", "list", "table", "ip", NetProxyTable)
	if err != nil {
		return ServiceRules{}, err
	}
	return ParseServiceRules([]byte(out))
}

// ParseServiceRules reads `nft -j list table` output of a net proxy table.
func ParseServiceRules(nftJSON []byte) (ServiceRules, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(nftJSON, &doc); err != nil {
		return ServiceRules{}, fmt.Errorf("nft -j output: %w", err)
	}
	r := ServiceRules{Verdicts: map[ServicePort]string{}, Endpoints: map[ServicePort]map[int]string{}, NoEndpoints: map[ServicePort]bool{}}
	type set struct {
		Name string            `json:"name"`
		Elem []json.RawMessage `json:"elem"`
	}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var ch struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(raw, &ch); err != nil {
				return r, fmt.Errorf("chain: %w", err)
			}
			r.Chains = append(r.Chains, ch.Name)
		}
		raw, ok := obj["map"]
		if !ok {
			raw, ok = obj["set"]
		}
		if !ok {
			continue
		}
		var s set
		if err := json.Unmarshal(raw, &s); err != nil {
			return r, fmt.Errorf("set: %w", err)
		}
		for _, e := range s.Elem {
			if err := r.addElement(s.Name, e); err != nil {
				return r, fmt.Errorf("%s element %s: %w", s.Name, e, err)
			}
		}
	}
	sort.Strings(r.Chains)
	return r, nil
}

func (r *ServiceRules) addElement(set string, raw json.RawMessage) error {
	switch set {
	case "no-endpoints":
		key, err := concat(raw)
		if err != nil {
			return err
		}
		p, _, err := servicePortOf(key)
		if err != nil {
			return err
		}
		r.NoEndpoints[p] = true
	case "service-ips", "endpoints":
		var kv []json.RawMessage
		if err := json.Unmarshal(raw, &kv); err != nil || len(kv) != 2 {
			return fmt.Errorf("want [key, value]")
		}
		key, err := concat(kv[0])
		if err != nil {
			return err
		}
		p, rest, err := servicePortOf(key)
		if err != nil {
			return err
		}
		if set == "service-ips" {
			var v struct {
				Goto *struct {
					Target string `json:"target"`
				} `json:"goto"`
			}
			if err := json.Unmarshal(kv[1], &v); err != nil || v.Goto == nil {
				return fmt.Errorf("want a goto verdict")
			}
			r.Verdicts[p] = "goto " + v.Goto.Target
			return nil
		}
		if len(rest) != 1 {
			return fmt.Errorf("want VIP . proto . port . slot")
		}
		slot, err := strconv.Atoi(rest[0])
		if err != nil {
			return fmt.Errorf("slot: %w", err)
		}
		val, err := concat(kv[1])
		if err != nil || len(val) != 2 {
			return fmt.Errorf("want IP . port as the value")
		}
		if r.Endpoints[p] == nil {
			r.Endpoints[p] = map[int]string{}
		}
		r.Endpoints[p][slot] = net.JoinHostPort(val[0], val[1])
	}
	return nil
}

// concat reads {"concat": [...]} into its parts as text.
func concat(raw json.RawMessage) ([]string, error) {
	var c struct {
		Concat []any `json:"concat"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.Concat == nil {
		return nil, fmt.Errorf("want a concatenation")
	}
	out := make([]string, len(c.Concat))
	for i, v := range c.Concat {
		switch v := v.(type) {
		case string:
			out[i] = v
		case float64:
			out[i] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return nil, fmt.Errorf("part %d: unexpected %T", i, v)
		}
	}
	return out, nil
}

// servicePortOf takes VIP . proto . port off the front of a key.
func servicePortOf(key []string) (ServicePort, []string, error) {
	if len(key) < 3 {
		return ServicePort{}, nil, fmt.Errorf("want VIP . proto . port")
	}
	port, err := strconv.Atoi(key[2])
	if err != nil {
		return ServicePort{}, nil, fmt.Errorf("port: %w", err)
	}
	return ServicePort{VIP: key[0], Protocol: key[1], Port: port}, key[3:], nil
}

// NetnsPath is the path of the node's network namespace.
func (n *Node) NetnsPath() string { return netnsPath(n.Netns) }

// PodNetnsPath is the path of the pod's network namespace, through its first container's
// process: the pod's own view of the network, as ExecInPod uses it.
func (c *Cluster) PodNetnsPath(pod events.Pod) (string, error) {
	c.t.Helper()
	pid, err := c.ContainerPID(pod, 0)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/%d/ns/net", pid), nil
}

// DialIn returns a dial function (for http.Transport.DialContext) whose sockets are made inside
// the network namespace at path (NetnsPath, PodNetnsPath), while the test process stays in the
// host's: a Go client that is, for the network, on that node or in that pod. A dial takes at
// most timeout, or less if ctx ends sooner.
func DialIn(path string, timeout time.Duration) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		d := netnsDialer{path: path, timeout: timeout}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d.timeout {
			d.timeout = max(time.Until(dl), time.Millisecond)
		}
		return d.Dial(network, address)
	}
}

// AskEcho GETs http://addr/path from the echo image and returns the pod that answered: the echo
// answers "<pod> <path>".
func AskEcho(client *http.Client, addr, path string) (string, error) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	name, gotPath, ok := strings.Cut(strings.TrimSpace(string(body)), " ")
	if !ok || gotPath != path {
		return "", fmt.Errorf("answer %q is not <pod> %s", body, path)
	}
	return name, nil
}
