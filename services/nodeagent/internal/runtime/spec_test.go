package runtime_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/services/nodeagent/internal/runtime"
)

func TestProcessArgs(t *testing.T) {
	entrypoint := []string{"/entry", "-e"}
	cmd := []string{"serve", "--port=1"}
	for _, tc := range []struct {
		name                string
		entrypoint, cmd     []string
		command, args, want []string
	}{
		{name: "image defaults", entrypoint: entrypoint, cmd: cmd,
			want: []string{"/entry", "-e", "serve", "--port=1"}},
		{name: "command replaces entrypoint and drops cmd", entrypoint: entrypoint, cmd: cmd,
			command: []string{"/bin/other"}, want: []string{"/bin/other"}},
		{name: "args replace cmd", entrypoint: entrypoint, cmd: cmd,
			args: []string{"check"}, want: []string{"/entry", "-e", "check"}},
		{name: "command and args", entrypoint: entrypoint, cmd: cmd,
			command: []string{"/bin/other"}, args: []string{"a", "b"}, want: []string{"/bin/other", "a", "b"}},
		{name: "no entrypoint: cmd alone", cmd: cmd, want: []string{"serve", "--port=1"}},
		{name: "no entrypoint: args alone", cmd: cmd, args: []string{"/bin/x"}, want: []string{"/bin/x"}},
		{name: "nothing anywhere", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runtime.ProcessArgs(tc.entrypoint, tc.cmd, tc.command, tc.args)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ProcessArgs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	for _, tc := range []struct {
		name             string
		hostname         string
		image, container []string
		want             []string
	}{
		{name: "hostname first, then image, then container",
			hostname: "web-0", image: []string{"PATH=/bin"}, container: []string{"A=1"},
			want: []string{"HOSTNAME=web-0", "PATH=/bin", "A=1"}},
		{name: "container overrides image in place",
			hostname: "web-0", image: []string{"PATH=/bin", "MODE=prod"}, container: []string{"MODE=dev", "B=2"},
			want: []string{"HOSTNAME=web-0", "PATH=/bin", "MODE=dev", "B=2"}},
		{name: "container may set HOSTNAME",
			hostname: "web-0", container: []string{"HOSTNAME=custom"},
			want: []string{"HOSTNAME=custom"}},
		{name: "later duplicate in one list wins",
			container: []string{"A=1", "A=2"}, want: []string{"A=2"}},
		{name: "empty values kept", container: []string{"EMPTY="}, want: []string{"EMPTY="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runtime.MergeEnv(tc.hostname, tc.image, tc.container)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MergeEnv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	a := runtime.ContainerID("uid-1", "web")
	if a != runtime.ContainerID("uid-1", "web") {
		t.Fatal("ContainerID is not deterministic")
	}
	seen := map[string]string{}
	for _, id := range []struct{ what, id string }{
		{"uid-1/web", a},
		{"uid-1/db", runtime.ContainerID("uid-1", "db")},
		{"uid-2/web", runtime.ContainerID("uid-2", "web")},
		{"uid-1 sandbox", runtime.SandboxID("uid-1")},
		{"uid-1w/eb", runtime.ContainerID("uid-1w", "eb")},
	} {
		if other, dup := seen[id.id]; dup {
			t.Errorf("%s and %s share ID %s", id.what, other, id.id)
		}
		seen[id.id] = id.what
		if len(id.id) != 32 {
			t.Errorf("%s: ID %q is not 32 hex digits", id.what, id.id)
		}
	}
}
