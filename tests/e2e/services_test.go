package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/state"
	"skiff.dev/tests/cluster"
)

// Services end to end: a Deployment of echo pods behind ClusterIP Services, skiff-netproxy on
// every node, real traffic from a node and from a pod, read back against the log and the
// kernel's table.

const svcDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: echo
          image: skiff.dev/echo:v1
          ports:
            - name: http
              containerPort: 8080
          resources:
            requests:
              cpu: 50m
              memory: 32Mi
`

// svcSoloPod is one more echo pod with its own label, so a Service can have exactly one
// endpoint (and the table an lb-1 chain that no other Service uses).
const svcSoloPod = `apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels:
    app: solo
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: echo
      image: skiff.dev/echo:v1
      ports:
        - name: http
          containerPort: 8080
`

// svcManifest is a ClusterIP Service selecting app=<app>, port → the pods' port named http.
func svcManifest(name, app string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  selector:
    app: %s
  ports:
    - name: http
      port: %d
      targetPort: http
`, name, app, port)
}

// svcCluster is a two-node cluster with a net proxy on each node, the web Deployment's three
// pods and the solo pod running.
func svcCluster(t testing.TB) *cluster.Cluster {
	t.Helper()
	c := cluster.New(t, cluster.Options{Nodes: 2})
	c.StartNetProxies()
	c.Apply(svcDeployment + "---\n" + svcSoloPod)
	c.WaitFor("3 web pods and solo running", func() bool {
		pods, err := c.PodsErr()
		if err != nil {
			return false
		}
		return len(svcPods(pods, "web")) == 3 && len(svcPods(pods, "solo")) == 1
	})
	return c
}

// svcPods are the running pods labelled app=<app>, by name.
func svcPods(pods []events.Pod, app string) []events.Pod {
	var out []events.Pod
	for _, p := range pods {
		if p.Metadata.Labels["app"] == app && running(p) && p.Metadata.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

// svcApply applies a Service, waits until its endpoints on the log have n addresses and every
// node's net proxy has synced them, and returns the ClusterIP and that EndpointsUpdated event.
func svcApply(t testing.TB, c *cluster.Cluster, name, app string, port, n int) (string, *events.Event) {
	t.Helper()
	from := c.Head()
	c.Apply(svcManifest(name, app, port))
	ev := svcWaitEndpoints(t, c, name, from, func(a []events.EndpointAddress) bool { return len(a) == n })
	svcWaitSynced(t, c, ev.Seq)
	return svcVIP(t, c, name), ev
}

// svcVIP is the ClusterIP the log holds for Service name.
func svcVIP(t testing.TB, c *cluster.Cluster, name string) string {
	t.Helper()
	var vip string
	for _, ev := range c.Events(events.ObjectSubject(events.KindService, "default", name)) {
		if a, ok := ev.Data.(*events.ServiceApplied); ok {
			vip = a.Service.Spec.ClusterIP
		}
	}
	if vip == "" {
		t.Fatalf("the log has no ClusterIP for service %s", name)
	}
	return vip
}

// svcWaitEndpoints waits for the first EndpointsUpdated of Service name after sequence after
// whose addresses satisfy ok.
func svcWaitEndpoints(t testing.TB, c *cluster.Cluster, name string, after uint64, ok func([]events.EndpointAddress) bool) *events.Event {
	t.Helper()
	var found *events.Event
	eventstest.Eventually(t, time.Minute, "endpoints of "+name, func() bool {
		for _, ev := range c.EventsSince(after, events.ObjectSubject(events.KindEndpoints, "default", name)) {
			if u, isUpd := ev.Data.(*events.EndpointsUpdated); isUpd && ok(u.Addresses) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// svcWaitSynced waits until every node's net proxy has synced sequence seq.
func svcWaitSynced(t testing.TB, c *cluster.Cluster, seq uint64) map[string]cluster.RulesSync {
	t.Helper()
	out := map[string]cluster.RulesSync{}
	for _, n := range c.Nodes() {
		out[n.Name] = c.WaitRulesSynced(n.Name, seq)
	}
	return out
}

// svcHTTP is an HTTP client whose connections are made in the network namespace at path, one
// new connection (so one new conntrack entry and one new choice of endpoint) per request.
func svcHTTP(path string, dialTimeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: cluster.DialIn(path, dialTimeout), DisableKeepAlives: true},
		Timeout:   dialTimeout + 3*time.Second,
	}
}

// svcSpread sends n requests and counts the answers per pod; it fails t on any error.
func svcSpread(t *testing.T, client *http.Client, addr string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	var errs []string
	for i := 0; i < n; i++ {
		pod, err := cluster.AskEcho(client, addr, "/req-"+strconv.Itoa(i))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		got[pod]++
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d requests to %s failed, first: %s", len(errs), n, addr, errs[0])
	}
	return got
}

// svcCheckSpread checks that every pod got at least 10% of n requests and nobody else answered.
func svcCheckSpread(t *testing.T, got map[string]int, pods []events.Pod, n int) {
	t.Helper()
	want := map[string]bool{}
	for _, p := range pods {
		want[p.Metadata.Name] = true
		if got[p.Metadata.Name] < n/10 {
			t.Errorf("pod %s answered %d of %d requests, want at least 10%%: %v", p.Metadata.Name, got[p.Metadata.Name], n, got)
		}
	}
	for pod := range got {
		if !want[pod] {
			t.Errorf("%s answered, but it is not an endpoint (%v)", pod, got)
		}
	}
}

// svcDialOutcome classifies a failed connection attempt.
func svcDialOutcome(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "connected"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error: " + err.Error()
}

// Table checks: what the log says against what the kernel holds.

// svcTable is a proxy table in a form that does not depend on slot order.
type svcTable struct {
	Verdicts    map[cluster.ServicePort]string
	Endpoints   map[cluster.ServicePort][]string // sorted IP:port
	NoEndpoints map[cluster.ServicePort]bool
}

// svcBaseChains are the chains every proxy table has, whatever its Services.
var svcBaseChains = []string{"filter-forward", "filter-output", "nat-output", "nat-postrouting", "nat-prerouting"}

// svcLogState folds the Services and Endpoints on the log, as a net proxy does.
func svcLogState(t testing.TB, c *cluster.Cluster) *state.State {
	t.Helper()
	st := state.New()
	for _, ev := range c.Events(events.KindFilter(events.KindService), events.KindFilter(events.KindEndpoints)) {
		if err := st.Apply(ev); err != nil {
			t.Logf("log event does not apply: %v", err)
		}
	}
	return st
}

// svcWant is the table the log asks for, and the chains a freshly written table has: the base
// chains and one lb-N per endpoint count N in use. Written from the manifest rules (an endpoint
// port serves the service port of the same name and protocol), not from the proxy's code.
func svcWant(st *state.State) (svcTable, []string) {
	w := svcTable{Verdicts: map[cluster.ServicePort]string{}, Endpoints: map[cluster.ServicePort][]string{}, NoEndpoints: map[cluster.ServicePort]bool{}}
	chains := slices.Clone(svcBaseChains)
	for key, svc := range st.Services {
		if net.ParseIP(svc.Spec.ClusterIP).To4() == nil {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			proto := strings.ToUpper(sp.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			p := cluster.ServicePort{VIP: svc.Spec.ClusterIP, Protocol: strings.ToLower(proto), Port: int(sp.Port)}
			var eps []string
			if e := st.Endpoints[key]; e != nil {
				for _, a := range e.Addresses {
					for _, ep := range a.Ports {
						epProto := strings.ToUpper(ep.Protocol)
						if epProto == "" {
							epProto = "TCP"
						}
						if ep.Name == sp.Name && epProto == proto {
							eps = append(eps, net.JoinHostPort(a.IP, strconv.Itoa(int(ep.Port))))
						}
					}
				}
			}
			if len(eps) == 0 {
				w.NoEndpoints[p] = true
				continue
			}
			sort.Strings(eps)
			w.Endpoints[p] = eps
			lb := "lb-" + strconv.Itoa(len(eps))
			w.Verdicts[p] = "goto " + lb
			if !slices.Contains(chains, lb) {
				chains = append(chains, lb)
			}
		}
	}
	sort.Strings(chains)
	return w, chains
}

// svcView normalizes a table read from the kernel, and reports what is wrong with its slots:
// a port's slots must be exactly 0..N-1 where its verdict is goto lb-N.
func svcView(r cluster.ServiceRules) (svcTable, []string) {
	v := svcTable{Verdicts: r.Verdicts, Endpoints: map[cluster.ServicePort][]string{}, NoEndpoints: r.NoEndpoints}
	var problems []string
	for p, slots := range r.Endpoints {
		var eps []string
		for i := 0; i < len(slots); i++ {
			ep, ok := slots[i]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: slots %v are not 0..%d", p, slots, len(slots)-1))
				break
			}
			eps = append(eps, ep)
		}
		if want := "goto lb-" + strconv.Itoa(len(slots)); r.Verdicts[p] != want {
			problems = append(problems, fmt.Sprintf("%s: %d endpoint slots but verdict %q", p, len(slots), r.Verdicts[p]))
		}
		sort.Strings(eps)
		v.Endpoints[p] = eps
	}
	return v, problems
}

// svcReadTable reads a node's table, failing t if it cannot.
func svcReadTable(t testing.TB, c *cluster.Cluster, node string) cluster.ServiceRules {
	t.Helper()
	r, err := c.ServiceRules(node)
	if err != nil {
		t.Fatalf("read the table of %s: %v", node, err)
	}
	return r
}

// svcCheckTable compares a node's table with the log; with exactChains, its chains too (true
// right after a full sync: incremental syncs keep an lb-N chain until the next full one).
func svcCheckTable(t *testing.T, c *cluster.Cluster, node string, exactChains bool) cluster.ServiceRules {
	t.Helper()
	want, wantChains := svcWant(svcLogState(t, c))
	r := svcReadTable(t, c, node)
	got, problems := svcView(r)
	for _, p := range problems {
		t.Errorf("%s: %s", node, p)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: table does not match the log (-log +table):\n%s", node, diff)
	}
	if exactChains {
		if diff := cmp.Diff(wantChains, r.Chains); diff != "" {
			t.Errorf("%s: chains (-want +got):\n%s", node, diff)
		}
	} else {
		for _, ch := range wantChains {
			if !slices.Contains(r.Chains, ch) {
				t.Errorf("%s: chain %s is missing (chains %v)", node, ch, r.Chains)
			}
		}
	}
	return r
}

// Sampling: one request after another from one network namespace, each recorded with the time
// it was sent and who answered, for measuring when traffic follows a change.

type svcSample struct {
	sent time.Time
	pod  string
	err  error
}

type svcSampler struct {
	mu      sync.Mutex
	samples []svcSample
	stop    chan struct{}
	done    chan struct{}
}

// svcStartSampling requests http://addr/ about every 5 ms until Stop.
func svcStartSampling(client *http.Client, addr string) *svcSampler {
	s := &svcSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			sent := time.Now()
			pod, err := cluster.AskEcho(client, addr, "/sample")
			s.mu.Lock()
			s.samples = append(s.samples, svcSample{sent: sent, pod: pod, err: err})
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Samples returns what was recorded so far.
func (s *svcSampler) Samples() []svcSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// Stop ends the sampling and returns every sample.
func (s *svcSampler) Stop() []svcSample {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return s.Samples()
}

// svcCountSince counts the successful samples sent at or after from, by pod.
func svcCountSince(samples []svcSample, from time.Time) (ok int, pods map[string]int, failed []svcSample) {
	pods = map[string]int{}
	for _, s := range samples {
		if s.sent.Before(from) {
			continue
		}
		if s.err != nil {
			failed = append(failed, s)
			continue
		}
		ok++
		pods[s.pod]++
	}
	return ok, pods, failed
}

// svcEndpointChange is one pod entering or leaving a Service's endpoints on the log.
type svcEndpointChange struct {
	pod   string
	added bool
	at    time.Time // the EndpointsUpdated event's time
	seq   uint64
}

// svcEndpointChanges lists who entered and left the endpoints in evs, starting from the pods in
// before.
func svcEndpointChanges(before []string, evs []*events.Event) []svcEndpointChange {
	cur := map[string]bool{}
	for _, p := range before {
		cur[p] = true
	}
	var out []svcEndpointChange
	for _, ev := range evs {
		u, ok := ev.Data.(*events.EndpointsUpdated)
		if !ok {
			continue
		}
		next := map[string]bool{}
		for _, a := range u.Addresses {
			next[a.PodName] = true
		}
		for _, p := range sortedSet(next) {
			if !cur[p] {
				out = append(out, svcEndpointChange{pod: p, added: true, at: ev.Time, seq: ev.Seq})
			}
		}
		for _, p := range sortedSet(cur) {
			if !next[p] {
				out = append(out, svcEndpointChange{pod: p, at: ev.Time, seq: ev.Seq})
			}
		}
		cur = next
	}
	return out
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// svcSettled is when traffic settled on the pods of final: the send time of the first sample
// after the last one that failed or reached another pod (the first sample if none did). ok is
// false when the last sample itself is such a one.
func svcSettled(samples []svcSample, final map[string]bool) (time.Time, bool) {
	last := -1
	for i, s := range samples {
		if s.err != nil || !final[s.pod] {
			last = i
		}
	}
	if len(samples) == 0 || last == len(samples)-1 {
		return time.Time{}, false
	}
	return samples[last+1].sent, true
}

// svcFirstAnswer is how long after the event of a pod joining the endpoints it answered a
// request first, counted to that request's send time; ok is false if it never did.
func svcFirstAnswer(ch svcEndpointChange, samples []svcSample) (time.Duration, bool) {
	for _, s := range samples {
		if s.err == nil && s.pod == ch.pod {
			return s.sent.Sub(ch.at), true
		}
	}
	return 0, false
}

// TestServices runs the checks on one cluster, in order: each subtest leaves the web
// Deployment with three ready pods behind Service web. Run alone with
//
//	go test ./e2e -run TestServices -v
func TestServices(t *testing.T) {
	c := svcCluster(t)
	vip, _ := svcApply(t, c, "web", "web", 80, 3)
	webAddr := net.JoinHostPort(vip, "80")
	node1 := svcHTTP(c.Node("node1").NetnsPath(), 2*time.Second)
	t.Logf("service web: ClusterIP %s", vip)

	t.Run("from a node every pod gets its share", func(t *testing.T) {
		const n = 300
		got := svcSpread(t, node1, webAddr, n)
		t.Logf("%d requests from node1 to %s: %v", n, webAddr, got)
		svcCheckSpread(t, got, svcPods(c.Pods(), "web"), n)
	})

	t.Run("from a pod every pod gets its share", func(t *testing.T) {
		const n = 300
		pods := svcPods(c.Pods(), "web")
		// A client pod on node2 when there is one, so its node's proxy (not node1's) is the one
		// under test; it is an endpoint itself, so some requests come back to it (hairpin).
		client := pods[0]
		for _, p := range pods {
			if p.Spec.NodeName == "node2" {
				client = p
			}
		}
		path, err := c.PodNetnsPath(client)
		if err != nil {
			t.Fatal(err)
		}
		got := svcSpread(t, svcHTTP(path, 2*time.Second), webAddr, n)
		t.Logf("%d requests from pod %s on %s to %s: %v", n, client.Metadata.Name, client.Spec.NodeName, webAddr, got)
		svcCheckSpread(t, got, pods, n)
		// The same from curl in the pod's namespace (the images have none: the node's curl).
		out, err := c.ExecInPod(client, "curl", "-sS", "--max-time", "5", "http://"+webAddr+"/curl")
		if err != nil {
			t.Fatalf("curl from pod %s: %v", client.Metadata.Name, err)
		}
		name, path2, _ := strings.Cut(strings.TrimSpace(out), " ")
		if path2 != "/curl" || !slices.ContainsFunc(pods, func(p events.Pod) bool { return p.Metadata.Name == name }) {
			t.Errorf("curl from pod %s got %q, want <one of the web pods> /curl", client.Metadata.Name, out)
		}
	})

	t.Run("CLI shows the endpoints", func(t *testing.T) {
		var want []string
		for _, p := range svcPods(c.Pods(), "web") {
			want = append(want, p.Status.PodIP+":8080")
		}
		sort.Strings(want)

		out, err := c.Skiff("get", "endpoints")
		if err != nil {
			t.Fatal(err)
		}
		rows := map[string][]string{}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"NAME", "ENDPOINTS", "AGE"}) {
			t.Errorf("skiff get endpoints header %q, want NAME ENDPOINTS AGE", lines[0])
		}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) == 3 {
				rows[f[0]] = f
			}
		}
		if row, ok := rows["web"]; !ok {
			t.Errorf("skiff get endpoints has no row for web:\n%s", out)
		} else {
			got := strings.Split(row[1], ",")
			sort.Strings(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("skiff get endpoints: web's ENDPOINTS (-pods +printed):\n%s\n%s", diff, out)
			}
		}

		out, err = c.Skiff("describe", "service", "web")
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") {
				fields[k] = strings.TrimSpace(v)
			}
		}
		got := strings.Split(fields["Endpoints"], ",")
		sort.Strings(got)
		wantFields := map[string]string{"IP": vip, "Port": "http  80/TCP", "TargetPort": "http/TCP", "Selector": "app=web"}
		gotFields := map[string]string{}
		for k := range wantFields {
			gotFields[k] = fields[k]
		}
		if diff := cmp.Diff(wantFields, gotFields); diff != "" {
			t.Errorf("skiff describe service web (-want +got):\n%s\n%s", diff, out)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("skiff describe service web: Endpoints (-pods +printed):\n%s\n%s", diff, out)
		}
	})

	t.Run("a service without endpoints rejects at once", func(t *testing.T) {
		emptyVIP, _ := svcApply(t, c, "empty", "nobody", 80, 0)
		addr := net.JoinHostPort(emptyVIP, "80")
		if r := svcReadTable(t, c, "node1"); !r.NoEndpoints[cluster.ServicePort{VIP: emptyVIP, Protocol: "tcp", Port: 80}] {
			t.Errorf("node1's set no-endpoints lacks %s tcp 80: %v", emptyVIP, r.NoEndpoints)
		}
		client := svcPods(c.Pods(), "solo")[0]
		podNS, err := c.PodNetnsPath(client)
		if err != nil {
			t.Fatal(err)
		}
		for _, from := range []struct{ name, path string }{
			{"node1", c.Node("node1").NetnsPath()},
			{"pod solo on " + client.Spec.NodeName, podNS},
		} {
			// Three seconds would be a timeout; a reject takes milliseconds.
			dial := cluster.DialIn(from.path, 3*time.Second)
			start := time.Now()
			conn, err := dial(context.Background(), "tcp", addr)
			took := time.Since(start)
			if conn != nil {
				conn.Close()
			}
			outcome := svcDialOutcome(err)
			t.Logf("from %s, connect to %s (no endpoints): %s after %v", from.name, addr, outcome, took)
			if outcome != "refused" {
				t.Errorf("from %s, connect to %s: %s (%v), want connection refused", from.name, addr, outcome, err)
			}
			if took > time.Second {
				t.Errorf("from %s, the refusal took %v, want well under a second", from.name, took)
			}
		}
	})

	t.Run("traffic follows scaling within 2s", func(t *testing.T) {
		subject := events.ObjectSubject(events.KindEndpoints, "default", "web")
		from := c.Head()
		sampler := svcStartSampling(node1, webAddr)
		defer sampler.Stop()

		// 3 -> 1: from the EndpointsUpdated that leaves one pod to the first moment every
		// request succeeds and reaches that pod.
		if _, err := c.Skiff("scale", "deployment", "web", "--replicas", "1"); err != nil {
			t.Fatal(err)
		}
		down := svcWaitEndpoints(t, c, "web", from, func(a []events.EndpointAddress) bool { return len(a) == 1 })
		remaining := down.Data.(*events.EndpointsUpdated).Addresses[0].PodName
		downSync := c.WaitRulesSynced("node1", down.Seq)
		// Enough requests after the sync that a removed pod still answering would show.
		eventstest.Eventually(t, time.Minute, "100 requests after the scale-down sync", func() bool {
			ok, _, _ := svcCountSince(sampler.Samples(), downSync.Time)
			return ok >= 100
		})
		mid := c.Head()
		upCommand := time.Now()
		downSamples := sampler.Samples()
		if ok, pods, failed := svcCountSince(downSamples, downSync.Time); len(pods) != 1 || pods[remaining] != ok || len(failed) > 0 {
			t.Errorf("after node1 synced the scale-down, requests reached %v and %d failed, want only %s", pods, len(failed), remaining)
		}
		settled, ok := svcSettled(downSamples, map[string]bool{remaining: true})
		if !ok {
			t.Fatalf("traffic never settled on %s after the scale-down", remaining)
		}
		downTook := settled.Sub(down.Time)
		if downTook > 2*time.Second {
			t.Errorf("scale 3 -> 1: requests went only to %s %v after the EndpointsUpdated, want within 2s", remaining, downTook)
		}

		// 1 -> 3: from each new pod's first EndpointsUpdated to the first request it answers.
		if _, err := c.Skiff("scale", "deployment", "web", "--replicas", "3"); err != nil {
			t.Fatal(err)
		}
		up := svcWaitEndpoints(t, c, "web", mid, func(a []events.EndpointAddress) bool { return len(a) == 3 })
		upSync := c.WaitRulesSynced("node1", up.Seq)
		eventstest.Eventually(t, time.Minute, "every pod answering after the scale-up", func() bool {
			_, pods, _ := svcCountSince(sampler.Samples(), upSync.Time)
			return len(pods) == 3
		})
		samples := sampler.Stop()
		upSamples := samples[svcIndexAt(samples, upCommand):]
		var upTook time.Duration
		joined := 0
		upChanges := svcEndpointChanges([]string{remaining}, c.EventsSince(mid, subject))
		for _, ch := range upChanges {
			if !ch.added {
				t.Errorf("pod %s left the endpoints during the scale-up (seq %d)", ch.pod, ch.seq)
				continue
			}
			joined++
			d, ok := svcFirstAnswer(ch, upSamples)
			if !ok {
				t.Errorf("pod %s joined the endpoints (seq %d) but never answered", ch.pod, ch.seq)
				continue
			}
			upTook = max(upTook, d)
			t.Logf("pod %s joined the endpoints (seq %d); its first answer to node1 came from a request sent %v after the event", ch.pod, ch.seq, ms(d))
			if d > 2*time.Second {
				t.Errorf("pod %s joined the endpoints, but answered only %v after the event, want within 2s", ch.pod, d)
			}
		}
		if joined != 2 {
			t.Errorf("%d pods joined the endpoints during the scale-up, want 2", joined)
		}
		t.Logf("scale 3 -> 1: only %s answered (and nothing failed) from %v after the EndpointsUpdated; 1 -> 3: every new pod answered within %v of its EndpointsUpdated",
			remaining, ms(max(downTook, 0)), ms(upTook))
		t.Logf("node1 synced the scale-down %v and the scale-up %v after their events", ms(downSync.Time.Sub(down.Time)), ms(upSync.Time.Sub(up.Time)))
		_, _, downFailed := svcCountSince(downSamples, time.Time{})
		_, _, upFailed := svcCountSince(upSamples, time.Time{})
		t.Logf("%d requests during the scale-down, %d failed; %d during the scale-up, %d failed", len(downSamples), len(downFailed), len(upSamples), len(upFailed))
		for i, f := range upFailed {
			if i == 5 {
				break
			}
			// Not counted against the proxy: a pod is ready (and an endpoint) once its container
			// runs, which can be before it listens; there are no readiness probes.
			after := "before any pod joined"
			for _, ch := range upChanges {
				if ch.added && !ch.at.After(f.sent) {
					after = fmt.Sprintf("%v after %s joined (seq %d)", ms(f.sent.Sub(ch.at)), ch.pod, ch.seq)
				}
			}
			t.Logf("scale-up: a request sent %s failed: %v", after, f.err)
		}
	})

	t.Run("a deleted service stops answering", func(t *testing.T) {
		goneVIP, _ := svcApply(t, c, "gone", "web", 80, 3)
		addr := net.JoinHostPort(goneVIP, "80")
		if _, err := cluster.AskEcho(node1, addr, "/before"); err != nil {
			t.Fatalf("service gone does not answer before its deletion, so its deletion proves nothing: %v", err)
		}
		from := c.Head()
		if _, err := c.Skiff("delete", "service", "gone"); err != nil {
			t.Fatal(err)
		}
		deleted := firstEvent(c.EventsSince(from, events.ObjectSubject(events.KindService, "default", "gone")), "ServiceDeleted", nil)
		if deleted == nil {
			t.Fatal("no ServiceDeleted on the log after skiff delete service gone")
		}
		for node, s := range svcWaitSynced(t, c, deleted.Seq) {
			t.Logf("%s synced the deletion %v after the event", node, ms(s.Time.Sub(deleted.Time)))
		}
		dial := cluster.DialIn(c.Node("node1").NetnsPath(), time.Second)
		start := time.Now()
		conn, err := dial(context.Background(), "tcp", addr)
		took := time.Since(start)
		if conn != nil {
			conn.Close()
		}
		outcome := svcDialOutcome(err)
		t.Logf("connect to %s after the deletion: %s after %v", addr, outcome, took)
		if err == nil {
			t.Errorf("%s still accepts connections after service gone was deleted", addr)
		}
		for _, n := range c.Nodes() {
			if r := svcReadTable(t, c, n.Name); slices.Contains(r.VIPs(), goneVIP) {
				t.Errorf("%s's table still has %s after the deletion: %+v", n.Name, goneVIP, r)
			}
		}
	})

	t.Run("a killed proxy's table keeps working and is replaced on restart", func(t *testing.T) {
		doomedVIP, _ := svcApply(t, c, "doomed", "solo", 80, 1)
		doomed := cluster.ServicePort{VIP: doomedVIP, Protocol: "tcp", Port: 80}
		before := svcReadTable(t, c, "node1")
		if before.Verdicts[doomed] != "goto lb-1" {
			t.Fatalf("node1 does not balance service doomed before the kill: %+v", before)
		}
		sampler := svcStartSampling(node1, webAddr)
		defer sampler.Stop()

		killed := time.Now()
		c.KillNetProxy("node1", syscall.SIGKILL)
		if after := svcReadTable(t, c, "node1"); !cmp.Equal(before, after) {
			t.Errorf("the table changed when the proxy was killed (-before +after):\n%s", cmp.Diff(before, after))
		}
		// While node1 has no proxy: one Service goes, another comes.
		from := c.Head()
		if _, err := c.Skiff("delete", "service", "doomed"); err != nil {
			t.Fatal(err)
		}
		c.Apply(svcManifest("fresh", "web", 8080))
		fresh := svcWaitEndpoints(t, c, "fresh", from, func(a []events.EndpointAddress) bool { return len(a) == 3 })
		c.WaitRulesSynced("node2", fresh.Seq)
		freshVIP := svcVIP(t, c, "fresh")
		if r := svcReadTable(t, c, "node1"); r.Verdicts[doomed] == "" {
			t.Fatalf("node1's table lost service doomed while no proxy ran: the restart has nothing stale to replace")
		}
		eventstest.Eventually(t, time.Minute, "50 requests to web while node1 has no proxy", func() bool {
			ok, _, _ := svcCountSince(sampler.Samples(), killed)
			return ok >= 50
		})

		restarted := time.Now()
		c.StartNetProxy("node1")
		syncs := c.Node("node1").RulesSyncs()
		t.Logf("node1's proxy was down %v; first sync after restart: %+v (%v after the start)",
			ms(restarted.Sub(killed)), syncs[0], ms(syncs[0].Time.Sub(restarted)))
		r := svcCheckTable(t, c, "node1", true)
		if r.Verdicts[doomed] != "" {
			t.Errorf("node1 still balances deleted service doomed: %+v", r)
		}
		if slices.Contains(r.Chains, "lb-1") {
			t.Errorf("node1 still has chain lb-1 (only deleted service doomed used it): %v", r.Chains)
		}
		svcCheckTable(t, c, "node2", false)
		if _, err := cluster.AskEcho(node1, net.JoinHostPort(freshVIP, "8080"), "/fresh"); err != nil {
			t.Errorf("service fresh, created while node1 had no proxy, does not answer from node1: %v", err)
		}

		checked := time.Now()
		eventstest.Eventually(t, time.Minute, "20 requests to web after the restart checks", func() bool {
			ok, _, _ := svcCountSince(sampler.Samples(), checked)
			return ok >= 20
		})
		samples := sampler.Stop()
		down, _, downFailed := svcCountSince(samples[:svcIndexAt(samples, restarted)], killed)
		total, _, failed := svcCountSince(samples, time.Time{})
		t.Logf("requests to web from node1: %d in all, %d while the proxy was down; %d failed", total, down, len(failed))
		if len(downFailed) > 0 || len(failed) > 0 {
			t.Errorf("%d requests to web failed across the kill and restart (%d while the proxy was down), first: %v",
				len(failed), len(downFailed), failed[0].err)
		}
	})

	t.Run("UDP", func(t *testing.T) {
		// The echo image answers UDP on its port too: a UDP Service on the web pods, each
		// datagram from a new socket (a new conntrack entry) answered by one of them.
		from := c.Head()
		c.Apply(`apiVersion: v1
kind: Service
metadata:
  name: udp
spec:
  selector:
    app: web
  ports:
    - name: echo
      protocol: UDP
      port: 5353
      targetPort: 8080
`)
		ev := svcWaitEndpoints(t, c, "udp", from, func(a []events.EndpointAddress) bool { return len(a) == 3 })
		svcWaitSynced(t, c, ev.Seq)
		addr := net.JoinHostPort(svcVIP(t, c, "udp"), "5353")
		dial := cluster.DialIn(c.Node("node1").NetnsPath(), 2*time.Second)
		pods := svcPods(c.Pods(), "web")
		const n = 60
		got := map[string]int{}
		for i := range n {
			name, err := udpAsk(dial, addr, "q-"+strconv.Itoa(i))
			if err != nil {
				t.Fatalf("datagram %d to %s: %v", i, addr, err)
			}
			got[name]++
		}
		t.Logf("%d datagrams from node1 to %s: %v", n, addr, got)
		for name := range got {
			if !slices.ContainsFunc(pods, func(p events.Pod) bool { return p.Metadata.Name == name }) {
				t.Errorf("answer from %q, which is no web pod", name)
			}
		}
		if len(got) < 2 {
			t.Errorf("every datagram went to one pod (%v): the Service does not balance UDP", got)
		}
	})
}

// udpAsk sends one datagram from a new socket in the dialer's namespace and returns the pod
// that answered ("<pod> <datagram>").
func udpAsk(dial func(ctx context.Context, network, address string) (net.Conn, error), addr, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := dial(ctx, "udp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	k, err := conn.Read(buf)
	if err != nil {
		return "", err
	}
	name, got, ok := strings.Cut(strings.TrimSpace(string(buf[:k])), " ")
	if !ok || got != msg {
		return "", fmt.Errorf("answer %q is not <pod> %s", buf[:k], msg)
	}
	return name, nil
}

// svcIndexAt is the index of the first sample sent at or after at.
func svcIndexAt(samples []svcSample, at time.Time) int {
	return sort.Search(len(samples), func(i int) bool { return !samples[i].sent.Before(at) })
}

// BenchmarkServiceEndpointsToRules measures how long a Service's endpoints take from the log to
// the nodes' tables and to traffic: the time from an EndpointsUpdated event to each node's net
// proxy logging the sync that covers it (ms-event-to-sync; the log prints milliseconds, so this
// is exact to about 1 ms; ms-sync-took is the part the proxy spent in that sync), and to the start of the first request from node1 that the new
// endpoints answer (ms-event-to-answer, an upper bound: requests follow each other as fast as
// they complete). Two kinds of change:
//
//   - new-service: a new Service selecting the three ready web pods (ServiceApplied, then the
//     endpoints controller's EndpointsUpdated with three addresses). None is deleted, so no
//     ClusterIP is reused.
//   - selector-flip: one existing Service whose selector is switched between the web pods and
//     the solo pod, so its endpoints change from three to one and back, as in a scaling or a
//     rollout but without waiting for pods to start.
//
// Run it as
//
//	go test ./e2e -run '^$' -bench ServiceEndpointsToRules -benchtime 10x -count 5
//
// One cluster serves every run. The reported figures are medians over the run's iterations;
// with -v the single values are logged.
func BenchmarkServiceEndpointsToRules(b *testing.B) {
	c := svcCluster(b)
	node1 := c.Node("node1").NetnsPath()
	pods := map[string]map[string]bool{"web": {}, "solo": {}}
	for app, set := range pods {
		for _, p := range svcPods(c.Pods(), app) {
			set[p.Metadata.Name] = true
		}
	}
	created := 0
	b.Run("new-service", func(b *testing.B) {
		var toSync, syncTook, toAnswer []time.Duration
		for i := 0; i < b.N; i++ {
			created++
			// An explicit ClusterIP, so the polling can start before the Service exists.
			name := fmt.Sprintf("bench-%d", created)
			vip := fmt.Sprintf("10.96.%d.%d", 100+created/200, 1+created%200)
			from := c.Head()
			sync, took, answer := svcMeasure(b, c, node1, net.JoinHostPort(vip, "80"), name, from, pods["web"], func() {
				c.Apply(strings.Replace(svcManifest(name, "web", 80), "spec:\n", "spec:\n  clusterIP: "+vip+"\n", 1))
			})
			toSync, syncTook, toAnswer = append(toSync, sync...), append(syncTook, took...), append(toAnswer, answer)
		}
		svcReport(b, toSync, syncTook, toAnswer)
	})
	c.Apply(svcManifest("flip", "solo", 80))
	flipAddr := net.JoinHostPort(svcVIP(b, c, "flip"), "80")
	app := "solo"
	b.Run("selector-flip", func(b *testing.B) {
		var toSync, syncTook, toAnswer []time.Duration
		for i := 0; i < b.N; i++ {
			app = map[string]string{"solo": "web", "web": "solo"}[app]
			from := c.Head()
			sync, took, answer := svcMeasure(b, c, node1, flipAddr, "flip", from, pods[app], func() {
				c.Apply(svcManifest("flip", app, 80))
			})
			toSync, syncTook, toAnswer = append(toSync, sync...), append(syncTook, took...), append(toAnswer, answer)
		}
		svcReport(b, toSync, syncTook, toAnswer)
	})
}

// svcMeasure follows one change of Service name, made by change after log sequence from,
// that makes its endpoints exactly pods: it requests addr from the node namespace at netns,
// from before the change until one of pods answers, then reads the EndpointsUpdated event and
// the syncs that covered it. It returns the time from the event to each node's sync, how long
// each of those syncs took in the proxy, and the time from the event to the start of the first
// request the new endpoints answered.
func svcMeasure(b *testing.B, c *cluster.Cluster, netns, addr, name string, from uint64, pods map[string]bool, change func()) (toSync, took []time.Duration, toAnswer time.Duration) {
	b.Helper()
	// Until the proxy has the Service, packets to it go to the default route, whose answers
	// (ICMP unreachable) the kernel rate-limits, so most attempts end only at the dial timeout:
	// a short one keeps the polling fine-grained, at the risk of a slow answer being retried.
	client := svcHTTP(netns, 5*time.Millisecond)
	answered := make(chan time.Time, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if pod, err := cluster.AskEcho(client, addr, "/bench"); err == nil && pods[pod] {
				answered <- start
				return
			}
		}
	}()
	change()
	var at time.Time
	select {
	case at = <-answered:
	case <-time.After(30 * time.Second):
		b.Fatalf("none of %v answered at %s within 30s", pods, addr)
	}
	ev := svcWaitEndpoints(b, c, name, from, func(a []events.EndpointAddress) bool {
		if len(a) != len(pods) {
			return false
		}
		for _, x := range a {
			if !pods[x.PodName] {
				return false
			}
		}
		return true
	})
	for _, s := range svcWaitSynced(b, c, ev.Seq) {
		toSync = append(toSync, s.Time.Sub(ev.Time))
		took = append(took, s.Took)
	}
	return toSync, took, at.Sub(ev.Time)
}

func svcReport(b *testing.B, toSync, syncTook, toAnswer []time.Duration) {
	b.ReportMetric(svcMedianMs(toSync), "ms-event-to-sync")
	b.ReportMetric(svcMedianMs(syncTook), "ms-sync-took")
	b.ReportMetric(svcMedianMs(toAnswer), "ms-event-to-answer")
	b.ReportMetric(0, "ns/op")
	b.Logf("event to sync (both nodes): %v; the syncs took %v; event to first answer from node1: %v", toSync, syncTook, toAnswer)
}

func svcMedianMs(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(m) / float64(time.Millisecond)
}
