package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/store"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func nsWrites(t *testing.T, prefix string, n int) []store.Write {
	t.Helper()
	ws := make([]store.Write, n)
	for i := range ws {
		name := fmt.Sprintf("%s%d", prefix, i)
		ev, err := events.New(t0, events.Meta{Actor: "test"}, events.ObjectRef{Kind: events.KindNamespace, Name: name}, "",
			&events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: name}}})
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = store.Write{Event: ev}
	}
	return ws
}

// Terms count up in the log; a write of an old term is refused, counted, ends the term at once,
// and End says so in the line tools grep for.
func TestTermsAreFenced(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	ctx := context.Background()
	actx, a, err := Begin(ctx, st, "a", events.Meta{Actor: "scheduler/a"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Number != 1 || a.Replica != "a" || a.Seq == 0 {
		t.Fatalf("first term = %+v", a.Term)
	}
	writer := st.Fenced(a.Term, "deployments", a.Fence("scheduler/a", nil))
	if errs := writer.AppendAll(actx, nsWrites(t, "ok", 2)); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}

	_, b, err := Begin(ctx, st, "b", events.Meta{Actor: "scheduler/b"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Number != 2 || b.Seq <= a.Seq {
		t.Fatalf("second term = %+v after %+v", b.Term, a.Term)
	}
	errs := writer.AppendAll(actx, nsWrites(t, "stale", 3))
	for i, err := range errs {
		if !errors.Is(err, events.ErrFenced) {
			t.Fatalf("stale write %d: %v, want ErrFenced", i, err)
		}
	}
	select {
	case <-actx.Done():
	default:
		t.Fatal("the old term's context is still alive after a fenced write")
	}
	if n, newer := a.Rejected(); n != 3 || newer != b.Term {
		t.Fatalf("Rejected = %d, %+v; want 3, %+v", n, newer, b.Term)
	}
	var out eventstest.Buffer
	a.End(slog.New(slog.NewTextHandler(&out, nil)))
	if want := "lost leadership: 3 writes rejected by a newer term (term 1, now 2)"; !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "level=WARN") {
		t.Fatalf("End logged %q, want a warning with %q", out.String(), want)
	}
	// A term that ends without a refused write says nothing of the kind.
	out = eventstest.Buffer{}
	b.End(slog.New(slog.NewTextHandler(&out, nil)))
	if out.String() != "" {
		t.Fatalf("End of an unfenced term logged %q", out.String())
	}
}

// racingLog lets another term in between Begin's read and its append.
type racingLog struct {
	*store.Store
	t *testing.T
}

func (r racingLog) LastTerm(ctx context.Context) (store.Term, error) {
	last, err := r.Store.LastTerm(ctx)
	if _, _, err := Begin(ctx, r.Store, "rival", events.Meta{Actor: "scheduler/rival"}, t0); err != nil {
		r.t.Fatal(err)
	}
	return last, err
}

// Two replicas cannot both begin a term after the same one: the second append conflicts.
func TestBeginConflicts(t *testing.T) {
	st, _, _ := eventstest.NewStore(t)
	if _, _, err := Begin(context.Background(), racingLog{st, t}, "a", events.Meta{Actor: "scheduler/a"}, t0); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("Begin after a rival began = %v, want Conflict", err)
	}
	last, err := st.LastTerm(context.Background())
	if err != nil || last.Replica != "rival" || last.Number != 1 {
		t.Fatalf("last term = %+v, %v; want the rival's first", last, err)
	}
}
