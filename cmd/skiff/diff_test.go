package main

import (
	"testing"
)

func TestEventsDiff(t *testing.T) {
	c := newCluster(t)
	head := c.history()
	tests := []cliCase{
		// Between 23 and 30: web scaled to 3 (a spec change and a new pod), web-b started,
		// the Service deleted (and its Endpoints with it).
		{name: "everything", args: []string{"events", "diff", "23", "30"}, golden: "diff-23-30.golden", wantCode: 1,
			wantStderr: "Between sequence 23 (2025-03-01T12:31:00Z) and sequence 30 (2025-03-01T13:00:00Z):\n" +
				"  changed  deployment/default/web\n" +
				"  changed  pod/default/web-b\n" +
				"  created  pod/default/web-c\n" +
				"  deleted  service/default/web\n" +
				"  deleted  endpoints/default/web\n"},
		{name: "one object", args: []string{"events", "diff", "23", "30", "deploy/web"}, golden: "diff-23-30-deployment-web.golden", wantCode: 1,
			wantStderr: "Between sequence 23 (2025-03-01T12:31:00Z) and sequence 30 (2025-03-01T13:00:00Z):\n" +
				"  changed  deployment/default/web\n"},
		{name: "one kind between times", args: []string{"events", "diff", "2025-03-01T12:10:30Z", "25m", "pods"}, golden: "diff-10m-35m-pods.golden", wantCode: 1,
			wantStderr: "Between sequence 13 (2025-03-01T12:10:30Z) and sequence 23 (2025-03-01T12:35:00Z):\n" +
				"  changed  pod/default/web-a\n" +
				"  changed  pod/default/web-b\n" +
				"  created  pod/shop/cart\n"},
		{name: "no differences", args: []string{"events", "diff", "23", "30", "pods", "-n", "shop"},
			wantStderr: "No differences between sequence 23 (2025-03-01T12:31:00Z) and sequence 30 (2025-03-01T13:00:00Z).\n"},
		{name: "the same point", args: []string{"events", "diff", "30", "30"},
			wantStderr: "No differences between sequence 30 (2025-03-01T13:00:00Z) and sequence 30 (2025-03-01T13:00:00Z).\n"},

		{name: "A after B", args: []string{"events", "diff", "30", "23"}, wantCode: 2,
			wantStderr: "error: A 30 is after B 23: give the earlier point first\n"},
		{name: "A after B, times", args: []string{"events", "diff", "10m", "20m"}, wantCode: 2,
			wantStderr: "error: A 2025-03-01T12:50:00Z is after B 2025-03-01T12:40:00Z: give the earlier point first\n"},
		{name: "A after B, a time and a sequence", args: []string{"events", "diff", "2025-03-01T12:45:00Z", "23"}, wantCode: 2,
			wantStderr: "error: A 2025-03-01T12:45:00Z is after B 23 (sequence 23 (2025-03-01T12:31:00Z)): give the earlier point first\n"},
		{name: "a sequence past the end", args: []string{"events", "diff", "23", "31"}, wantCode: 2,
			wantStderr: "error: B 31 is past the end of the log: its last sequence is 30\n"},
		{name: "a time before the first event", args: []string{"events", "diff", "2025-01-01T00:00:00Z", "5"}, wantCode: 2,
			wantStderr: "error: A 2025-01-01T00:00:00Z is before the first event in the log (sequence 1 at 2025-03-01T12:00:00Z)\n"},
		{name: "a malformed time", args: []string{"events", "diff", "5", "yesterday"}, wantCode: 2,
			wantStderr: "error: B \"yesterday\" is neither a sequence (120) nor a time (2025-03-01T12:00:00Z, or 10m for ten minutes ago)\n"},
		{name: "an object that existed at neither point", args: []string{"events", "diff", "16", "30", "svc/web"}, wantCode: 2,
			wantStderr: "error: service/web in namespace default existed neither at sequence 16 (2025-03-01T12:11:00Z) nor at sequence 30 (2025-03-01T13:00:00Z)\n"},
		{name: "unknown kind", args: []string{"events", "diff", "1", "2", "widgets"}, wantCode: 2,
			wantStderr: "error: the server doesn't have a resource type \"widgets\" (known: nodes, namespaces, deployments, pods, services, endpoints)\nSee 'skiff events diff --help' for usage.\n"},
	}
	c.check(t, tests)
	if h, err := c.st.Head(t.Context()); err != nil || h != head {
		t.Errorf("the log's head is %d (%v) after the diffs, want %d", h, err, head)
	}
}
