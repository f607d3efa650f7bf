package admission

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// Many applies of one new object at once, through two replicas: exactly one creates it, the
// others find it unchanged, and the log holds one event.
func TestConcurrentApplyCreatesOnce(t *testing.T) {
	c := newCluster(t)
	replicas := []*replica{c.replica(Config{}), c.replica(Config{})}
	const n = 8
	results := make([]string, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			resp := replicas[i%2].Apply(context.Background(), &api.ApplyRequest{Documents: docs(t, deploymentYAML)})
			if resp.Error != nil {
				t.Error(resp.Error)
				return
			}
			results[i] = resp.Results[0].Action
		})
	}
	close(start)
	wg.Wait()
	count := map[string]int{}
	for _, r := range results {
		count[r]++
	}
	if diff := cmp.Diff(map[string]int{"created": 1, "unchanged": n - 1}, count); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if evs := c.history(events.KindFilter(events.KindDeployment)); len(evs) != 1 {
		t.Errorf("%d DeploymentApplied events, want 1", len(evs))
	}
}

// The conflict path, forced: another replica creates the object between this replica's decision
// and its append. The append conflicts, admission waits for the other write and decides again.
func TestApplyLosesRaceAndDecidesAgain(t *testing.T) {
	for _, tt := range []struct {
		name       string
		theirs     string
		action     string
		generation int64
	}{
		{"same spec: unchanged", deploymentYAML, "unchanged", 1},
		{"other spec: configured over it", edit(t, deploymentYAML, "nginx:1.27", "nginx:1.26"), "configured", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			other := c.replica(Config{})
			race := &raceAppender{Appender: c.store, before: func() {
				if resp := other.Apply(context.Background(), &api.ApplyRequest{Documents: docs(t, tt.theirs)}); resp.Error != nil {
					t.Error(resp.Error)
				}
			}}
			r := c.replica(Config{Log: race})
			resp := r.mustApply(t, deploymentYAML)
			if got := resp.Results[0].Action; got != tt.action {
				t.Errorf("action %s, want %s", got, tt.action)
			}
			evs := c.history(events.KindFilter(events.KindDeployment))
			last := evs[len(evs)-1].Data.(*events.DeploymentApplied).Deployment
			if last.Metadata.Generation != tt.generation || last.Spec.Template.Spec.Containers[0].Image != "nginx:1.27" {
				t.Errorf("last DeploymentApplied: generation %d image %s, want %d nginx:1.27",
					last.Metadata.Generation, last.Spec.Template.Spec.Containers[0].Image, tt.generation)
			}
			if resp.Seq != evs[len(evs)-1].Seq {
				t.Errorf("response seq %d, want %d", resp.Seq, evs[len(evs)-1].Seq)
			}
		})
	}
}

// hostileAppender lets another writer change the object before every append, so admission never
// wins; it must give up after maxAttempts with a Conflict that says to retry.
type hostileAppender struct {
	Appender
	c     *cluster
	calls atomic.Int32
}

func (h *hostileAppender) Append(ctx context.Context, ev *events.Event, expect uint64) (uint64, error) {
	n := h.calls.Add(1)
	h.c.append(ev.Object, "", &events.DeploymentScaled{Replicas: n, Generation: int64(n)})
	return h.Appender.Append(ctx, ev, expect)
}

func TestApplyGivesUpAfterRepeatedConflicts(t *testing.T) {
	c := newCluster(t)
	plain := c.replica(Config{})
	plain.mustApply(t, deploymentYAML)
	hostile := &hostileAppender{Appender: c.store, c: c}
	r := c.replica(Config{Log: hostile})
	resp := r.apply(t, edit(t, deploymentYAML, "nginx:1.27", "nginx:1.28"))
	want := fmt.Sprintf(`Deployment "web" kept changing while this command was being applied (%d attempts); retry the command; nothing was written`, maxAttempts)
	if resp.Error == nil || resp.Error.Code != "Conflict" || resp.Error.Message != want {
		t.Errorf("error %v, want Conflict %q", resp.Error, want)
	}
	if got := hostile.calls.Load(); got != maxAttempts {
		t.Errorf("%d appends, want %d", got, maxAttempts)
	}
}

// failingAppender fails every append after the first `ok` ones with an error whose outcome is
// unknown.
type failingAppender struct {
	Appender
	ok    int32
	calls atomic.Int32
}

func (f *failingAppender) Append(ctx context.Context, ev *events.Event, expect uint64) (uint64, error) {
	if f.calls.Add(1) > f.ok {
		return 0, fmt.Errorf("append %s: nats: timeout: %w", ev.Type, events.ErrUnavailable)
	}
	return f.Appender.Append(ctx, ev, expect)
}

// A write that fails half-way: the answer says exactly what was written and what was not.
func TestApplyFailsHalfWay(t *testing.T) {
	c := newCluster(t)
	f := &failingAppender{Appender: c.store, ok: 2}
	r := c.replica(Config{Log: f})
	resp := r.apply(t, shopDeployment, namespaceYAML, shopService, podYAML)
	if resp.Error == nil {
		t.Fatal("apply succeeded")
	}
	wantMsg := `wrote Namespace "shop" (created), Deployment "web" (created); then writing Service "web" failed: ` +
		`append ServiceApplied: nats: timeout: unavailable; not written: Pod "web"`
	if resp.Error.Code != "Unavailable" || resp.Error.Message != wantMsg {
		t.Errorf("error %s %q,\nwant Unavailable %q", resp.Error.Code, resp.Error.Message, wantMsg)
	}
	if got := actions(resp.Results); !cmp.Equal(got, []string{"namespace/shop created", "deployment.apps/web created"}) {
		t.Errorf("results %v, want the two written", got)
	}
	if got := f.calls.Load(); got != 2+3 {
		t.Errorf("%d appends, want 2 and 3 tries of the third", got)
	}
	if h := c.head(); h != 2 || resp.Seq != 2 {
		t.Errorf("log head %d, response seq %d, want 2 and 2", h, resp.Seq)
	}
}
