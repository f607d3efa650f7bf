package eventstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// recorder is a testing.TB that keeps the failures of the kit's helpers instead of failing the
// test; Fatalf ends the goroutine, as testing's does.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
	fatal  bool
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.mu.Lock()
	r.fatal = true
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls fn with a recorder on its own goroutine, so that a Fatalf ends only fn.
func run(t *testing.T, fn func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); fn(r) }()
	<-done
	return r
}

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "out.golden")
	if r := run(t, func(tb testing.TB) { Golden(tb, path, "a\nb\n") }); !r.fatal || !strings.Contains(r.errors[0], "go test ./events/eventstest -run '^TestGolden$' -update") {
		t.Fatalf("a missing golden file: fatal %v, %q; want a fatal failure naming the update command", r.fatal, r.errors)
	}

	*update = true
	Golden(t, path, []byte("a\nb\n"))
	*update = false
	if data, err := os.ReadFile(path); err != nil || string(data) != "a\nb\n" {
		t.Fatalf("-update wrote %q, %v; want exactly what the test produced", data, err)
	}
	if r := run(t, func(tb testing.TB) { Golden(tb, path, "a\nb\n") }); len(r.errors) != 0 {
		t.Fatalf("the same output fails: %q", r.errors)
	}
	r := run(t, func(tb testing.TB) { Golden(tb, path, "a\nc\n") })
	if r.fatal || len(r.errors) != 1 {
		t.Fatalf("a different output: fatal %v, %q; want one error", r.fatal, r.errors)
	}
	// (cmp's diff varies its white space on purpose: only its frame is checked.)
	for _, want := range []string{path + " differs (-want +got)", "-run '^TestGolden$' -update"} {
		if !strings.Contains(r.errors[0], want) {
			t.Errorf("the failure does not say %q:\n%s", want, r.errors[0])
		}
	}
}

func TestPoll(t *testing.T) {
	calls := 0
	if err := Poll(time.Minute, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls; want nil after the 3rd", err, calls)
	}

	errLast := errors.New("the last reason")
	start := time.Now()
	err := Poll(30*time.Millisecond, func() error {
		if time.Since(start) < 20*time.Millisecond {
			return errors.New("an earlier reason")
		}
		return errLast
	})
	if !errors.Is(err, errLast) || !strings.Contains(err.Error(), "not within 30ms") {
		t.Fatalf("Poll past its deadline = %v; want the deadline and the last reason", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Poll of 30ms took %v", took)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, time.Minute, "the fifth check", func() bool { n++; return n == 5 })

	r := run(t, func(tb testing.TB) { Eventually(tb, 10*time.Millisecond, "never", func() bool { return false }) })
	if !r.fatal || !strings.Contains(r.errors[0], "never: not within 10ms") {
		t.Fatalf("Eventually of a false condition: fatal %v, %q", r.fatal, r.errors)
	}
	r = run(t, func(tb testing.TB) {
		EventuallyErr(tb, 10*time.Millisecond, "never", func() error { return errors.New("saw 3 pods") })
	})
	if !r.fatal || !strings.Contains(r.errors[0], "never: not within 10ms: saw 3 pods") {
		t.Fatalf("EventuallyErr of a failing condition: fatal %v, %q", r.fatal, r.errors)
	}
}

func node(t *testing.T, name string) *events.Event {
	ev, err := events.New(time.Now(), events.Meta{Actor: "test"}, events.ObjectRef{Kind: events.KindNode, Name: name}, "",
		&events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 1000, Memory: 1 << 30, MaxPods: 10})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// A projection follows the log, Append writes conditionally on what it has folded, and WaitState
// wakes at the change.
func TestFollowAppendWaitState(t *testing.T) {
	st, _, _ := NewStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	p := Follow(t, st)
	seq, err := Append(ctx, st, p, node(t, "n1"), node(t, "n2"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Seq() != seq {
		t.Fatalf("Append returned at seq %d with the projection at %d", seq, p.Seq())
	}
	go func() { _, _ = Append(ctx, st, p, node(t, "n3")) }()
	WaitState(t, p, Timeout, "three nodes", func(s *state.State) bool { return len(s.Nodes) == 3 })

	// A projection that does not fold nodes has not seen n1: its append is a conflict.
	services := Follow(t, st, events.KindFilter(events.KindService))
	if _, err := Append(ctx, st, services, node(t, "n1")); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("append behind the log = %v; want ErrConflict", err)
	}

	r := run(t, func(tb testing.TB) {
		WaitState(tb, p, 10*time.Millisecond, "a fourth node", func(s *state.State) bool { return len(s.Nodes) == 4 })
	})
	if !r.fatal || !strings.Contains(r.errors[0], "a fourth node") {
		t.Fatalf("WaitState of a condition that never holds: fatal %v, %q", r.fatal, r.errors)
	}
}
