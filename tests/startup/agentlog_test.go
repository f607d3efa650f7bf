package startup_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/tests/startup"
)

func TestAddAgentLog(t *testing.T) {
	log := `=== 2026-11-27T12:00:00Z: skiff-nodeagent --log-level debug
time=2026-11-27T12:00:00.100Z level=DEBUG msg="sandbox started" node=node1 pod=default/web-1 id=abc pid=42
time=2026-11-27T12:00:00.150Z level=INFO msg="pod network set up" node=node1 pod=uid-1 netns=/proc/42/ns/net ip=10.88.0.5
time=2026-11-27T12:00:00.200Z level=DEBUG msg="container created" node=node1 pod=default/web-1 container=web id=def restart=0
time=2026-11-27T12:00:09.000Z level=DEBUG msg="container created" node=node1 pod=default/web-1 container=web id=def restart=1
time=2026-11-27T12:00:00.300Z level=DEBUG msg="sandbox started" node=node1 pod=default/other id=x pid=43
time=2026-11-27T12:00:00.400Z level=WARN msg="sync pod" node=node1 pod=default/web-1 err="a \"quoted\" error"
not a log line
time=garbage level=DEBUG msg="sandbox started" node=node1 pod=default/web-2
`
	pods := []startup.Pod{{Namespace: "default", Name: "web-1", UID: "uid-1"}, {Namespace: "default", Name: "web-2", UID: "uid-2"}}
	startup.AddAgentLog(pods, log)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	want := []startup.Pod{
		{Namespace: "default", Name: "web-1", UID: "uid-1", SandboxStarted: at(100), NetworkUp: at(150), ContainerCreated: at(200)},
		{Namespace: "default", Name: "web-2", UID: "uid-2"},
	}
	if diff := cmp.Diff(want, pods); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCountLines(t *testing.T) {
	log := `time=2026-11-27T12:00:00.100Z level=DEBUG msg="pod network already set up" pod=u1
time=2026-11-27T12:00:00.200Z level=DEBUG msg="pod network already set up" pod=u2
time=2026-11-27T12:00:00.300Z level=INFO msg="pod network set up" pod=u3
time=2026-11-27T12:00:05.000Z level=DEBUG msg="pod network already set up" pod=u1
`
	got := startup.CountLines(log, "pod network already set up", t0, t0.Add(time.Second))
	if got != 2 {
		t.Errorf("CountLines = %d, want 2 (the third is outside the window, the set-up line another message)", got)
	}
}
