package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/jwt/v2"

	"skiff.dev/events"
)

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		name    string
		role    Role
		in      string
		want    string
		wantErr string
	}{
		{name: "admin", role: RoleAdmin, want: "admin"},
		{name: "admin by name", role: RoleAdmin, in: "admin", want: "admin"},
		{name: "admin other name", role: RoleAdmin, in: "root", wantErr: `the admin identity is "admin", not "root"`},
		{name: "scheduler", role: RoleScheduler, want: "scheduler"},
		{name: "node", role: RoleNode, in: "worker-1", want: "node:worker-1"},
		{name: "node upper case", role: RoleNode, in: "Worker", wantErr: `invalid node name "Worker"`},
		{name: "node empty", role: RoleNode, wantErr: "must not be empty"},
		{name: "node with dot", role: RoleNode, in: "a.b", wantErr: "lower-case letters"},
		{name: "node with wildcard", role: RoleNode, in: "*", wantErr: "lower-case letters"},
		{name: "node leading dash", role: RoleNode, in: "-a", wantErr: "starting and ending"},
		{name: "node trailing dash", role: RoleNode, in: "a-", wantErr: "starting and ending"},
		{name: "node 63", role: RoleNode, in: strings.Repeat("a", 63), want: "node:" + strings.Repeat("a", 63)},
		{name: "node 64", role: RoleNode, in: strings.Repeat("a", 64), wantErr: "at most 63"},
		{name: "user", role: RoleUser, in: "alice", want: "alice"},
		{name: "user admin", role: RoleUser, in: "admin", wantErr: "reserved"},
		{name: "user scheduler", role: RoleUser, in: "scheduler", wantErr: "reserved"},
		{name: "user node", role: RoleUser, in: "node", wantErr: "reserved"},
		{name: "user colon", role: RoleUser, in: "node:a", wantErr: "lower-case letters"},
		{name: "unknown role", role: "root", in: "x", wantErr: "unknown role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Identity(tc.role, tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, events.ErrInvalidArgument) {
					t.Fatalf("Identity(%s, %q) = %q, %v; want invalid argument containing %q", tc.role, tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Identity(%s, %q) = %q, %v; want %q", tc.role, tc.in, got, err, tc.want)
			}
			name, err := ParseIdentity(tc.role, got)
			if err != nil {
				t.Fatalf("ParseIdentity(%s, %q): %v", tc.role, got, err)
			}
			if again, _ := Identity(tc.role, name); again != got {
				t.Errorf("ParseIdentity(%s, %q) = %q, which is identity %q", tc.role, got, name, again)
			}
		})
	}
}

func TestInboxPrefix(t *testing.T) {
	if got := InboxPrefix("node:a"); got != "_INBOX.node:a" {
		t.Errorf("InboxPrefix = %q", got)
	}
}

func TestPermissions(t *testing.T) {
	jsRead := func(s string) []string {
		return []string{"$JS.API.STREAM.INFO." + s, "$JS.API.STREAM.MSG.GET." + s, "$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>",
			"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>", "$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
			"$JS.API.CONSUMER.DELETE." + s + ".>", "$JS.API.CONSUMER.INFO." + s + ".>", "$JS.FC." + s + ".>"}
	}
	objRead := func(s string) []string {
		return []string{"$JS.API.STREAM.INFO." + s, "$JS.API.DIRECT.GET." + s + ".>", "$JS.API.CONSUMER.CREATE." + s + ".>",
			"$JS.API.CONSUMER.DELETE." + s + ".>", "$JS.FC." + s + ".>"}
	}
	objWrite := func(b string) []string {
		return []string{"$JS.API.STREAM.INFO.OBJ_" + b, "$JS.API.DIRECT.GET.OBJ_" + b + ".>", "$O." + b + ".>", "$JS.API.STREAM.PURGE.OBJ_" + b}
	}
	cat := func(parts ...[]string) jwt.StringList {
		var out jwt.StringList
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	one := &jwt.ResponsePermission{MaxMsgs: 1, Expires: responseTTL}
	for _, tc := range []struct {
		role Role
		name string
		want jwt.Permissions
	}{
		{role: RoleAdmin, want: jwt.Permissions{Pub: jwt.Permission{Allow: jwt.StringList{">"}}, Sub: jwt.Permission{Allow: jwt.StringList{">"}}}},
		{role: RoleScheduler, want: jwt.Permissions{
			Pub: jwt.Permission{Allow: cat(
				[]string{"skiff.ev.pod.>", "skiff.ev.bind.>", "skiff.ev.deployment.>", "skiff.ev.service.>", "skiff.ev.endpoints.>",
					"skiff.ev.namespace.>", "skiff.ev.node.>", "skiff.ev.leader.>", "$KV.skiff-leader.>", "$KV.skiff-leases.>", "_INBOX.>", "$JS.API.INFO"},
				jsRead("SKIFF"), jsRead("KV_skiff-leader"), jsRead("KV_skiff-leases"),
				// list dropped repeats: what objWrite and objRead share.
				objWrite("skiff-snapshots"), objRead("OBJ_skiff-snapshots")[2:],
				objWrite("skiff-snapshots-nodes"))},
			Sub: jwt.Permission{Allow: jwt.StringList{"_INBOX.scheduler.>", "skiff.cmd.>", "skiff.q.get"}},
		}},
		{role: RoleNode, name: "a", want: jwt.Permissions{
			Pub: jwt.Permission{Allow: cat([]string{
				"skiff.ev.status.a.>", "skiff.ev.node.a", "$KV.skiff-leases.a", "_INBOX.*.logs.>",
				"$JS.API.INFO", "$JS.API.STREAM.INFO.SKIFF",
				"$JS.API.CONSUMER.CREATE.SKIFF.*.skiff.ev.*.a.*.*",
				"$JS.API.CONSUMER.CREATE.SKIFF.*.skiff.ev.service.>",
				"$JS.API.CONSUMER.CREATE.SKIFF.*.skiff.ev.endpoints.>",
				"$JS.API.CONSUMER.CREATE.SKIFF.*.skiff.ev.node.>",
				"$JS.API.CONSUMER.MSG.NEXT.SKIFF.*", "$JS.API.CONSUMER.DELETE.SKIFF.*", "$JS.API.CONSUMER.INFO.SKIFF.*",
				"$JS.API.DIRECT.GET.SKIFF.skiff.ev.*.a.*.*", "$JS.API.DIRECT.GET.SKIFF.skiff.ev.bind.a.>", "$JS.API.DIRECT.GET.SKIFF.skiff.ev.status.a.>",
				"$JS.API.DIRECT.GET.SKIFF.skiff.ev.service.>", "$JS.API.DIRECT.GET.SKIFF.skiff.ev.endpoints.>",
				"$JS.API.DIRECT.GET.SKIFF.skiff.ev.node.>",
				"$JS.API.STREAM.INFO.KV_skiff-leases", "$JS.API.DIRECT.GET.KV_skiff-leases.$KV.skiff-leases.a",
			}, jsRead("OBJ_skiff-images"), objRead("OBJ_skiff-snapshots-nodes"))},
			Sub:  jwt.Permission{Allow: jwt.StringList{"_INBOX.node:a.>", "skiff.logs.a"}},
			Resp: one,
		}},
		{role: RoleUser, name: "alice", want: jwt.Permissions{
			Pub: jwt.Permission{Allow: cat(
				[]string{"skiff.cmd.*.alice", "skiff.q.get", "skiff.logs.*", "$JS.API.INFO"},
				jsRead("SKIFF"),
				[]string{"$O.skiff-images.>", "$JS.API.STREAM.PURGE.OBJ_skiff-images"},
				jsRead("OBJ_skiff-images"), objRead("OBJ_skiff-snapshots"))},
			Sub:  jwt.Permission{Allow: jwt.StringList{"_INBOX.alice.>"}},
			Resp: one,
		}},
	} {
		t.Run(string(tc.role), func(t *testing.T) {
			got, err := Permissions(tc.role, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Permissions(%s, %q) (-want +got):\n%s", tc.role, tc.name, d)
			}
			var vr jwt.ValidationResults
			got.Validate(&vr)
			if vr.IsBlocking(true) {
				t.Errorf("permissions do not validate: %v", vr.Errors())
			}
		})
	}
	if _, err := Permissions(RoleNode, "a.b"); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("Permissions(node, a.b) = %v, want invalid argument", err)
	}
}
