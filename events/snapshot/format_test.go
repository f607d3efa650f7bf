package snapshot_test

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/state"
)

const testStream = "SKIFF@2026-12-05T06:00:00Z"

// fold folds evs (numbered) into a new state.
func fold(evs []*events.Event) *state.State {
	st := state.New()
	for _, ev := range evs {
		_ = st.Apply(ev)
	}
	return st
}

func encode(t testing.TB, st *state.State, h snapshot.Header) []byte {
	t.Helper()
	body, err := st.MarshalSnapshot(nil, h.Kinds)
	if err != nil {
		t.Fatal(err)
	}
	h.Seq = st.Seq
	data, err := snapshot.Encode(h, body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The header's layout, byte by byte: a change here is a new format version.
func TestHeaderGolden(t *testing.T) {
	st := state.New()
	st.Seq = 42
	data := encode(t, st, snapshot.Header{Stream: testStream, Time: eventstest.HistoryStart, Kinds: snapshot.NodeKinds})
	h, err := snapshot.DecodeHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	eventstest.Golden(t, "testdata/header.golden", hex.Dump(data[:snapshot.HeaderSize+len(testStream)+len("node,service,endpoints")]))
	if h.Seq != 42 || h.Stream != testStream || !h.Time.Equal(eventstest.HistoryStart) || strings.Join(h.Kinds, ",") != "node,service,endpoints" ||
		h.Version != snapshot.Version || h.Compression != snapshot.None {
		t.Errorf("header read back as %+v", h)
	}
}

// Every compression round-trips the fold of a history with every event type.
func TestCompressions(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	st := fold(evs)
	for _, c := range []snapshot.Compression{snapshot.None, snapshot.Zstd, snapshot.S2} {
		t.Run(c.String(), func(t *testing.T) {
			data := encode(t, st, snapshot.Header{Stream: testStream, Compression: c})
			got, h, err := snapshot.Decode(data, testStream)
			if err != nil {
				t.Fatal(err)
			}
			if h.Compression != c {
				t.Errorf("compression %s, want %s", h.Compression, c)
			}
			if d := eventstest.DiffStates(st, got); d != "" {
				t.Fatalf("(-folded +decoded):\n%s", d)
			}
			t.Logf("%s: %d bytes, body %d", c, len(data), h.Raw)
		})
	}
}

// Each way a snapshot can be unusable is told apart, and said.
func TestDecodeErrors(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	good := encode(t, fold(evs), snapshot.Header{Stream: testStream, Compression: snapshot.Zstd})
	mutate := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	rechecksum := snapshot.Rechecksum
	for _, tc := range []struct {
		name   string
		data   []byte
		stream string
		want   error
		says   string
	}{
		{"empty", nil, testStream, snapshot.ErrTruncated, "not even a header"},
		{"not a snapshot", []byte(`{"kind":"Pod"}`), testStream, snapshot.ErrCorrupt, "not a snapshot"},
		{"header cut", good[:20], testStream, snapshot.ErrTruncated, "the header alone"},
		{"body cut", good[:len(good)-10], testStream, snapshot.ErrTruncated, "bytes of"},
		{"bytes after it", append(append([]byte(nil), good...), 1, 2), testStream, snapshot.ErrCorrupt, "after its end"},
		{"a bit flipped in the body", mutate(func(b []byte) []byte { b[len(b)-7] ^= 1; return b }), testStream, snapshot.ErrCorrupt, "checksum"},
		{"a bit flipped in the sequence", mutate(func(b []byte) []byte { b[16] ^= 1; return b }), testStream, snapshot.ErrCorrupt, "checksum"},
		{"version 2", mutate(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[8:], 2); return rechecksum(b) }), testStream,
			snapshot.ErrVersion, "version 2"},
		{"another log", good, "SKIFF@2027-01-01T00:00:00Z", snapshot.ErrOtherStream, "folded from " + testStream},
		{"sequence unlike the body's", mutate(func(b []byte) []byte { b[16] ^= 1; return rechecksum(b) }), testStream,
			snapshot.ErrCorrupt, "the header says sequence"},
		{"unknown compression", mutate(func(b []byte) []byte { b[10] = 9; return rechecksum(b) }), testStream,
			snapshot.ErrCorrupt, "unknown compression"},
		{"body not zstd", mutate(func(b []byte) []byte { b[len(b)-3] ^= 0xff; return rechecksum(b) }), testStream,
			snapshot.ErrCorrupt, "zstd body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := snapshot.Decode(tc.data, tc.stream)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
	if _, _, err := snapshot.Decode(good, ""); err != nil {
		t.Errorf("any log (\"\"): %v", err)
	}
}

// Every single-byte change of a snapshot, with the checksum made to match (so that the change
// reaches the header's checks, the decompressor and the body's decoder), and every cut, is
// refused with one of the snapshot errors or read: never a panic. (FuzzDecode goes further, but
// fuzzing is slow here: the test binary holds a whole NATS server for the fuzzer to watch.)
func TestDecodeDamaged(t *testing.T) {
	evs := eventstest.Number(eventstest.History(t))
	for _, c := range []snapshot.Compression{snapshot.None, snapshot.Zstd, snapshot.S2} {
		good := encode(t, fold(evs), snapshot.Header{Stream: testStream, Compression: c})
		for i := range good {
			for _, flip := range []byte{0x01, 0x80, 0xff} {
				b := append([]byte(nil), good...)
				b[i] ^= flip
				checkDamaged(t, snapshot.Rechecksum(b))
			}
		}
		for n := range len(good) {
			if _, _, err := snapshot.Decode(good[:n], ""); !errors.Is(err, snapshot.ErrTruncated) && !errors.Is(err, snapshot.ErrCorrupt) {
				t.Fatalf("%s cut to %d bytes: %v", c, n, err)
			}
		}
	}
}

func checkDamaged(t *testing.T, data []byte) {
	t.Helper()
	st, _, err := snapshot.Decode(data, "")
	switch {
	case err == nil:
		if _, err := st.MarshalSnapshot(nil, nil); err != nil {
			t.Fatal(err)
		}
	case !errors.Is(err, snapshot.ErrCorrupt) && !errors.Is(err, snapshot.ErrTruncated) && !errors.Is(err, snapshot.ErrVersion):
		t.Fatalf("error %v is none of the snapshot errors", err)
	}
}

func FuzzDecode(f *testing.F) {
	evs := eventstest.Number(eventstest.History(f))
	for _, c := range []snapshot.Compression{snapshot.None, snapshot.Zstd, snapshot.S2} {
		f.Add(encode(f, fold(evs[:len(evs)/2]), snapshot.Header{Stream: testStream, Compression: c}))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Most mutations break the checksum; fixing it lets them reach the body's decoders.
		checkDamaged(t, data)
		checkDamaged(t, snapshot.Rechecksum(append([]byte(nil), data...)))
	})
}
