package controllerstest

import (
	"context"
	"fmt"
	"sync"

	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// MemLog is an in-memory log for benchmarks and pure tests: it checks each write's expected
// sequence against the projection, as JetStream does, assigns the next sequence and applies the
// event to the projection at once.
type MemLog struct {
	P  *live.Projection
	mu sync.Mutex
}

var _ reconcile.Log = (*MemLog)(nil)

// NewMemLog returns a log over a fresh projection.
func NewMemLog() *MemLog { return &MemLog{P: live.New(state.New(), nil)} }

// AppendAll appends each write whose expected sequence holds; the others get events.ErrConflict.
func (m *MemLog) AppendAll(_ context.Context, ws []store.Write) []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := make([]error, len(ws))
	for i, w := range ws {
		var cur, head uint64
		m.P.View(func(s *state.State) { cur, head = s.SubjectSeq(w.Event.Subject), s.Seq })
		if cur != w.Expect {
			errs[i] = fmt.Errorf("append %s to %s: last sequence %d, expected %d: %w", w.Event.Type, w.Event.Subject, cur, w.Expect, events.ErrConflict)
			continue
		}
		w.Event.Seq = head + 1
		m.P.Apply(w.Event)
	}
	return errs
}

// Add appends one event unconditionally, for building state.
func (m *MemLog) Add(ref events.ObjectRef, node string, p events.Payload) {
	ev, err := events.New(T0, events.Meta{Actor: "test"}, ref, node, p)
	if err != nil {
		panic(err)
	}
	var cur uint64
	m.P.View(func(s *state.State) { cur = s.SubjectSeq(ev.Subject) })
	if errs := m.AppendAll(context.Background(), []store.Write{{Event: ev, Expect: cur}}); errs[0] != nil {
		panic(errs[0])
	}
}
