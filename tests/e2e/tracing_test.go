package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"skiff.dev/events/telemetry"
	"skiff.dev/events/telemetry/telemetrytest"
	"skiff.dev/tests/cluster"
)

// One trace per rollout: every process of a two-node cluster exports to an in-process OTLP
// receiver (gRPC), a Deployment of 3 pods behind a Service is applied, and the trace of that
// `skiff apply` must hold the CLI, admission, the deployments controller, the scheduler, every
// agent that ran a pod and every net proxy, each span under the span that wrote the event it
// reacts to, with links where one action answers many events.
func TestTraceOfARollout(t *testing.T) {
	var recv *telemetrytest.Receiver
	c := cluster.New(t, cluster.Options{Nodes: 2, Prepare: func(c *cluster.Cluster) {
		// The receiver listens in the control plane's namespace, which every node reaches.
		recv = telemetrytest.NewListenOn(t, c.ListenControlPlane, cluster.ControlPlaneAddress)
		for _, kv := range recv.Env("grpc") {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v) // every process of the cluster (and the CLI) inherits it
		}
	}})
	c.StartNetProxies()
	c.Apply(svcManifest("web", "web", 80) + "---\n" + svcDeployment)
	c.WaitFor("3 web pods running", func() bool {
		pods, err := c.PodsErr()
		return err == nil && len(svcPods(pods, "web")) == 3
	})
	pods, _ := c.PodsErr()
	ranOn := map[string]bool{}
	for _, p := range svcPods(pods, "web") {
		ranOn[p.Spec.NodeName] = true
	}

	var tr rolloutTrace
	var missing string
	c.WaitFor("the rollout's trace to hold every part", func() bool {
		tr = newRolloutTrace(recv.Spans())
		missing = tr.missing(ranOn, len(c.Nodes()))
		return missing == ""
	})
	if missing != "" {
		t.Fatalf("trace incomplete: %s\n%s", missing, tr.dump())
	}
	tr.check(t)
	// Logs carry the trace: admission's line about the Deployment names the CLI's trace.
	for _, line := range strings.Split(c.NATSLog(), "\n") {
		if strings.Contains(line, "msg=admitted") && strings.Contains(line, "deployment/default/web") {
			if !strings.Contains(line, "trace_id="+tr.cli.TraceID) {
				t.Errorf("admission's log line lacks the trace id %s: %s", tr.cli.TraceID, line)
			}
			return
		}
	}
	t.Error("no admission log line about deployment/default/web")
}

// rolloutTrace is the trace of the CLI's `skiff apply` span among all spans received.
type rolloutTrace struct {
	all   []telemetrytest.Span
	cli   telemetrytest.Span
	spans []telemetrytest.Span // of the CLI's trace
	byID  map[string]telemetrytest.Span
}

func newRolloutTrace(all []telemetrytest.Span) rolloutTrace {
	tr := rolloutTrace{all: all, byID: map[string]telemetrytest.Span{}}
	for _, s := range all {
		tr.byID[s.SpanID] = s
		if s.Service == telemetry.ServiceCLI && s.Name == "skiff apply" {
			tr.cli = s
		}
	}
	for _, s := range all {
		if tr.cli.TraceID != "" && s.TraceID == tr.cli.TraceID {
			tr.spans = append(tr.spans, s)
		}
	}
	return tr
}

// named returns the trace's spans of service named name.
func (tr rolloutTrace) named(service, name string) []telemetrytest.Span {
	var out []telemetrytest.Span
	for _, s := range tr.spans {
		if s.Service == service && s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// childrenOf returns the spans of list whose parent is in parents.
func childrenOf(list, parents []telemetrytest.Span) []telemetrytest.Span {
	ids := map[string]bool{}
	for _, p := range parents {
		ids[p.SpanID] = true
	}
	var out []telemetrytest.Span
	for _, s := range list {
		if ids[s.ParentID] {
			out = append(out, s)
		}
	}
	return out
}

// missing says what the trace lacks yet, "" when it is whole.
func (tr rolloutTrace) missing(ranOn map[string]bool, nodes int) string {
	if tr.cli.SpanID == "" {
		return "no `skiff apply` span from the CLI"
	}
	admit := childrenOf(tr.named(telemetry.ServiceScheduler, "admit apply"), []telemetrytest.Span{tr.cli})
	if len(admit) != 1 {
		return fmt.Sprintf("%d admission spans under the CLI's, want 1", len(admit))
	}
	deploy := childrenOf(tr.named(telemetry.ServiceScheduler, "deployments reconcile"), admit)
	if len(deploy) == 0 {
		return "no deployments controller span under admission's"
	}
	sched := childrenOf(tr.named(telemetry.ServiceScheduler, "schedule pod"), deploy)
	if len(sched) < 3 {
		return fmt.Sprintf("%d schedule pod spans under the controller's, want 3", len(sched))
	}
	start := childrenOf(tr.named(telemetry.ServiceNodeAgent, "start pod"), sched)
	if len(start) < 3 {
		return fmt.Sprintf("%d start pod spans under the scheduler's, want 3", len(start))
	}
	agents := map[string]bool{}
	for _, s := range start {
		agents[s.Instance] = true
	}
	for n := range ranOn {
		if !agents[n] {
			return "no start pod span from the agent of " + n
		}
	}
	endpoints := childrenOf(tr.named(telemetry.ServiceScheduler, "endpoints reconcile"), start)
	if len(endpoints) == 0 {
		return "no endpoints controller span under an agent's"
	}
	programmed := childrenOf(tr.named(telemetry.ServiceNetProxy, "program rules"), endpoints)
	proxies := map[string]bool{}
	for _, s := range programmed {
		proxies[s.Instance] = true
	}
	if len(proxies) != nodes {
		return fmt.Sprintf("program rules spans under the endpoints controller's from %d proxies, want %d", len(proxies), nodes)
	}
	return ""
}

// check asserts the structure inside each part: the scheduler's filter and score, the agent's
// steps, the proxies' and the passes' links.
func (tr rolloutTrace) check(t *testing.T) {
	t.Helper()
	sched := tr.named(telemetry.ServiceScheduler, "schedule pod")
	for _, s := range sched {
		if s.Attrs["k8s.node.name"] == "" || s.Attrs["skiff.scheduling.nodes"] != "2" || s.Attrs["k8s.pod.name"] == "" {
			t.Errorf("schedule pod span %s lacks the chosen node, the node count or the pod: %v", s.SpanID, s.Attrs)
		}
		for _, step := range []string{"filter", "score"} {
			if len(childrenOf(tr.named(telemetry.ServiceScheduler, step), []telemetrytest.Span{s})) != 1 {
				t.Errorf("schedule pod span %s has no %s child", s.SpanID, step)
			}
		}
	}
	for _, s := range tr.named(telemetry.ServiceNodeAgent, "start pod") {
		var steps []string
		for _, c := range childrenOf(tr.spans, []telemetrytest.Span{s}) {
			steps = append(steps, c.Name)
		}
		for _, want := range []string{"create sandbox", "set up network", "ensure image", "create container", "start container"} {
			if !slices.Contains(steps, want) {
				t.Errorf("start pod span of %s (%s) lacks %q: has %v", s.Attrs["k8s.pod.name"], s.Instance, want, steps)
			}
		}
	}
	for _, s := range tr.named(telemetry.ServiceScheduler, "deployments reconcile") {
		if s.Attrs["k8s.deployment.name"] != "web" || s.Attrs["k8s.namespace.name"] != "default" {
			t.Errorf("deployments reconcile span attributes %v, want deployment web in default", s.Attrs)
		}
	}
	admit := tr.named(telemetry.ServiceScheduler, "admit apply")[0]
	if admit.Kind.String() != "SPAN_KIND_SERVER" {
		t.Errorf("admission span kind %s, want server", admit.Kind)
	}
	// Where one action answers many events, links, not a parent: each proxy's sync links the
	// endpoints controller's span it programmed, and is no child of it.
	for _, p := range tr.named(telemetry.ServiceNetProxy, "program rules") {
		if len(p.Links) != 1 {
			t.Errorf("program rules span %s has %d links, want its sync", p.SpanID, len(p.Links))
			continue
		}
		sync, ok := tr.byID[p.Links[0].SpanID]
		if !ok || sync.Name != "sync rules" || sync.ParentID != "" || !linksTo(sync, p.ParentID) {
			t.Errorf("program rules span %s: its sync %+v is no root linking the event's span %s", p.SpanID, sync, p.ParentID)
		}
		if p.Attrs["messaging.system"] != "" && p.Attrs["k8s.node.name"] != p.Instance {
			t.Errorf("program rules span of %s names node %q", p.Instance, p.Attrs["k8s.node.name"])
		}
	}
	// One scheduling batch placed the 3 pods (or a few did): together they link every
	// controller span that created pods, as roots of their own traces.
	deploy := map[string]bool{}
	for _, s := range tr.named(telemetry.ServiceScheduler, "deployments reconcile") {
		deploy[s.SpanID] = true
	}
	linked := map[string]bool{}
	for _, s := range tr.all {
		if s.Service == telemetry.ServiceScheduler && s.Name == "schedule batch" {
			if s.ParentID != "" {
				t.Errorf("schedule batch span %s has a parent", s.SpanID)
			}
			for _, l := range s.Links {
				linked[l.SpanID] = true
			}
		}
	}
	found := false
	for id := range deploy {
		found = found || linked[id]
	}
	if !found {
		t.Errorf("no schedule batch span links the deployments controller's spans %v", deploy)
	}
}

func linksTo(s telemetrytest.Span, spanID string) bool {
	for _, l := range s.Links {
		if l.SpanID == spanID {
			return true
		}
	}
	return false
}

// dump lists the trace's spans, for a failure's message.
func (tr rolloutTrace) dump() string {
	var b strings.Builder
	for _, s := range tr.spans {
		fmt.Fprintf(&b, "%s/%s %q span %s parent %s links %d\n", s.Service, s.Instance, s.Name, s.SpanID, s.ParentID, len(s.Links))
	}
	fmt.Fprintf(&b, "(%d spans received in all)\n", len(tr.all))
	return b.String()
}
