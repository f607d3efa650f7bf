package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events/api"
)

const deployYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
`

const serviceYAML = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApply(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	dir := t.TempDir()
	web := writeFile(t, dir, "web.yaml", deployYAML+"---\n"+serviceYAML)
	bad := writeFile(t, dir, "bad.yaml", deployYAML+"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: app: web\n")
	empty := writeFile(t, dir, "empty.yaml", "# nothing yet\n")

	ok := api.Response{Seq: 42, Results: []api.Result{
		{Kind: "Deployment", Namespace: "default", Name: "web", Action: "created", Seq: 41},
		{Kind: "Service", Namespace: "default", Name: "web", Action: "unchanged"},
	}}
	invalid := api.Response{
		Results: []api.Result{{Kind: "Deployment", Namespace: "default", Name: "web", Action: "configured"}},
		Error: &api.Error{Code: "InvalidArgument", Message: "2 objects are invalid; nothing was applied", Causes: []api.Cause{
			{Document: "web.yaml#1", Field: "spec.replicas", Reason: "must be greater than or equal to 0"},
			{Document: "web.yaml#2", Field: "spec.ports[0].port", Reason: "must be between 1 and 65535"},
		}}}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		answer     api.Response
		wantSent   []api.Document // nil: nothing may be sent
		wantDryRun bool
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{
			name: "created and unchanged", args: []string{"apply", "-f", web}, answer: ok,
			wantSent: []api.Document{
				{Source: web, Index: 0, Object: json.RawMessage(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2}}`)},
				{Source: web, Index: 1, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}`)},
			},
			wantStdout: "deployment.apps/web created\nservice/web unchanged\n",
		},
		{
			name: "stdin, dry run", args: []string{"apply", "-f", "-", "--dry-run"}, stdin: serviceYAML, answer: ok,
			wantSent:   []api.Document{{Source: "-", Index: 0, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}`)}},
			wantDryRun: true,
			wantStdout: "deployment.apps/web created (server dry run)\nservice/web unchanged (server dry run)\n",
		},
		{
			name: "validation errors, one line per cause", args: []string{"apply", "-f", web}, answer: invalid,
			wantSent: []api.Document{
				{Source: web, Index: 0, Object: json.RawMessage(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2}}`)},
				{Source: web, Index: 1, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}`)},
			},
			wantStdout: "deployment.apps/web configured\n",
			wantStderr: "Error from server (InvalidArgument): 2 objects are invalid; nothing was applied\n" +
				"  web.yaml#1: spec.replicas: must be greater than or equal to 0\n" +
				"  web.yaml#2: spec.ports[0].port: must be between 1 and 65535\n",
			wantCode: 1,
		},
		{
			name: "yaml error names file and line, sends nothing", args: []string{"apply", "-f", web, "-f", bad},
			wantStderr: "error: " + bad + ": line 12: mapping values are not allowed in this context\n", wantCode: 1,
		},
		{
			name: "missing file", args: []string{"apply", "-f", filepath.Join(dir, "nope.yaml")},
			wantStderr: "error: stat " + filepath.Join(dir, "nope.yaml") + ": no such file or directory\n", wantCode: 1,
		},
		{
			name: "nothing to apply", args: []string{"apply", "-f", empty},
			wantStderr: "error: no objects passed to apply\n", wantCode: 1,
		},
		{
			name: "no -f", args: []string{"apply"},
			wantStderr: "error: name the manifests to apply with -f FILE, -f DIR or -f -\nSee 'skiff apply --help' for usage.\n", wantCode: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.requests = map[string][]json.RawMessage{}
			f.mu.Unlock()
			f.answer(api.SubjectApply, tt.answer)
			r := c.runStdin(tt.stdin, tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr || r.stdout != tt.wantStdout {
				t.Errorf("got exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
			reqs := sent[api.ApplyRequest](t, f, api.SubjectApply)
			if tt.wantSent == nil {
				if len(reqs) != 0 {
					t.Errorf("sent %d apply requests, want none", len(reqs))
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("sent %d apply requests, want 1", len(reqs))
			}
			want := api.ApplyRequest{Documents: tt.wantSent, Actor: "user/anonymous", DryRun: tt.wantDryRun}
			if diff := cmp.Diff(want, reqs[0], cmp.Transformer("json", func(m json.RawMessage) string { return string(m) })); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteScaleCordon(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	dir := t.TempDir()
	web := writeFile(t, dir, "web.yaml", deployYAML+"---\n"+serviceYAML)
	f.answer(api.SubjectDelete, api.Response{Results: []api.Result{
		{Kind: "Deployment", Namespace: "default", Name: "web", Action: "deleted"},
		{Kind: "Service", Namespace: "default", Name: "web", Action: "deleted"},
	}})
	f.answer(api.SubjectScale, api.Response{Results: []api.Result{{Kind: "Deployment", Namespace: "shop", Name: "cart", Action: "scaled"}}})
	f.answer(api.SubjectCordon, api.Response{Results: []api.Result{{Kind: "Node", Name: "n1", Action: "cordoned"}}})

	tests := []struct {
		name       string
		args       []string
		subject    string
		want       any // the request the scheduler must receive
		got        func(t *testing.T) any
		wantStdout string
	}{
		{
			name: "delete by name", args: []string{"delete", "pod", "web-a", "--grace-period", "0", "-n", "shop"}, subject: api.SubjectDelete,
			want:       api.DeleteRequest{Kind: "Pod", Namespace: "shop", Name: "web-a", GracePeriodSeconds: ptr(int64(0)), Actor: "user/anonymous"},
			got:        func(t *testing.T) any { return last(sent[api.DeleteRequest](t, f, api.SubjectDelete)) },
			wantStdout: "deployment.apps \"web\" deleted\nservice \"web\" deleted\n",
		},
		{
			name: "delete a node by KIND/NAME", args: []string{"delete", "no/n1"}, subject: api.SubjectDelete,
			want:       api.DeleteRequest{Kind: "Node", Name: "n1", Actor: "user/anonymous"},
			got:        func(t *testing.T) any { return last(sent[api.DeleteRequest](t, f, api.SubjectDelete)) },
			wantStdout: "deployment.apps \"web\" deleted\nservice \"web\" deleted\n",
		},
		{
			name: "delete by manifest", args: []string{"delete", "-f", web}, subject: api.SubjectDelete,
			want: api.DeleteRequest{Actor: "user/anonymous", Documents: []api.Document{
				{Source: web, Index: 0, Object: json.RawMessage(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2}}`)},
				{Source: web, Index: 1, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}`)},
			}},
			got:        func(t *testing.T) any { return last(sent[api.DeleteRequest](t, f, api.SubjectDelete)) },
			wantStdout: "deployment.apps \"web\" deleted\nservice \"web\" deleted\n",
		},
		{
			name: "scale", args: []string{"scale", "deployment", "cart", "--replicas", "5", "-n", "shop"}, subject: api.SubjectScale,
			want:       api.ScaleRequest{Namespace: "shop", Name: "cart", Replicas: 5, Actor: "user/anonymous"},
			got:        func(t *testing.T) any { return last(sent[api.ScaleRequest](t, f, api.SubjectScale)) },
			wantStdout: "deployment.apps/cart scaled\n",
		},
		{
			name: "cordon", args: []string{"cordon", "n1"}, subject: api.SubjectCordon,
			want:       api.CordonRequest{Node: "n1", Cordon: true, Actor: "user/anonymous"},
			got:        func(t *testing.T) any { return last(sent[api.CordonRequest](t, f, api.SubjectCordon)) },
			wantStdout: "node/n1 cordoned\n",
		},
		{
			name: "uncordon", args: []string{"uncordon", "n1"}, subject: api.SubjectCordon,
			want:       api.CordonRequest{Node: "n1", Cordon: false, Actor: "user/anonymous"},
			got:        func(t *testing.T) any { return last(sent[api.CordonRequest](t, f, api.SubjectCordon)) },
			wantStdout: "node/n1 cordoned\n", // the canned answer: the CLI prints what the scheduler did
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != 0 || r.stderr != "" || r.stdout != tt.wantStdout {
				t.Errorf("got exit %d\nstdout %q\nstderr %q\nwant exit 0, stdout %q", r.code, r.stdout, r.stderr, tt.wantStdout)
			}
			if diff := cmp.Diff(tt.want, tt.got(t), cmp.Transformer("json", func(m json.RawMessage) string { return string(m) })); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func last[T any](s []T) T {
	var zero T
	if len(s) == 0 {
		return zero
	}
	return s[len(s)-1]
}

func TestCommandErrors(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	f.answer(api.SubjectDelete, api.Response{Error: &api.Error{Code: "NotFound", Message: `pods "x" not found: not found`}})
	f.answer(api.SubjectScale, api.Response{Error: &api.Error{Code: "FailedPrecondition", Message: "deployment \"web\" is being deleted"}})
	tests := []struct {
		name       string
		args       []string
		wantStderr string
		wantCode   int
	}{
		{"server NotFound", []string{"delete", "pod", "x"}, "Error from server (NotFound): pods \"x\" not found\n", 1},
		{"server precondition", []string{"scale", "deploy/web", "--replicas", "1"}, "Error from server (FailedPrecondition): deployment \"web\" is being deleted\n", 1},
		{"scale without replicas", []string{"scale", "deploy", "web"}, "error: say how many replicas with --replicas N\nSee 'skiff scale --help' for usage.\n", 2},
		{"scale a pod", []string{"scale", "pod", "web", "--replicas", "1"}, "error: only deployments can be scaled, not pods\nSee 'skiff scale --help' for usage.\n", 2},
		{"negative replicas", []string{"scale", "deploy", "web", "--replicas=-1"}, "error: --replicas must be 0 or more, got -1\nSee 'skiff scale --help' for usage.\n", 2},
		{"delete both ways", []string{"delete", "pod", "x", "-f", "web.yaml"}, "error: give either -f FILE or KIND NAME, not both\nSee 'skiff delete --help' for usage.\n", 2},
		{"negative grace", []string{"delete", "pod", "x", "--grace-period", "-1"}, "error: --grace-period must be 0 or more seconds, got -1\nSee 'skiff delete --help' for usage.\n", 2},
		{"unknown command", []string{"gte", "pods"}, "error: unknown command \"gte\" for \"skiff\"; did you mean get?\nSee 'skiff --help' for usage.\n", 2},
		{"unknown flag", []string{"get", "pods", "--colour"}, "error: unknown flag: --colour\nSee 'skiff get --help' for usage.\n", 2},
		{"bad flag value", []string{"get", "pods", "--timeout", "soon"}, "error: invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\"\nSee 'skiff get --help' for usage.\n", 2},
		{"too many arguments", []string{"cordon", "n1", "n2"}, "error: skiff cordon takes NODE, got 2 arguments\nSee 'skiff cordon --help' for usage.\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode || r.stderr != tt.wantStderr || r.stdout != "" {
				t.Errorf("got exit %d, stdout %q\nstderr %q\nwant exit %d\nstderr %q", r.code, r.stdout, r.stderr, tt.wantCode, tt.wantStderr)
			}
		})
	}
}

// TestNobodyAnswering runs commands against a NATS server without a scheduler, and against no
// NATS server at all: each must fail with one line that says what to start.
func TestNobodyAnswering(t *testing.T) {
	c := newCluster(t) // no scheduler
	dir := t.TempDir()
	web := writeFile(t, dir, "web.yaml", deployYAML)
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"apply", []string{"apply", "-f", web}, "error: no scheduler is answering skiff.cmd.apply: is skiff-scheduler (or skiff up) running?\n"},
		{"get", []string{"get", "pods"}, "error: no scheduler is answering skiff.q.get: is skiff-scheduler (or skiff up) running?\n"},
		{"scale", []string{"scale", "deploy", "web", "--replicas", "2"}, "error: no scheduler is answering skiff.cmd.scale: is skiff-scheduler (or skiff up) running?\n"},
		{"no NATS", []string{"get", "pods", "--server", "nats://127.0.0.1:1"},
			"error: connect to NATS at nats://127.0.0.1:1: nats: no servers available for connection (is the server running? set --server, SKIFF_SERVER or server: in the config file)\n"},
		{"no NATS for the log", []string{"events", "log", "--server", "nats://127.0.0.1:1"},
			"error: connect to NATS at nats://127.0.0.1:1: nats: no servers available for connection (is the server running? set --server, SKIFF_SERVER or server: in the config file)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != 1 || r.stderr != tt.wantStderr || r.stdout != "" {
				t.Errorf("got exit %d, stdout %q\nstderr %q\nwant exit 1\nstderr %q", r.code, r.stdout, r.stderr, tt.wantStderr)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	c := newCluster(t)
	r := c.run("version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "skiff ") {
		t.Errorf("version: exit %d, stdout %q", r.code, r.stdout)
	}
	r = c.run()
	if r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") || !strings.Contains(r.stdout, "rollout") {
		t.Errorf("bare skiff: exit %d, stdout %q", r.code, r.stdout)
	}
}

// delete KIND NAME NAME... sends one request per name, as kubectl does.
func TestDeleteSeveral(t *testing.T) {
	c := newCluster(t)
	f := c.startScheduler()
	f.answer(api.SubjectDelete, api.Response{Results: []api.Result{{Kind: "Pod", Namespace: "default", Name: "x", Action: "deleted"}}})
	if r := c.run("delete", "pod", "a", "b"); r.code != 0 {
		t.Fatalf("delete pod a b: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := c.run("delete", "pod/c", "deploy/d"); r.code != 0 {
		t.Fatalf("delete pod/c deploy/d: exit %d, stderr %q", r.code, r.stderr)
	}
	var got []string
	for _, r := range sent[api.DeleteRequest](t, f, api.SubjectDelete) {
		got = append(got, r.Kind+"/"+r.Name)
	}
	if want := "Pod/a Pod/b Pod/c Deployment/d"; strings.Join(got, " ") != want {
		t.Fatalf("requests %v, want %s", got, want)
	}
}
