package scheduling

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// Verdict is one recorded decision made again from the log.
type Verdict struct {
	Recorded
	Rerun Rerun
	// Err says why the decision could not be made again (recorded before decisions carried
	// their state's sequence, or the pod is not pending in that state).
	Err error
}

// Same reports whether the re-run picked the recorded node.
func (v Verdict) Same() bool { return v.Err == nil && v.Rerun.Node == v.Node }

// ErrNotRecorded marks a decision the log cannot re-run: its PodScheduled has no StateSeq.
var ErrNotRecorded = errors.New("decision recorded without the sequence of its state")

// Verify makes every scheduling decision in the log up to sequence to (0: the head) again, in
// log order, and hands each verdict to fn. It reads the log twice: once for the pods' subjects,
// to find the decisions, and once whole, folding it with the fold every service uses; each
// decision is re-run on the fold at its StateSeq with the decisions after that and before it
// assumed (RerunDecision). The nodes are copied once per StateSeq, so a log of a million
// decisions costs about what scheduling them did.
func Verify(ctx context.Context, log *store.Store, to uint64, opts RerunOptions, fn func(Verdict) error) error {
	recs, err := Decisions(ctx, log, to)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	// Decisions by the sequence their state was at; each group runs when the fold gets there.
	byState := make([]int, len(recs))
	for i := range byState {
		byState[i] = i
	}
	slices.SortStableFunc(byState, func(a, b int) int { return cmp.Compare(recs[a].StateSeq, recs[b].StateSeq) })
	next := 0
	// runGroups re-runs the groups whose StateSeq is at most seq, on st (the fold at seq).
	runGroups := func(st *state.State, seq uint64) error {
		for next < len(byState) && recs[byState[next]].StateSeq <= seq {
			s := recs[byState[next]].StateSeq
			end := next
			for end < len(byState) && recs[byState[end]].StateSeq == s {
				end++
			}
			if err := rerunGroup(st, recs, byState[next:end], opts, fn); err != nil {
				return err
			}
			next = end
		}
		return nil
	}
	st := state.New()
	readOpts := store.ReadOptions{To: recs[len(recs)-1].Seq, OnPoison: func(subject string, seq uint64, _ error) { st.Skip(subject, seq) }}
	err = log.Read(ctx, readOpts, func(ev *events.Event) error {
		if err := runGroups(st, ev.Seq-1); err != nil {
			return err
		}
		_ = st.Apply(ev) // an event that does not apply changes nothing, for the scheduler too
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: fold the log: %w", err)
	}
	return runGroups(st, recs[len(recs)-1].Seq)
}

// rerunGroup re-runs the decisions recs[group...] (one StateSeq, in log order) on st.
func rerunGroup(st *state.State, recs []Recorded, group []int, opts RerunOptions, fn func(Verdict) error) error {
	s := recs[group[0]].StateSeq
	if s == 0 {
		for _, i := range group {
			if err := fn(Verdict{Recorded: recs[i], Err: ErrNotRecorded}); err != nil {
				return err
			}
		}
		return nil
	}
	r := newRerunner(st, opts)
	// recs are in log order: the assumptions of a decision are the recs between s and it.
	a, _ := slices.BinarySearchFunc(recs, s+1, func(r Recorded, seq uint64) int { return cmp.Compare(r.Seq, seq) })
	for _, i := range group {
		for ; a < i; a++ {
			r.assume(recs[a])
		}
		v := Verdict{Recorded: recs[i]}
		v.Rerun, v.Err = r.rerun(recs[i].Pod)
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// Decisions lists the PodScheduled events in the log up to sequence to (0: the head), in log
// order.
func Decisions(ctx context.Context, log *store.Store, to uint64) ([]Recorded, error) {
	var recs []Recorded
	opts := store.ReadOptions{Filters: []string{events.KindFilter(events.KindPod)}, To: to}
	err := log.Read(ctx, opts, func(ev *events.Event) error {
		if d, ok := ev.Data.(*events.PodScheduled); ok {
			recs = append(recs, Recorded{Seq: ev.Seq, Pod: state.Key{Namespace: ev.Object.Namespace, Name: ev.Object.Name},
				UID: d.UID, Node: d.Node, StateSeq: d.StateSeq})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the scheduling decisions: %w", err)
	}
	return recs, nil
}

// ExplainDecision makes one recorded decision again: it folds the log to the decision's
// StateSeq, assumes the decisions between that and it, and re-runs it (RerunDecision).
func ExplainDecision(ctx context.Context, log *store.Store, rec Recorded, opts RerunOptions) (Rerun, error) {
	if rec.StateSeq == 0 {
		return Rerun{}, ErrNotRecorded
	}
	st := state.New()
	var assumed []Recorded
	readOpts := store.ReadOptions{To: rec.Seq - 1, OnPoison: func(subject string, seq uint64, _ error) {
		if seq <= rec.StateSeq {
			st.Skip(subject, seq)
		}
	}}
	err := log.Read(ctx, readOpts, func(ev *events.Event) error {
		if ev.Seq <= rec.StateSeq {
			_ = st.Apply(ev)
			return nil
		}
		if d, ok := ev.Data.(*events.PodScheduled); ok {
			assumed = append(assumed, Recorded{Seq: ev.Seq, Pod: state.Key{Namespace: ev.Object.Namespace, Name: ev.Object.Name},
				UID: d.UID, Node: d.Node, StateSeq: d.StateSeq})
		}
		return nil
	})
	if err != nil {
		return Rerun{}, fmt.Errorf("fold the log to sequence %d: %w", rec.StateSeq, err)
	}
	return RerunDecision(st, rec.Pod, assumed, opts)
}
