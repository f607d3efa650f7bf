package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/natsserver"
	"skiff.dev/services/nodeagent/internal/runtime"
)

const node = "n1"

var pod = runtime.PodRef{UID: "uid-1", Name: "web", Namespace: "default"}

// harness is a real NATS server, a logs server on it over a log directory the test writes, and
// a hand on the followers' clock: a follower parks until the test ticks it.
type harness struct {
	t    testing.TB
	ns   *natsserver.Server
	dir  string
	srv  *Server
	tick chan time.Time
	// parked receives whenever a follower is about to wait for the next tick.
	parked chan struct{}
}

func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	ns := eventstest.NewServer(t)
	h := &harness{t: t, ns: ns, dir: t.TempDir(), tick: make(chan time.Time), parked: make(chan struct{}, 16)}
	ready := make(chan struct{})
	cfg := Config{Conn: eventstest.Connect(t, ns), Node: node, Dir: h.dir, Heartbeat: 20 * time.Millisecond,
		Ready: func() { close(ready) }}
	if mod != nil {
		mod(&cfg)
	}
	h.dir = cfg.Dir
	h.srv = New(cfg)
	h.srv.wait = func() <-chan time.Time {
		select {
		case h.parked <- struct{}{}:
		default: // a test that does not watch its follower park
		}
		return h.tick
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of its context's end")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return h
}

// path is the file of a run of container c, suffix "" for the live file or ".1", ".2".
func (h *harness) path(c string, run int, suffix string) string {
	return runtime.LogPath(h.dir, pod, c, run) + suffix
}

func (h *harness) write(c string, run int, suffix, content string) {
	h.t.Helper()
	p := h.path(c, run, suffix)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// appendTo appends as the shim does: O_APPEND, so a write after a truncate lands at the start.
func (h *harness) appendTo(c string, run int, content string) {
	h.t.Helper()
	f, err := os.OpenFile(h.path(c, run, ""), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		h.t.Fatal(err)
	}
}

// copyToRotated is the first half of a copy-truncate rotation: the copy to <run>.log.1 (through
// a temporary file, as the runtime does), after shifting .1 to .2.
func (h *harness) copyToRotated(c string, run int) {
	h.t.Helper()
	live := h.path(c, run, "")
	if err := os.Rename(live+".1", live+".2"); err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	b, err := os.ReadFile(live)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(live+".1.tmp", b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(live+".1.tmp", live+".1"); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) truncate(c string, run int) {
	h.t.Helper()
	if err := os.Truncate(h.path(c, run, ""), 0); err != nil {
		h.t.Fatal(err)
	}
}

// waitParked waits until a follower waits for its next tick: it has sent all it saw.
func (h *harness) waitParked() {
	h.t.Helper()
	select {
	case <-h.parked:
	case <-time.After(10 * time.Second):
		h.t.Fatal("the follower never waited for its next poll")
	}
}

// poll lets the parked follower look for news.
func (h *harness) poll() {
	h.t.Helper()
	select {
	case h.tick <- time.Now():
	case <-time.After(10 * time.Second):
		h.t.Fatal("no follower took the poll")
	}
}

// waitStreams waits until n streams run.
func (h *harness) waitStreams(n int) {
	h.t.Helper()
	eventstest.EventuallyErr(h.t, 10*time.Second, fmt.Sprintf("%d streams run", n), func() error {
		if got := h.srv.Streams(); got != n {
			return fmt.Errorf("%d run", got)
		}
		return nil
	})
}

// client is a log client speaking the protocol by hand, on its own connection.
type client struct {
	t      testing.TB
	nc     *nats.Conn
	chunks *nats.Subscription
	alive  *nats.Subscription
	out    bytes.Buffer
	last   bool
	seq    uint64
}

// open sends req and returns the client and the agent's answer.
func (h *harness) open(req api.LogsRequest) (*client, api.LogsResponse) {
	h.t.Helper()
	nc := eventstest.Connect(h.t, h.ns)
	c := &client{t: h.t, nc: nc}
	inbox := nc.NewInbox()
	var err error
	if c.chunks, err = nc.SubscribeSync(inbox); err != nil {
		h.t.Fatal(err)
	}
	if c.alive, err = nc.Subscribe(api.LogsAliveSubject(inbox), func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
		h.t.Fatal(err)
	}
	req.Inbox = inbox
	if req.Namespace == "" {
		req.Namespace, req.Pod, req.UID = pod.Namespace, pod.Name, pod.UID
	}
	data, _ := json.Marshal(req)
	m, err := nc.Request(api.LogsSubject(node), data, 10*time.Second)
	if err != nil {
		h.t.Fatalf("log request: %v", err)
	}
	var resp api.LogsResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		h.t.Fatalf("log answer %q: %v", m.Data, err)
	}
	return c, resp
}

// next receives the next chunk without acknowledging it.
func (c *client) next() (*api.LogsChunk, *nats.Msg) {
	c.t.Helper()
	m, err := c.chunks.NextMsg(10 * time.Second)
	if err != nil {
		c.t.Fatalf("no chunk after %q: %v", c.out.String(), err)
	}
	ch, err := api.DecodeLogsChunk(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if ch.Seq != c.seq+1 {
		c.t.Fatalf("chunk %d follows chunk %d", ch.Seq, c.seq)
	}
	c.seq = ch.Seq
	if len(ch.Data) > api.LogsChunkBytes {
		c.t.Fatalf("chunk %d has %d bytes, more than %d", ch.Seq, len(ch.Data), api.LogsChunkBytes)
	}
	return ch, m
}

// take receives, keeps and acknowledges one chunk.
func (c *client) take() *api.LogsChunk {
	c.t.Helper()
	ch, m := c.next()
	if ch.Error != nil {
		c.t.Fatalf("chunk %d: error %v", ch.Seq, ch.Error)
	}
	c.out.Write(ch.Data)
	c.last = ch.Last
	if err := m.Respond(nil); err != nil {
		c.t.Fatal(err)
	}
	return ch
}

// readAll takes chunks until the last one and returns everything received.
func (c *client) readAll() string {
	c.t.Helper()
	for !c.last {
		c.take()
	}
	return c.out.String()
}

// waitFor takes chunks until the output is want; more, or the end, fails.
func (c *client) waitFor(want string) {
	c.t.Helper()
	for c.out.String() != want {
		if c.last || !strings.HasPrefix(want, c.out.String()) {
			c.t.Fatalf("output is %q, want %q", c.out.String(), want)
		}
		c.take()
	}
}

func (c *client) leave() { c.nc.Close() }

func tail(n int64) *int64 { return &n }

func TestLogs(t *testing.T) {
	big := strings.Repeat("0123456789abcdef\n", 40000) // 680,000 bytes: three chunks
	tests := []struct {
		name        string
		files       map[string]string // "<container>/<run>.log[.k]" → content
		req         api.LogsRequest
		want        string
		wantRestart int
		wantErr     *api.Error
	}{
		{
			name:  "first run",
			files: map[string]string{"app/0.log": "hello\nworld\n"},
			req:   api.LogsRequest{Container: "app"},
			want:  "hello\nworld\n",
		},
		{
			name:        "the current run is the highest",
			files:       map[string]string{"app/1.log": "run 1\n", "app/2.log": "run 2\n", "sidecar/0.log": "other\n"},
			req:         api.LogsRequest{Container: "app"},
			want:        "run 2\n",
			wantRestart: 2,
		},
		{
			name:        "previous",
			files:       map[string]string{"app/1.log": "run 1\n", "app/1.log.1": "run 1 before\n", "app/2.log": "run 2\n"},
			req:         api.LogsRequest{Container: "app", Previous: true},
			want:        "run 1 before\nrun 1\n",
			wantRestart: 1,
		},
		{
			name:  "previous follows nothing",
			files: map[string]string{"app/1.log": "run 1\n", "app/2.log": "run 2\n"},
			req:   api.LogsRequest{Container: "app", Previous: true, Follow: true},
			want:  "run 1\n", wantRestart: 1,
		},
		{
			name:    "no previous run",
			files:   map[string]string{"app/0.log": "only\n"},
			req:     api.LogsRequest{Container: "app", Previous: true},
			wantErr: &api.Error{Code: "NotFound", Message: `previous terminated container "app" in pod "web" not found: not found`},
		},
		{
			name:  "rotated copies come first, oldest first",
			files: map[string]string{"app/0.log.2": "1\n", "app/0.log.1": "2\n", "app/0.log": "3\n", "app/0.log.1.tmp": "junk\n"},
			req:   api.LogsRequest{Container: "app"},
			want:  "1\n2\n3\n",
		},
		{
			name:  "tail across files",
			files: map[string]string{"app/0.log.2": "1\n", "app/0.log.1": "2\n3\n", "app/0.log": "4\n"},
			req:   api.LogsRequest{Container: "app", TailLines: tail(3)},
			want:  "2\n3\n4\n",
		},
		{
			name:  "tail into the middle of a file",
			files: map[string]string{"app/0.log.1": "1\n2\n3\n", "app/0.log": "4\n"},
			req:   api.LogsRequest{Container: "app", TailLines: tail(2)},
			want:  "3\n4\n",
		},
		{
			name:  "tail with an unfinished last line",
			files: map[string]string{"app/0.log": "1\n2\n3"},
			req:   api.LogsRequest{Container: "app", TailLines: tail(2)},
			want:  "2\n3",
		},
		{
			name:  "tail of more lines than there are",
			files: map[string]string{"app/0.log.1": "1\n", "app/0.log": "2\n"},
			req:   api.LogsRequest{Container: "app", TailLines: tail(10)},
			want:  "1\n2\n",
		},
		{
			name:  "tail 0",
			files: map[string]string{"app/0.log": "1\n2\n"},
			req:   api.LogsRequest{Container: "app", TailLines: tail(0)},
			want:  "",
		},
		{
			name:  "empty log",
			files: map[string]string{"app/0.log": ""},
			req:   api.LogsRequest{Container: "app"},
			want:  "",
		},
		{
			name:  "chunks",
			files: map[string]string{"app/0.log": big},
			req:   api.LogsRequest{Container: "app"},
			want:  big,
		},
		{
			name:  "tail of a big log",
			files: map[string]string{"app/0.log": big + "last\n"},
			req:   api.LogsRequest{Container: "app", TailLines: tail(2)},
			want:  "0123456789abcdef\nlast\n",
		},
		{
			name:    "pod not on the node",
			req:     api.LogsRequest{Namespace: "default", Pod: "db", UID: "uid-9", Container: "app"},
			wantErr: &api.Error{Code: "NotFound", Message: `pod "db" (uid uid-9) has no logs on node n1: it has not started there yet, or it is gone: not found`},
		},
		{
			name:    "same name, another pod",
			files:   map[string]string{"app/0.log": "old pod\n"},
			req:     api.LogsRequest{Namespace: "default", Pod: "web", UID: "uid-2", Container: "app"},
			wantErr: &api.Error{Code: "NotFound", Message: `pod "web" (uid uid-2) has no logs on node n1: it has not started there yet, or it is gone: not found`},
		},
		{
			name:    "container not started",
			files:   map[string]string{"app/0.log": "up\n"},
			req:     api.LogsRequest{Container: "sidecar"},
			wantErr: &api.Error{Code: "NotFound", Message: `container "sidecar" in pod "web" has not started yet: it has no logs on node n1: not found`},
		},
		{
			name:    "a name that leaves the directory",
			files:   map[string]string{"app/0.log": "up\n"},
			req:     api.LogsRequest{Container: ".."},
			wantErr: &api.Error{Code: "InvalidArgument", Message: `log request: container ".." is not a valid name: invalid argument`},
		},
		{
			name:    "a pod name with a slash",
			req:     api.LogsRequest{Namespace: "default", Pod: "../../etc", UID: "u", Container: "app"},
			wantErr: &api.Error{Code: "InvalidArgument", Message: `log request: pod "../../etc" is not a valid name: invalid argument`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			for name, content := range tt.files {
				c, file, _ := strings.Cut(name, "/")
				run, suffix, _ := strings.Cut(file, ".log")
				var r int
				fmt.Sscan(run, &r)
				h.write(c, r, suffix, content)
			}
			c, resp := h.open(tt.req)
			if diff := cmp.Diff(tt.wantErr, resp.Error); diff != "" {
				t.Fatalf("error (-want +got):\n%s", diff)
			}
			if tt.wantErr != nil {
				if _, err := c.chunks.NextMsg(50 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
					t.Errorf("a refused request got a chunk: %v", err)
				}
				return
			}
			if resp.Restart != tt.wantRestart {
				t.Errorf("restart = %d, want %d", resp.Restart, tt.wantRestart)
			}
			if got := c.readAll(); got != tt.want {
				if len(got) > 200 || len(tt.want) > 200 {
					t.Fatalf("got %d bytes, want %d (equal prefix? %v)", len(got), len(tt.want), strings.HasPrefix(tt.want, got))
				}
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if len(tt.want) > 2*api.LogsChunkBytes && c.seq < 4 {
				t.Errorf("%d bytes came in %d chunks", len(tt.want), c.seq)
			}
			h.waitStreams(0)
		})
	}
}

func TestFollow(t *testing.T) {
	t.Run("grows", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "a\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("a\n")
		h.waitParked()
		h.appendTo("app", 0, "b\n")
		h.poll()
		c.waitFor("a\nb\n")
		h.waitParked()
		h.poll() // nothing new: nothing sent
		h.waitParked()
		h.appendTo("app", 0, "c")
		h.poll()
		c.waitFor("a\nb\nc")
	})

	t.Run("tail then follow", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "1\n2\n3\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true, TailLines: tail(1)})
		c.waitFor("3\n")
		h.waitParked()
		h.appendTo("app", 0, "4\n")
		h.poll()
		c.waitFor("3\n4\n")
	})

	t.Run("rotation with unread output", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "1\n2\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("1\n2\n")
		h.waitParked()
		// "3" is written, copied away and truncated before the follower looks again: it can only
		// come from the copy.
		h.appendTo("app", 0, "3\n")
		h.copyToRotated("app", 0)
		h.truncate("app", 0)
		h.appendTo("app", 0, "4\n")
		h.poll()
		c.waitFor("1\n2\n3\n4\n")
		h.waitParked()
		// A second rotation shifts the first copy to .2.
		h.appendTo("app", 0, "5\n")
		h.copyToRotated("app", 0)
		h.truncate("app", 0)
		h.poll()
		c.waitFor("1\n2\n3\n4\n5\n")
		h.waitParked()
		h.appendTo("app", 0, "6\n")
		h.poll()
		c.waitFor("1\n2\n3\n4\n5\n6\n")
	})

	t.Run("rotation seen between copy and truncate", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "1\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("1\n")
		h.waitParked()
		h.appendTo("app", 0, "2\n")
		h.copyToRotated("app", 0)
		h.poll() // sees the new copy, but the live file is not truncated yet
		c.waitFor("1\n2\n")
		h.waitParked()
		h.truncate("app", 0)
		h.appendTo("app", 0, "3\n")
		h.poll()
		c.waitFor("1\n2\n3\n")
		h.waitParked()
		h.appendTo("app", 0, "4\n")
		h.poll()
		c.waitFor("1\n2\n3\n4\n")
	})

	t.Run("truncated without a copy", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "a long first line\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("a long first line\n")
		h.waitParked()
		h.truncate("app", 0)
		h.appendTo("app", 0, "short\n")
		h.poll()
		c.waitFor("a long first line\nshort\n")
	})

	t.Run("restart", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "run 0\n")
		c, resp := h.open(api.LogsRequest{Container: "app", Follow: true})
		if resp.Restart != 0 {
			t.Fatalf("restart = %d", resp.Restart)
		}
		c.waitFor("run 0\n")
		h.waitParked()
		// The dying run's last words land before the new run starts: both are sent, in order.
		h.appendTo("app", 0, "crash\n")
		h.write("app", 1, "", "run 1\n")
		h.poll()
		c.waitFor("run 0\ncrash\nrun 1\n")
		h.waitParked()
		h.appendTo("app", 1, "still 1\n")
		h.poll()
		c.waitFor("run 0\ncrash\nrun 1\nstill 1\n")
		h.waitParked()
		// The runtime drops runs before the previous one when the next starts.
		if err := os.Remove(h.path("app", 0, "")); err != nil {
			t.Fatal(err)
		}
		h.write("app", 2, "", "run 2\n")
		h.poll()
		c.waitFor("run 0\ncrash\nrun 1\nstill 1\nrun 2\n")
	})

	t.Run("pod gone", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "up\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("up\n")
		h.waitParked()
		h.appendTo("app", 0, "bye\n")
		if err := os.RemoveAll(filepath.Dir(filepath.Dir(h.path("app", 0, "")))); err != nil {
			t.Fatal(err)
		}
		h.poll()
		if got := c.readAll(); got != "up\nbye\n" {
			t.Fatalf("got %q", got)
		}
		h.waitStreams(0)
	})
}

func TestClientGoes(t *testing.T) {
	t.Run("while following", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", "a\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("a\n")
		h.waitParked()
		h.waitStreams(1)
		c.leave()
		h.waitStreams(0)
	})

	t.Run("without taking a chunk", func(t *testing.T) {
		h := newHarness(t, nil)
		h.write("app", 0, "", strings.Repeat("x", 3*api.LogsChunkBytes))
		c, _ := h.open(api.LogsRequest{Container: "app"})
		c.next() // and never answers it
		h.waitStreams(1)
		c.leave()
		h.waitStreams(0)
	})

	t.Run("stays but stops taking chunks", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AckTimeout = 100 * time.Millisecond })
		h.write("app", 0, "", strings.Repeat("x", 3*api.LogsChunkBytes))
		c, _ := h.open(api.LogsRequest{Container: "app"})
		c.next()
		h.waitStreams(0)
		ch, _ := c.next()
		want := &api.Error{Code: "Unavailable", Message: "the client did not take chunk 1 within 100ms: unavailable"}
		if diff := cmp.Diff(want, ch.Error); diff != "" || !ch.Last {
			t.Errorf("the stream ended with last=%v, error (-want +got):\n%s", ch.Last, diff)
		}
	})
}

func TestServer(t *testing.T) {
	t.Run("too many streams", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxStreams = 1 })
		h.write("app", 0, "", "a\n")
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("a\n")
		_, resp := h.open(api.LogsRequest{Container: "app"})
		if resp.Error == nil || resp.Error.Code != "Unavailable" {
			t.Fatalf("second stream: error %v, want Unavailable", resp.Error)
		}
		c.leave()
		h.waitStreams(0)
		c2, resp := h.open(api.LogsRequest{Container: "app"})
		if resp.Error != nil {
			t.Fatalf("after the first stream ended: %v", resp.Error)
		}
		if got := c2.readAll(); got != "a\n" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("a request that does not decode", func(t *testing.T) {
		h := newHarness(t, nil)
		nc := eventstest.Connect(t, h.ns)
		m, err := nc.Request(api.LogsSubject(node), []byte("{"), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var resp api.LogsResponse
		if err := json.Unmarshal(m.Data, &resp); err != nil || resp.Error == nil || resp.Error.Code != "InvalidArgument" {
			t.Fatalf("answer %s: %v", m.Data, err)
		}
	})

	t.Run("stops its streams when it stops", func(t *testing.T) {
		ns := eventstest.NewServer(t)
		dir := t.TempDir()
		p := runtime.LogPath(dir, pod, "app", 0)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		srv := New(Config{Conn: eventstest.Connect(t, ns), Node: node, Dir: dir, Ready: func() { close(ready) }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx) }()
		<-ready
		h := &harness{t: t, ns: ns, srv: srv}
		c, _ := h.open(api.LogsRequest{Container: "app", Follow: true})
		c.waitFor("a\n")
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return")
		}
		if n := srv.Streams(); n != 0 {
			t.Fatalf("%d streams still run", n)
		}
		ch, _ := c.next()
		want := &api.Error{Code: "Unavailable", Message: "the node agent of n1 is stopping: unavailable"}
		if diff := cmp.Diff(want, ch.Error); diff != "" || !ch.Last {
			t.Errorf("the stream ended with last=%v, error (-want +got):\n%s", ch.Last, diff)
		}
	})

	t.Run("needs a connection and a node", func(t *testing.T) {
		err := New(Config{}).Serve(context.Background())
		if !errors.Is(err, events.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
}
