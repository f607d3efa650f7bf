package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	snapshots "skiff.dev/events/snapshot"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// fromSnapshotNewest is --from-snapshot without a sequence.
const fromSnapshotNewest = "newest"

// parseFromSnapshot reads --from-snapshot: "" (off), "newest", or a sequence.
func parseFromSnapshot(s string) (newest bool, seq uint64, err error) {
	switch s {
	case "":
		return false, 0, nil
	case fromSnapshotNewest:
		return true, 0, nil
	}
	seq, err = strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return false, 0, fmt.Errorf("--from-snapshot %q: want %s or the sequence of a snapshot (skiff events replay lists none; the scheduler writes them)", s, fromSnapshotNewest)
	}
	return false, seq, nil
}

// replayStart is the state a replay starts from: a snapshot of the whole fold (the newest one at
// or before the point replayed to, or the one at exactly seq), or the log's start. It says on
// stderr which it used, and why it passed over newer ones it could not use.
func (a *app) replayStart(ctx context.Context, st *store.Store, o replayOptions) (*state.State, time.Time, error) {
	newest, seq, err := parseFromSnapshot(o.fromSnapshot)
	if err != nil || (!newest && seq == 0) {
		return state.New(), time.Time{}, err
	}
	b, err := snapshots.Open(ctx, st.JetStream(), api.SnapshotBucket)
	if err != nil {
		return nil, time.Time{}, errorf(events.ErrUnavailable, "--from-snapshot: %v", err)
	}
	id, err := snapshots.Identity(ctx, st)
	if err != nil {
		return nil, time.Time{}, errorf(events.ErrUnavailable, "--from-snapshot: %v", err)
	}
	infos, err := b.List(ctx)
	if err != nil {
		return nil, time.Time{}, errorf(events.ErrUnavailable, "--from-snapshot: %v", err)
	}
	for _, in := range infos {
		switch {
		case seq > 0 && in.Seq != seq:
			continue
		case o.toSeq > 0 && in.Seq > o.toSeq:
			continue // past the point: of no use, nothing wrong with it
		}
		data, err := b.Get(ctx, in.Name)
		var h snapshots.Header
		if err == nil {
			h, err = snapshots.DecodeHeader(data)
		}
		if err == nil && !o.until.IsZero() && (h.Time.IsZero() || h.Time.After(o.until)) {
			if seq > 0 {
				return nil, time.Time{}, errorf(events.ErrInvalidArgument, "snapshot %d is past --at %s", seq, o.until.UTC().Format(time.RFC3339))
			}
			continue // past the point
		}
		var s *state.State
		if err == nil {
			s, h, err = snapshots.Decode(data, id)
		}
		if err != nil {
			if seq > 0 {
				return nil, time.Time{}, errorf(events.ErrFailedPrecondition, "snapshot %d: %v", seq, err)
			}
			fmt.Fprintf(a.Stderr, "Skipping snapshot %d: %v\n", in.Seq, err)
			continue
		}
		fmt.Fprintf(a.Stderr, "Starting from snapshot %d (%s), folding the log after it.\n", h.Seq, in.Name)
		return s, h.Time, nil
	}
	if seq > 0 {
		return nil, time.Time{}, errorf(events.ErrNotFound, "no snapshot at sequence %d in %s", seq, api.SnapshotBucket)
	}
	fmt.Fprintln(a.Stderr, "No snapshot fits: replaying the log from its start.")
	return state.New(), time.Time{}, nil
}
