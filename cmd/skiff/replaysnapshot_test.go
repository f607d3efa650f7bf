package main

import (
	"context"
	"strings"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/api"
	snapshots "skiff.dev/events/snapshot"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// putSnapshot writes the fold of the cluster's log up to seq to the snapshot bucket, as the
// scheduler's leader does; damage, if set, changes its bytes first.
func (c *cluster) putSnapshot(seq uint64, damage func([]byte) []byte) {
	c.t.Helper()
	ctx := context.Background()
	s := state.New()
	if err := c.st.Read(ctx, store.ReadOptions{To: seq}, func(ev *events.Event) error { _ = s.Apply(ev); return nil }); err != nil {
		c.t.Fatal(err)
	}
	id, err := snapshots.Identity(ctx, c.st)
	if err != nil {
		c.t.Fatal(err)
	}
	ev, err := c.st.Get(ctx, seq)
	if err != nil {
		c.t.Fatal(err)
	}
	body, err := s.MarshalSnapshot(nil, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	h := snapshots.Header{Stream: id, Seq: seq, Time: ev.Time, Compression: snapshots.Zstd}
	data, err := snapshots.Encode(h, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if damage != nil {
		data = damage(data)
	}
	b, err := snapshots.Open(ctx, c.st.JetStream(), api.SnapshotBucket)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := b.Put(ctx, h, data); err != nil {
		c.t.Fatal(err)
	}
}

// A replay from a snapshot prints what the replay from the log's start prints, and says which
// snapshot it started from, or why it passed over one.
func TestEventsReplayFromSnapshot(t *testing.T) {
	c := newCluster(t)
	c.scenario() // up to seq 23
	for _, seq := range []uint64{12, 20} {
		c.putSnapshot(seq, nil)
	}
	c.putSnapshot(22, func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b })
	tests := []struct {
		name       string
		args       []string
		same       []string // the replay whose output it must print
		wantStderr []string
		wantCode   int
	}{
		{name: "newest", args: []string{"events", "replay", "--from-snapshot"}, same: []string{"events", "replay"},
			wantStderr: []string{"Skipping snapshot 22: corrupt snapshot: checksum", "Starting from snapshot 20", "Replayed the log up to sequence 23"}},
		{name: "before the point", args: []string{"events", "replay", "-o", "json", "--to-seq", "15", "--from-snapshot"},
			same: []string{"events", "replay", "-o", "json", "--to-seq", "15"}, wantStderr: []string{"Starting from snapshot 12", "up to sequence 15"}},
		{name: "at the point", args: []string{"events", "replay", "--to-seq", "20", "--from-snapshot"},
			same: []string{"events", "replay", "--to-seq", "20"}, wantStderr: []string{"Starting from snapshot 20", "up to sequence 20 (the snapshot's)"}},
		{name: "before a time", args: []string{"events", "replay", "pods", "--at", "2025-03-01T12:15:00Z", "--from-snapshot"},
			same: []string{"events", "replay", "pods", "--at", "2025-03-01T12:15:00Z"}, wantStderr: []string{"Starting from snapshot 12"}},
		{name: "a given one", args: []string{"events", "replay", "--from-snapshot=12"}, same: []string{"events", "replay"},
			wantStderr: []string{"Starting from snapshot 12", "up to sequence 23"}},
		{name: "none fits", args: []string{"events", "replay", "--to-seq", "5", "--from-snapshot"}, same: []string{"events", "replay", "--to-seq", "5"},
			wantStderr: []string{"No snapshot fits: replaying the log from its start."}},
		{name: "no such snapshot", args: []string{"events", "replay", "--from-snapshot=13"},
			wantStderr: []string{"no snapshot at sequence 13 in skiff-snapshots"}, wantCode: 1},
		{name: "a corrupt one asked for", args: []string{"events", "replay", "--from-snapshot=22"},
			wantStderr: []string{"snapshot 22: corrupt snapshot: checksum"}, wantCode: 1},
		{name: "not a sequence", args: []string{"events", "replay", "--from-snapshot=latest"},
			wantStderr: []string{`--from-snapshot "latest": want newest or the sequence of a snapshot`}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tt.wantCode, r.stderr)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not say %q", r.stderr, w)
				}
			}
			if tt.same != nil {
				if want := c.run(tt.same...); r.stdout != want.stdout || want.code != 0 {
					t.Errorf("stdout differs from %v's:\n%s\nwant:\n%s", tt.same, r.stdout, want.stdout)
				}
			}
		})
	}
}
