package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/datacenter"
)

// unreachableFor is the pod spec that tolerates an unreachable node for seconds (Kubernetes'
// default is 300).
func unreachableFor(seconds int) string {
	return fmt.Sprintf(`      tolerations:
        - key: node.kubernetes.io/unreachable
          operator: Exists
          effect: NoExecute
          tolerationSeconds: %d
`, seconds)
}

// TestNodePartitioned: vm3 is cut off the network (every packet on its LAN interface dropped in
// its namespace) while a Deployment of 6 pods runs there and on the two other VMs, then healed.
// Leases: renewed every 2 s, a node NotReady after 25 s without one; the pods tolerate an
// unreachable node for 15 s. (The lease timeout must outlast a client's detection of a dead
// server, about 20 s with events/client's pings: an agent connected to vm3's NATS server is cut
// off from its lease bucket until it has moved to another server. With 6 s, vm2 was marked
// NotReady and its pods evicted too.)
//
// Invariant: vm3 becomes NotReady; its pods are replaced on vm1 and vm2; once it is NotReady the
// Service routes no request to its unreachable copies; after the heal its stale containers are
// stopped, and the cluster converges to exactly 6 pods, every node running exactly the pods the
// log places there.
func TestNodePartitioned(t *testing.T) {
	c := up(t, datacenter.Options{Args: map[string][]string{
		"skiff-scheduler/scheduler": {"--lease-timeout=25s"},
		"skiff-node/nodeagent":      {"--lease-interval=2s"},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const replicas = 6
	// Long enough that no replacement joins the endpoints while requests are checked below.
	const toleration = 15 * time.Second
	apply(ctx, t, c, deploymentWith("web", replicas, "v1", unreachableFor(int(toleration/time.Second))))
	waitConverged(ctx, t, c, "web", replicas, "v1")
	before, err := pods(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	cut := c.VM("vm3")
	stale := map[string]bool{}
	for _, p := range before {
		if p.Spec.NodeName == cut.Name {
			stale[p.Metadata.Name] = true
		}
	}
	if len(stale) == 0 {
		t.Fatalf("no pod of web runs on %s: nothing to partition away", cut.Name)
	}
	vip := clusterIP(ctx, t, c, "web")
	client := c.VMs[0].HTTPClient(time.Second)

	c.Partition(cut)
	partitioned := time.Now()
	t.Logf("partitioned %s, which runs %d pods of web", cut.Name, len(stale))

	if !cluster.PollContext(ctx, func() bool {
		ready, err := nodeReady(ctx, c, cut.Name)
		return err == nil && !ready
	}) {
		t.Fatalf("%s never became NotReady", cut.Name)
	}
	// Times come from the log: what a poll through the CLI sees is later by its own delays.
	notReady := firstEvent(ctx, t, c, partitioned, func(ev *events.Event) bool {
		_, ok := ev.Data.(*events.NodeNotReady)
		return ok && ev.Object.Name == cut.Name
	})
	t.Logf("%s NotReady %s after the partition", cut.Name, after(notReady, partitioned))
	if other := firstEvent(ctx, t, c, partitioned, func(ev *events.Event) bool {
		_, ok := ev.Data.(*events.NodeNotReady)
		return ok && ev.Object.Name != cut.Name
	}); other != nil {
		t.Errorf("%s, which was not cut off, became NotReady %s after the partition (seq %d)", other.Object.Name, after(other, partitioned), other.Seq)
	}

	// Once the node is NotReady its pods leave the endpoints (and the proxies' rules) soon; from
	// the moment they have, no request may reach them.
	if !cluster.PollContext(ctx, func() bool {
		eps, err := endpointPods(ctx, c, "web")
		if err != nil {
			return false
		}
		for _, p := range eps {
			if stale[p] {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the endpoints of web still list pods of %s", cut.Name)
	}
	routedAway := firstEvent(ctx, t, c, partitioned, func(ev *events.Event) bool {
		u, ok := ev.Data.(*events.EndpointsUpdated)
		if !ok || ev.Object.Name != "web" {
			return false
		}
		for _, a := range u.Addresses {
			if stale[a.PodName] {
				return false
			}
		}
		return true
	})
	t.Logf("endpoints without %s's pods %s after the partition", cut.Name, after(routedAway, partitioned))
	// The proxies apply the endpoints change within moments of the event; until vm1's has, a
	// request may still be sent to a cut-off pod and fail (never be answered by it). Once 20
	// requests in a row have succeeded it has, and from then on none may fail.
	answered := map[string]int{}
	ask := func() error {
		pod, err := cluster.AskEcho(client, vip+":80", "/hello")
		if err != nil {
			return err
		}
		answered[pod]++
		if stale[pod] {
			t.Errorf("a request was answered by %s, a pod on the partitioned node", pod)
		}
		return nil
	}
	var early []string
	inARow := 0
	if !cluster.PollContext(ctx, func() bool {
		if err := ask(); err != nil {
			early = append(early, err.Error())
			inARow = 0
			return false
		}
		inARow++
		return inARow >= 20
	}) {
		t.Fatalf("the Service never answered 20 requests in a row after the endpoints dropped %s's pods: %v", cut.Name, early)
	}
	// Until the pods' toleration runs out no replacement exists, so every request goes to a pod
	// that was serving before the cut. A replacement joins the endpoints once it runs, which
	// without a readiness probe (as in Kubernetes) may be a moment before it listens: a refused
	// connection then is not a request routed to a cut-off pod.
	failed := 0
	deadline := time.Now().Add(5 * time.Second)
	if end := notReady.Time.Add(toleration); end.Before(deadline) {
		deadline = end
	}
	window := time.Until(deadline)
	t.Logf("requests for %v, until the toleration of the cut-off pods runs out", window.Round(time.Millisecond))
	if window < time.Second {
		t.Errorf("only %v left to check requests before replacements may join (the endpoints took %s to drop the cut-off pods)", window, after(routedAway, notReady.Time))
	}
	for time.Now().Before(deadline) {
		if err := ask(); err != nil {
			failed++
			t.Errorf("a request failed after the Service had settled: %v", err)
		}
	}
	t.Logf("ClusterIP %s from vm1 while %s is cut off: %v; %d requests failed before vm1's proxy had applied the change %v, %d after",
		vip, cut.Name, answered, len(early), early, failed)

	// Once the toleration runs out the cut-off pods are evicted and replaced on the other nodes.
	var why string
	if !cluster.PollContext(ctx, func() bool {
		now, err := pods(ctx, c)
		if err != nil {
			why = err.Error()
			return false
		}
		var ok bool
		if ok, why = converged(now, "web", replicas, "v1"); !ok {
			return false
		}
		for _, p := range now {
			if p.Metadata.Labels["app"] == "web" && p.Spec.NodeName == cut.Name {
				why = fmt.Sprintf("pod %s is still on the partitioned node %s", p.Metadata.Name, cut.Name)
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the cut-off pods were not replaced: %s", why)
	}
	t.Logf("RECOVERY: 6 pods ready on the other nodes %v after the partition (%v after NotReady, which the pods tolerate for %v)",
		time.Since(partitioned).Round(time.Millisecond), time.Since(notReady.Time).Round(time.Millisecond), toleration)

	c.Heal(cut)
	healed := time.Now()
	if !cluster.PollContext(ctx, func() bool {
		ready, err := nodeReady(ctx, c, cut.Name)
		return err == nil && ready
	}) {
		t.Fatalf("%s did not become Ready after the heal", cut.Name)
	}
	t.Logf("%s Ready %v after the heal", cut.Name, time.Since(healed).Round(time.Millisecond))
	// Its stale containers stop: checkNodes polls until every node runs exactly what the log
	// places there.
	checkNodes(ctx, t, c)
	t.Logf("RECOVERY: %s's stale containers gone, nodes equal to the log %v after the heal", cut.Name, time.Since(healed).Round(time.Millisecond))
	waitConverged(ctx, t, c, "web", replicas, "v1")
	timeline(ctx, t, c, partitioned)
	checkLog(ctx, t, c)
}

// nodeReady reports whether node name's Ready condition is True, from `skiff get nodes -o json`.
func nodeReady(ctx context.Context, c *datacenter.Cluster, name string) (bool, error) {
	out, err := c.AsAlice(ctx, "get", "nodes", "-o", "json")
	if err != nil {
		return false, err
	}
	var list struct {
		Items []events.Node `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return false, err
	}
	for _, n := range list.Items {
		if n.Metadata.Name != name {
			continue
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == "Ready" {
				return cond.Status == "True", nil
			}
		}
	}
	return false, fmt.Errorf("no node %s with a Ready condition", name)
}

// clusterIP is Service name's ClusterIP, from `skiff get service -o json`.
func clusterIP(ctx context.Context, t *testing.T, c *datacenter.Cluster, name string) string {
	t.Helper()
	out, err := c.AsAlice(ctx, "get", "service", name, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var svc events.Service
	if err := json.Unmarshal([]byte(out), &svc); err != nil || svc.Spec.ClusterIP == "" {
		t.Fatalf("no ClusterIP for service %s (%v): %s", name, err, out)
	}
	return svc.Spec.ClusterIP
}

// endpointPods are the names of the pods Endpoints name lists, from `skiff get endpoints -o json`.
func endpointPods(ctx context.Context, c *datacenter.Cluster, name string) ([]string, error) {
	out, err := c.AsAlice(ctx, "get", "endpoints", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var eps events.Endpoints
	if err := json.Unmarshal([]byte(out), &eps); err != nil {
		return nil, err
	}
	var names []string
	for _, a := range eps.Addresses {
		names = append(names, a.PodName)
	}
	return names, nil
}
