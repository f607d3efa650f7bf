package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// How long, and how many, commands a replica remembers. A client resends a command only while
// its own context lasts (the CLI's --timeout, 30 s by default), so five minutes covers any
// sensible timeout; the bound keeps a flood of commands from growing the table without limit
// (answers are small: one Result per object).
const (
	recentTTL = 5 * time.Minute
	recentMax = 4096
)

// recentCommands remembers the commands this replica took, by idempotency key, with their
// answers. A client resends a command when no acknowledgement reached it in time (see package
// api, "Acknowledgements and resends"); when the copy lands on the replica that took the first
// one, it gets the first copy's answer (waiting for it if the first is still running) rather
// than a second run's, which would find the command's own writes and say "unchanged" or "not
// found". Copies that land on other replicas are covered by admission's derived event ids.
type recentCommands struct {
	ttl   time.Duration
	max   int
	clock func() time.Time

	mu    sync.Mutex
	byKey map[string]*outcome
	order []*outcome // by start, oldest first
}

type outcome struct {
	key  string
	at   time.Time
	done chan struct{} // closed once resp is set
	resp *api.Response
}

func newRecentCommands(ttl time.Duration, max int, clock func() time.Time) *recentCommands {
	return &recentCommands{ttl: ttl, max: max, clock: clock, byKey: map[string]*outcome{}}
}

// do returns the answer of the command with key: run's, the first time the key is seen, or the
// first run's otherwise. An empty key (a client that does not resend) always runs. A copy that
// waits for the first run longer than ctx allows answers Unavailable.
func (r *recentCommands) do(ctx context.Context, key string, run func() *api.Response) *api.Response {
	if key == "" {
		return run()
	}
	r.mu.Lock()
	r.forget(func(o *outcome) bool { return r.clock().Sub(o.at) > r.ttl })
	if o, ok := r.byKey[key]; ok {
		r.mu.Unlock()
		select {
		case <-o.done:
			return o.resp
		case <-ctx.Done():
			return &api.Response{Error: &api.Error{Code: events.Code(events.ErrUnavailable),
				Message: "an earlier copy of this command is still being carried out on this scheduler; retry in a moment"}}
		}
	}
	r.forget(func(*outcome) bool { return len(r.order) >= r.max })
	o := &outcome{key: key, at: r.clock(), done: make(chan struct{})}
	r.byKey[key] = o
	r.order = append(r.order, o)
	r.mu.Unlock()
	o.resp = run()
	close(o.done)
	return o.resp
}

// forget drops the oldest commands as long as drop says so. Lock held.
func (r *recentCommands) forget(drop func(*outcome) bool) {
	for len(r.order) > 0 && drop(r.order[0]) {
		if o := r.order[0]; r.byKey[o.key] == o {
			delete(r.byKey, o.key)
		}
		r.order[0] = nil
		r.order = r.order[1:]
	}
}

// idempotencyKey names one command across its copies: who sent it and what (the subject), the
// client's request id, and the content, so an id reused for another command is another key.
func idempotencyKey(subject, requestID string, data []byte) string {
	h := sha256.New()
	h.Write([]byte(subject))
	h.Write([]byte{0})
	h.Write([]byte(requestID))
	h.Write([]byte{0})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}
