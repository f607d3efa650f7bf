package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events"
)

func progress(gen int64, replicas, updated, available int32) *events.DeploymentRolloutProgressed {
	return &events.DeploymentRolloutProgressed{Status: events.DeploymentStatus{ObservedGeneration: gen, Replicas: replicas,
		UpdatedReplicas: updated, ReadyReplicas: available, AvailableReplicas: available}}
}

func TestRolloutStatus(t *testing.T) {
	c := newCluster(t)
	c.scenario() // web: generation 1 observed, 2 of 2 updated, 1 available
	// A new image: generation 2, not yet observed.
	c.append(40*time.Minute, "user/alice", webRef, "", &events.DeploymentApplied{Deployment: webDeployment(2, 3, "nginx:1.26")})

	w := c.start("rollout", "status", "deployment", "web")
	w.waitFor(t, "Waiting for deployment spec update to be observed...")
	steps := []*events.DeploymentRolloutProgressed{
		progress(2, 3, 1, 1),
		progress(2, 3, 1, 1), // nothing new: no new line
		progress(2, 4, 3, 2),
		progress(2, 3, 3, 2),
		progress(2, 3, 3, 3),
	}
	for i, p := range steps {
		c.append(41*time.Minute+time.Duration(i)*time.Second, scheduler, webRef, "", p)
	}
	if code := w.wait(t); code != 0 {
		t.Fatalf("exit status %d; stderr: %s", code, w.err.String())
	}
	want := []string{
		`Waiting for deployment spec update to be observed...`,
		`Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...`,
		`Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...`,
		`Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...`,
		`deployment "web" successfully rolled out`,
	}
	if diff := cmp.Diff(want, lines(w.out.String())); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

func TestRolloutStatusEnds(t *testing.T) {
	c := newCluster(t)
	c.scenario()
	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{name: "timeout", args: []string{"rollout", "status", "deploy/web", "--timeout", "300ms"},
			wantStdout: "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...\n",
			wantStderr: "error: deployment \"web\" rollout did not finish within 300ms; last status: Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...\n",
			wantCode:   1},
		{name: "not found", args: []string{"rollout", "status", "deployment", "nope"},
			wantStderr: "Error from server (NotFound): deployments.apps \"nope\" not found\n", wantCode: 1},
		{name: "not a deployment", args: []string{"rollout", "status", "pod", "web-a"},
			wantStderr: "error: rollout status follows deployments only, not pods\nSee 'skiff rollout status --help' for usage.\n", wantCode: 2},
		{name: "unknown subcommand", args: []string{"rollout", "undo", "deployment", "web"},
			wantStderr: "error: unknown command \"undo\" for \"skiff rollout\"\nSee 'skiff rollout --help' for usage.\n", wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr || r.stdout != tt.wantStdout {
				t.Errorf("got exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestRolloutStatusFailures(t *testing.T) {
	c := newCluster(t)
	c.scenario()
	w := c.start("rollout", "status", "deploy", "web")
	w.waitFor(t, "1 of 2 updated replicas are available")
	p := progress(1, 2, 2, 1)
	p.Status.Conditions = []events.Condition{{Type: "Progressing", Status: "False", Reason: "ProgressDeadlineExceeded"}}
	c.append(40*time.Minute, scheduler, webRef, "", p)
	if code := w.wait(t); code != 1 || !strings.Contains(w.err.String(), `deployment "web" exceeded its progress deadline`) {
		t.Errorf("exit %d, stderr %q; want 1 and the progress deadline", code, w.err.String())
	}

	c.append(40*time.Minute, scheduler, webRef, "", progress(1, 2, 2, 1))
	w = c.start("rollout", "status", "deploy", "web")
	w.waitFor(t, "Waiting")
	c.append(41*time.Minute, "user/alice", webRef, "", &events.DeploymentDeleted{})
	if code := w.wait(t); code != 1 || w.err.String() != "error: deployment \"web\" was deleted during its rollout\n" {
		t.Errorf("exit %d, stderr %q; want 1 and the deletion", code, w.err.String())
	}
}

func TestRolloutStatusInterrupted(t *testing.T) {
	c := newCluster(t)
	c.scenario()
	w := c.start("rollout", "status", "deploy", "web")
	w.waitFor(t, "Waiting")
	if code := w.stop(t); code != exitInterrupted || w.err.String() != "" {
		t.Errorf("exit %d, stderr %q; want %d and nothing on stderr", code, w.err.String(), exitInterrupted)
	}
}
