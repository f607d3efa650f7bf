package live

import (
	"fmt"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// What has queued up is folded in batches of up to foldBatch under one lock, in order, and a
// mark queued behind events runs once they are applied: folding one event per lock made the
// fold wait for every reader's scan once per event (a 30,000-pod Deployment folded at a few
// hundred events a second).
func TestFoldAppliesWhatQueuedInBatches(t *testing.T) {
	const n = 3000
	p := New(state.New(), nil)
	q := make(chan item, n+1)
	for i := range n {
		name := fmt.Sprintf("ns%d", i)
		ev, err := events.New(time.Unix(1_800_000_000, 0), events.Meta{Actor: "test"},
			events.ObjectRef{Kind: events.KindNamespace, Name: name}, "", &events.NamespaceApplied{Namespace: events.Namespace{Metadata: events.ObjectMeta{Name: name}}})
		if err != nil {
			t.Fatal(err)
		}
		ev.Seq = uint64(i + 1)
		q <- item{ev: ev, seq: ev.Seq}
	}
	var seqAtMark uint64
	q <- item{then: func() { seqAtMark = p.Seq() }}
	close(q)
	p.fold(q)
	if want := (n + foldBatch - 1) / foldBatch; p.folds != want {
		t.Errorf("%d events queued folded in %d batches, want %d", n, p.folds, want)
	}
	if seqAtMark != n || p.Seq() != n {
		t.Errorf("the mark saw sequence %d, the projection is at %d; want %d", seqAtMark, p.Seq(), n)
	}
}
