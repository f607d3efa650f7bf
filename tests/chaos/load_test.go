package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/tests/cluster"
)

// TestLoadConcurrentApplies: 200 `skiff apply` processes started at once (50 in the short form),
// each as a user runs it, on overlapping objects: one Deployment and one Service per pair,
// clients/10 pairs, so every object is applied by 10 clients, some with equal specs and some with
// different ones (a label and, for the Deployment, an env var of its pod template; replicas 0,
// so the load is on admission and the log, not on pod start-up).
//
// Invariant: every apply ends with each of its objects created, configured or unchanged (exit
// 0), or with a clear conflict (exit 1, "Error from server (Conflict)"), nothing else; nothing is
// lost and nothing written silently: for every object, the requests that wrote it (its
// *Applied events grouped by correlation id, one id per command) are exactly the clients told
// created or configured, spec for spec; each object was created once; the last spec in the log
// is the one `skiff get` shows; an unchanged answer names a spec some write put there.
// Apply latency from exec to exit is logged (median, p90, p99, max) beside a baseline: single
// applies, one at a time, in the same cluster.
func TestLoadConcurrentApplies(t *testing.T) {
	clients := pick(50, 200)
	const perObject = 10
	pairs := clients / perObject
	c := cluster.New(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Baseline: one client at a time on a pair of its own, a spec change each time.
	var solo []time.Duration
	for i := range 5 {
		r, err := runCLI(ctx, c, loadManifest("solo", i%2, i%2), "apply", "-f", "-")
		if err != nil || r.code != 0 {
			t.Fatalf("baseline apply %d: %v %v", i, err, r)
		}
		solo = append(solo, r.took)
	}

	type client struct {
		pair, dv, sv int
		run          cliRun
		err          error
	}
	cs := make([]*client, clients)
	for k := range cs {
		j := k / pairs // 0 … perObject-1: which of the pair's clients
		cs[k] = &client{pair: k % pairs, dv: j % 4, sv: j % 3}
	}
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for _, cl := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			manifest := loadManifest(fmt.Sprintf("load-%d", cl.pair), cl.dv, cl.sv)
			<-gate
			cl.run, cl.err = runCLI(ctx, c, manifest, "apply", "-f", "-")
		}()
	}
	burst := time.Now()
	close(gate)
	wg.Wait()
	wall := time.Since(burst)

	// Every answer is a result per object or a clear conflict.
	type answer struct{ variant, action string }
	told := map[string][]answer{} // object ("deployment/load-3") → what clients were told
	var lat []time.Duration
	var cliCPU time.Duration
	var conflicts, actions = 0, map[string]int{}
	for k, cl := range cs {
		if cl.err != nil {
			t.Fatalf("client %d: %v", k, cl.err)
		}
		lat = append(lat, cl.run.took)
		cliCPU += cl.run.cpu
		name := fmt.Sprintf("load-%d", cl.pair)
		objects := []struct{ ref, key, variant string }{
			{"deployment.apps/" + name, "deployment/" + name, fmt.Sprintf("d%d", cl.dv)},
			{"service/" + name, "service/" + name, fmt.Sprintf("s%d", cl.sv)},
		}
		switch {
		case cl.run.code == 0:
			for _, o := range objects {
				if a := cl.run.results[o.ref]; a != "created" && a != "configured" && a != "unchanged" {
					t.Errorf("client %d exited 0 without a result for %s: %v", k, o.ref, cl.run)
				}
			}
		case cl.run.code == 1 && strings.HasPrefix(cl.run.stderr, "Error from server (Conflict): ") && strings.Contains(cl.run.stderr, "retry the command"):
			conflicts++
		default:
			t.Errorf("client %d: neither results nor a clear conflict: %v", k, cl.run)
			continue
		}
		// A conflict may come after some objects were written; the CLI prints those.
		for _, o := range objects {
			if a, ok := cl.run.results[o.ref]; ok {
				told[o.key] = append(told[o.key], answer{o.variant, a})
				actions[a]++
			}
		}
	}
	t.Logf("LOAD: %d clients on %d Deployments and %d Services: %d created, %d configured, %d unchanged object results; %d conflicts; "+
		"burst %v, of which the CLI processes used %v of CPU (%v each)",
		clients, pairs, pairs, actions["created"], actions["configured"], actions["unchanged"], conflicts, roundMS(wall),
		roundMS(cliCPU), roundMS(cliCPU/time.Duration(clients)))
	t.Logf("LATENCY: concurrent apply p50 %s, p90 %s, p99 %s, max %s; single apply alone (5 runs) p50 %s, max %s",
		roundMS(latencyPercentile(lat, 50)), roundMS(latencyPercentile(lat, 90)), roundMS(latencyPercentile(lat, 99)), roundMS(latencyPercentile(lat, 100)),
		roundMS(latencyPercentile(solo, 50)), roundMS(latencyPercentile(solo, 100)))

	// The log against the answers, object by object.
	rewrites := 0
	last := map[string]string{}
	for p := range pairs {
		name := fmt.Sprintf("load-%d", p)
		for _, kind := range []string{events.KindDeployment, events.KindService} {
			key := kind + "/" + name
			var groups []string          // variant written by each command, in log order of its first write
			seen := map[string]int{}     // correlation id → index in groups
			applied := map[string]bool{} // variants some write put there
			for _, ev := range c.Events(events.ObjectSubject(kind, "default", name)) {
				v, ok := appliedVariant(ev)
				if !ok {
					continue
				}
				applied[v] = true
				last[key] = v
				if i, ok := seen[ev.CorrelationID]; ok {
					// The same command wrote again after losing a race on its other object:
					// admission decides the whole command again (admission's doc).
					rewrites++
					if groups[i] != v {
						t.Errorf("%s: command %s wrote %s and then %s", key, ev.CorrelationID, groups[i], v)
					}
					continue
				}
				seen[ev.CorrelationID] = len(groups)
				groups = append(groups, v)
			}
			var wrote []string
			created := 0
			for _, a := range told[key] {
				switch a.action {
				case "created":
					created++
					wrote = append(wrote, a.variant)
				case "configured":
					wrote = append(wrote, a.variant)
				case "unchanged":
					if !applied[a.variant] {
						t.Errorf("%s: a client was told unchanged for %s, which no write put there", key, a.variant)
					}
				}
			}
			if created != 1 {
				t.Errorf("%s: %d clients were told created, want exactly 1", key, created)
			}
			inLog := slices.Clone(groups)
			sort.Strings(inLog)
			sort.Strings(wrote)
			if !slices.Equal(inLog, wrote) {
				t.Errorf("%s: commands that wrote it %v (log order %v), clients told created/configured %v: a write lost or made silently",
					key, inLog, groups, wrote)
			}
			if len(groups) > 0 && !slices.Contains(wrote, groups[len(groups)-1]) {
				t.Errorf("%s: the last spec in the log, %s, is not one a client was told was written", key, groups[len(groups)-1])
			}
		}
	}
	if rewrites > 0 {
		t.Logf("%d writes were a command writing an object again after a conflict on its other object", rewrites)
	}

	// What `skiff get` shows is the log's last spec.
	for _, kind := range []string{"deployments", "services"} {
		out, err := c.Skiff("get", kind, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Items []struct {
				Metadata events.ObjectMeta `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("skiff get %s -o json: %v", kind, err)
		}
		n := 0
		for _, it := range list.Items {
			if !strings.HasPrefix(it.Metadata.Name, "load-") {
				continue
			}
			n++
			key := strings.TrimSuffix(kind, "s") + "/" + it.Metadata.Name
			if got := it.Metadata.Labels["variant"]; got != last[key] {
				t.Errorf("skiff get shows %s with variant %s, the log's last is %s", key, got, last[key])
			}
		}
		if n != pairs {
			t.Errorf("skiff get %s lists %d load objects, want %d", kind, n, pairs)
		}
	}
}

// appliedVariant is the variant label of a DeploymentApplied or ServiceApplied event.
func appliedVariant(ev *events.Event) (string, bool) {
	switch d := ev.Data.(type) {
	case *events.DeploymentApplied:
		return d.Deployment.Metadata.Labels["variant"], true
	case *events.ServiceApplied:
		return d.Service.Metadata.Labels["variant"], true
	}
	return "", false
}

// loadManifest is a Deployment (replicas 0) and a Service called name, in variants dv and sv:
// each variant has its own label and, for the Deployment, its own pod template.
func loadManifest(name string, dv, sv int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels:
    variant: d%[2]d
spec:
  replicas: 0
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
        - name: echo
          image: skiff.dev/echo:v1
          env:
            - name: VARIANT
              value: d%[2]d
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  labels:
    variant: s%[3]d
spec:
  selector:
    app: %[1]s
  ports:
    - name: http
      port: 80
      targetPort: %[4]d
`, name, dv, sv, 8080+sv)
}
