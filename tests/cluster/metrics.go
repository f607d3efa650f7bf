package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"skiff.dev/events/metrics/metricstest"
)

// The ports processes serve their metrics on with Options.Metrics, on 127.0.0.1 of their own
// network namespace: the control plane's (skiff up, or scheduler i on ControlPlaneMetricsPort+i),
// and each node's agent and net proxy.
const (
	ControlPlaneMetricsPort = 9100
	AgentMetricsPort        = 9190
	NetProxyMetricsPort     = 9191
)

// metricsTarget is where one process serves its metrics.
type metricsTarget struct {
	netns string
	port  int
}

// metricsArgs returns --metrics-addr for the process name in netns when the cluster has
// Options.Metrics, and remembers where to scrape it.
func (c *Cluster) metricsArgs(name, netns string, port int) []string {
	if !c.opts.Metrics {
		return nil
	}
	c.metricsTargets.Store(name, metricsTarget{netns: netns, port: port})
	return []string{"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port)}
}

// MetricsProcesses names the processes that serve metrics (skiff-up or sched1..., and
// node1-agent, node1-netproxy, ...), sorted; none without Options.Metrics.
func (c *Cluster) MetricsProcesses() []string {
	var names []string
	c.metricsTargets.Range(func(k, _ any) bool {
		names = append(names, k.(string))
		return true
	})
	sort.Strings(names)
	return names
}

// Metrics scrapes the metrics of process (see MetricsProcesses) from inside its namespace.
func (c *Cluster) Metrics(ctx context.Context, process string) (metricstest.Families, error) {
	if !c.opts.Metrics {
		return nil, fmt.Errorf("the cluster serves no metrics: set Options.Metrics")
	}
	v, ok := c.metricsTargets.Load(process)
	if !ok {
		return nil, fmt.Errorf("process %s serves no metrics (those that do: %v)", process, c.MetricsProcesses())
	}
	tg := v.(metricsTarget)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", tg.port)
	return metricstest.Scrape(ctx, NetnsHTTPClient(tg.netns), url)
}

// NetnsHTTPClient is an HTTP client whose connections are made inside network namespace netns
// (a name under /run/netns), while the test process stays in the host's.
func NetnsHTTPClient(netns string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:       DialIn(netnsPath(netns), 2*time.Second),
			DisableKeepAlives: true,
		},
	}
}

var (
	jaegerOnce sync.Once
	jaegerBin  string
	jaegerErr  error
)

// JaegerBinary returns Jaeger all-in-one as `make jaeger` builds it: bin/jaeger from SKIFF_BIN
// when that directory has one, else built once per test process from tools/go.mod (GOWORK=off)
// next to the other binaries (a few minutes the first time on 2 cores; cached after).
func JaegerBinary(t testing.TB) string {
	t.Helper()
	b := Build(t)
	jaegerOnce.Do(func() { jaegerBin, jaegerErr = buildJaeger(b) })
	if jaegerErr != nil {
		t.Fatalf("build jaeger: %v", jaegerErr)
	}
	return jaegerBin
}

func buildJaeger(b Binaries) (string, error) {
	if src := os.Getenv("SKIFF_BIN"); src != "" {
		if p, _ := filepath.Abs(filepath.Join(src, "jaeger")); exists(p) {
			return p, nil
		}
	}
	dir := buildDir
	if dir == "" {
		dir = b.Dir()
	}
	out := filepath.Join(dir, "jaeger")
	cmd := exec.Command(goTool(), "build", "-o", out, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = filepath.Join(repoRoot(), "tools")
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cd tools && go build github.com/jaegertracing/jaeger/cmd/jaeger: %v\n%s", err, msg)
	}
	return out, nil
}
