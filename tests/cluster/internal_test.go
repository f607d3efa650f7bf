package cluster

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTasks(t *testing.T) {
	out := `TASK                                PID      STATUS    
0e57027002110723794d1d96601e65cd    41523    RUNNING
13542f017a3cb1f933f52f2c15cd5346    41587    STOPPED
garbage line
`
	want := []Task{
		{ID: "0e57027002110723794d1d96601e65cd", PID: 41523, Status: "RUNNING"},
		{ID: "13542f017a3cb1f933f52f2c15cd5346", PID: 41587, Status: "STOPPED"},
	}
	if diff := cmp.Diff(want, ParseTasks(out)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/tmp/plain", "/tmp/plain"},
		{`/tmp/with\040space`, "/tmp/with space"},
		{`/tmp/tab\011and\134backslash`, "/tmp/tab\tand\\backslash"},
		{`/tmp/trailing\04`, `/tmp/trailing\04`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := unescapeMountPath(tc.in); got != tc.want {
				t.Errorf("unescapeMountPath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestProcessIdentity(t *testing.T) {
	id := processIdentity(os.Getpid())
	if id == "" {
		t.Fatal("no identity for this very process")
	}
	if pid, ok := aliveIdentity(id); !ok || pid != os.Getpid() {
		t.Errorf("aliveIdentity(%q) = %d, %v; want this process", id, pid, ok)
	}
	// Same PID, another start time: a reused PID is another process.
	if _, ok := aliveIdentity(id + "1"); ok {
		t.Errorf("an identity with another start time counts as alive")
	}
	for _, bad := range []string{"", "x 1", "-1 5", "999999999 1"} {
		if _, ok := aliveIdentity(bad); ok {
			t.Errorf("aliveIdentity(%q) is alive", bad)
		}
	}
}

func TestRunIDPattern(t *testing.T) {
	for _, tc := range []struct {
		name, want string
	}{
		{"skfe2e-1234-7-node1", "skfe2e-1234-7"},
		{"skfe2e-1234-7-lan", "skfe2e-1234-7"},
		{"skfe2e-bin-99", ""},
		{"other-1234-7-cp", ""},
	} {
		if got := runIDPattern.FindString(tc.name); got != tc.want {
			t.Errorf("run ID of %q = %q, want %q", tc.name, got, tc.want)
		}
	}
}
