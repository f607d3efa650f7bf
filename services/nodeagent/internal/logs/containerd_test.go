package logs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/images"
	"skiff.dev/services/nodeagent/internal/runtime"
	"skiff.dev/services/nodeagent/internal/runtime/runtimetest"
)

// TestWithContainerd runs real containers on a private containerd and reads what their shims
// wrote: the image comes from the cluster's image store as an agent fetches it, and the logs
// server finds the runtime's files, follows a restart and a real rotation, and ends with the pod.
func TestWithContainerd(t *testing.T) {
	runtimetest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	imgs := runtimetest.Images(t)
	ctd := runtimetest.StartContainerd(t)
	cfg := ctd.RuntimeConfig()
	cfg.LogMaxBytes = 100 // a few tick lines
	rt, err := runtime.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()

	// The image travels as `skiff image import` and an agent's ensureImage move it.
	h := newHarness(t, func(c *Config) { c.Dir = cfg.LogDir })
	h.srv.wait = func() <-chan time.Time { return time.After(10 * time.Millisecond) }
	nc := eventstest.Connect(t, h.ns)
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := images.OpenBucket(ctx, res.Store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.Put(ctx, obs, imgs.Testbox); err != nil {
		t.Fatal(err)
	}
	r, err := images.Get(ctx, obs, runtimetest.TestboxImage)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.ImportImage(ctx, r)
	r.Close()
	if err != nil {
		t.Fatalf("import the image from the store: %v", err)
	}

	p := runtime.PodRef{UID: pod.UID, Name: pod.Name, Namespace: pod.Namespace}
	if _, err := rt.CreateSandbox(ctx, runtime.PodSandboxConfig{Pod: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.RemoveSandbox(context.Background(), p) })
	run := func(restart int, args ...string) string {
		t.Helper()
		id, err := rt.CreateContainer(ctx, runtime.ContainerConfig{Pod: p, Name: "app", Image: runtimetest.TestboxImage,
			Args: args, RestartCount: restart})
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}

	id := run(0, "args", "first", "second")
	c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
	c.waitFor("first\nsecond\n")

	// A restart, as the pod worker does it: the same container ID, the next restart count.
	if _, err := rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	run(1, "tick")
	c.waitFor("first\nsecond\ntick 000000\n")

	prev, resp := h.open(api.LogsRequest{Container: "app", Previous: true})
	if resp.Error != nil || resp.Restart != 0 {
		t.Fatalf("previous: restart %d, error %v", resp.Restart, resp.Error)
	}
	if got := prev.readAll(); got != "first\nsecond\n" {
		t.Fatalf("previous: got %q", got)
	}

	// Rotate under the follower while the container writes: the follower never sees a line
	// twice or out of order; it may miss what was written between a copy and its truncate.
	const rotations = 5
	for i := 0; i < rotations; i++ {
		// Over LogMaxBytes since the last rotation, so that this one rotates.
		before := int64(c.out.Len())
		for int64(c.out.Len()) < before+cfg.LogMaxBytes+20 {
			c.take()
		}
		if err := rt.RotateLogs(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for n := c.out.Len(); c.out.Len() < n+100; {
		c.take()
	}
	ticks := strings.Split(strings.TrimPrefix(c.out.String(), "first\nsecond\n"), "\n")
	ticks = ticks[:len(ticks)-1] // after the last newline: a line still being sent, or ""
	missed := 0
	for i := 1; i < len(ticks); i++ {
		var prevN, n int
		if _, err := fmt.Sscanf(ticks[i-1], "tick %d", &prevN); err != nil {
			t.Fatalf("line %q: %v\n%s", ticks[i-1], err, c.out.String())
		}
		if _, err := fmt.Sscanf(ticks[i], "tick %d", &n); err != nil {
			t.Fatalf("line %q: %v\n%s", ticks[i], err, c.out.String())
		}
		if n <= prevN {
			t.Fatalf("tick %d follows tick %d\n%s", n, prevN, c.out.String())
		}
		missed += n - prevN - 1
	}
	if missed > rotations {
		t.Errorf("%d ticks missing over %d rotations", missed, rotations)
	}
	t.Logf("%d ticks followed across %d rotations, %d lost between a copy and its truncate", len(ticks), rotations, missed)

	if _, err := os.Stat(runtime.LogPath(cfg.LogDir, p, "app", 1) + ".1"); err != nil {
		t.Errorf("the runtime never rotated the log: %v", err)
	}

	// The pod goes: the stream ends.
	if err := rt.RemoveSandbox(ctx, p); err != nil {
		t.Fatal(err)
	}
	c.readAll()
	h.waitStreams(0)
}
