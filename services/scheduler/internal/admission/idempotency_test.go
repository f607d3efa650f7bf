package admission

import (
	"context"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// Two copies of one command (a client resent it: the first copy's acknowledgement was lost)
// carried out by two replicas from the same state: the copy that writes second finds the
// first's events under its own ids and reports what the first did, and the log holds each event
// once. Without an idempotency key the second would find the object written by "someone else"
// and say unchanged or not found (TestApplyLosesRaceAndDecidesAgain).
func TestCopiesOfOneCommandWriteOnce(t *testing.T) {
	for _, tt := range []struct {
		name    string
		before  func(*testing.T, *replica) // on the cluster, first
		command func(context.Context, *replica) *api.Response
		evType  string
		action  string
	}{
		{
			name: "apply",
			command: func(ctx context.Context, r *replica) *api.Response {
				return r.Apply(ctx, &api.ApplyRequest{Documents: docs(t, deploymentYAML), IdempotencyKey: "k-apply"})
			},
			evType: "DeploymentApplied", action: "created",
		},
		{
			name:   "delete",
			before: func(t *testing.T, r *replica) { r.mustApply(t, deploymentYAML) },
			command: func(ctx context.Context, r *replica) *api.Response {
				return r.Delete(ctx, &api.DeleteRequest{Kind: KindDeployment, Namespace: "default", Name: "web", IdempotencyKey: "k-delete"})
			},
			evType: "DeploymentDeleted", action: "deleted",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			other := c.replica(Config{})
			if tt.before != nil {
				tt.before(t, other)
			}
			var first *api.Response
			race := &raceAppender{Appender: c.store, before: func() {
				// The other replica carries out the first copy between this one's decision
				// and its append.
				first = tt.command(ctxT(t), other)
			}}
			r := c.replica(Config{Log: race})
			second := tt.command(ctxT(t), r)
			for _, resp := range []*api.Response{first, second} {
				if resp == nil || resp.Error != nil || len(resp.Results) != 1 || resp.Results[0].Action != tt.action {
					t.Fatalf("answers %+v and %+v, want both %s", first, second, tt.action)
				}
			}
			if first.Results[0].Seq != second.Results[0].Seq {
				t.Errorf("the copies report sequences %d and %d, want the one event's", first.Results[0].Seq, second.Results[0].Seq)
			}
			n := 0
			for _, ev := range c.history(events.KindFilter(events.KindDeployment)) {
				if ev.Type == tt.evType {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d %s events, want 1", n, tt.evType)
			}
		})
	}
}

// Event ids derived from one key differ by subject and expected sequence, so one command's
// writes never collide with each other, and differ between keys.
func TestEventIDs(t *testing.T) {
	ids := map[string]string{}
	for _, c := range []struct {
		key, subject string
		expect       uint64
	}{
		{"k", "skiff.ev.deployment.default.web", 0},
		{"k", "skiff.ev.deployment.default.web", 7},
		{"k", "skiff.ev.service.default.web", 0},
		{"k2", "skiff.ev.deployment.default.web", 0},
	} {
		id := eventID(c.key, c.subject, c.expect)
		if id != eventID(c.key, c.subject, c.expect) {
			t.Fatalf("eventID(%q, %q, %d) is not stable", c.key, c.subject, c.expect)
		}
		if prev, dup := ids[id]; dup {
			t.Errorf("%v and %s share the id %s", c, prev, id)
		}
		ids[id] = c.key + " " + c.subject
	}
}
