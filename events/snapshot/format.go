package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"skiff.dev/events"
	"skiff.dev/events/state"
)

// Magic opens every snapshot.
const Magic = "SKIFSNAP"

// Version is the format's version: the header below and state.SnapshotLayout's body. A reader
// refuses any other (ErrVersion) and replays the log instead, so changing either means a new
// number, never a reinterpretation.
const Version = state.SnapshotLayout

// HeaderSize is the fixed part of the header:
//
//	offset size
//	 0      8   Magic
//	 8      2   Version (little endian, as every integer here)
//	10      1   compression of the body: 0 none, 1 zstd, 2 s2
//	11      1   0
//	12      4   CRC-32C of the whole snapshot but these four bytes
//	16      8   sequence: the snapshot is the fold of the log up to and including it
//	24      8   time of the event at that sequence, Unix nanoseconds (0: unknown)
//	32      8   body length as stored
//	40      8   body length decompressed
//	48      2   stream identity length (at most MaxIdentity)
//	50      2   kinds length (at most MaxKinds)
//	52      4   0
//	56          stream identity, kinds (comma-separated; empty: every kind), body
//
// testdata/header.golden holds one, byte by byte.
const HeaderSize = 56

// Limits of the header's strings.
const (
	MaxIdentity = 1024
	MaxKinds    = 256
)

// MaxBody bounds a body decompressed: far above 150,000 pods (about 60 MB), far below what a
// corrupt length could make a reader allocate.
const MaxBody = 4 << 30

// maxRatio bounds how much larger a body is decompressed than stored (the fold compresses 4 to
// 6 times): a reader allocates no more than that for bytes that claim more.
const maxRatio = 1024

// zstdWindow is the compressor's window, and the most a reader gives a frame: a damaged frame
// header cannot make it allocate more.
const zstdWindow = 8 << 20

// NodeKinds are what the node bucket's snapshots hold: what a node may read of the log, and
// what its agent (nodes) and net proxy (services, endpoints) fold.
var NodeKinds = []string{events.KindNode, events.KindService, events.KindEndpoints}

// Compression of the body.
type Compression uint8

const (
	None Compression = iota
	Zstd
	S2
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Zstd:
		return "zstd"
	case S2:
		return "s2"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Header is what a snapshot says about itself.
type Header struct {
	Version     uint16
	Compression Compression
	// Stream is the identity of the log it was folded from (see Identity).
	Stream string
	// Seq is the last sequence folded into it; Time that event's time (zero: unknown).
	Seq  uint64
	Time time.Time
	// Kinds it holds (state.Restrict); nil: every kind.
	Kinds []string
	// Stored and Raw are the body's length as stored and decompressed.
	Stored, Raw uint64
}

// The ways a snapshot can be unusable. Decode wraps one of them with the details.
var (
	// ErrCorrupt: not a snapshot, a checksum that does not match, or a body that does not read.
	ErrCorrupt = errors.New("corrupt snapshot")
	// ErrTruncated: fewer bytes than the header says.
	ErrTruncated = errors.New("truncated snapshot")
	// ErrVersion: written in a format version this reader does not read.
	ErrVersion = errors.New("snapshot of another format version")
	// ErrOtherStream: folded from another log (another stream, or the same name in another
	// cluster or after it was made again).
	ErrOtherStream = errors.New("snapshot of another log")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the snapshot of body (state.MarshalSnapshot's) with h's stream, sequence,
// time and kinds, compressed with h.Compression.
func Encode(h Header, body []byte) ([]byte, error) {
	kinds := strings.Join(h.Kinds, ",")
	switch {
	case len(h.Stream) > MaxIdentity:
		return nil, fmt.Errorf("stream identity of %d bytes, at most %d", len(h.Stream), MaxIdentity)
	case len(kinds) > MaxKinds:
		return nil, fmt.Errorf("kinds %q: at most %d bytes", kinds, MaxKinds)
	case len(body) > MaxBody:
		return nil, fmt.Errorf("snapshot body of %d bytes, at most %d", len(body), MaxBody)
	}
	pre := HeaderSize + len(h.Stream) + len(kinds)
	out := make([]byte, pre, pre+len(body)/4+64)
	switch h.Compression {
	case None:
		out = append(out, body...)
	case Zstd:
		out = zstdEncoder().EncodeAll(body, out)
	case S2:
		n := s2.MaxEncodedLen(len(body))
		if n < 0 {
			return nil, fmt.Errorf("s2: body of %d bytes too large", len(body))
		}
		out = append(out, s2.Encode(make([]byte, n), body)...)
	default:
		return nil, fmt.Errorf("unknown compression %d", h.Compression)
	}
	copy(out, Magic)
	le := binary.LittleEndian
	le.PutUint16(out[8:], Version)
	out[10] = byte(h.Compression)
	le.PutUint64(out[16:], h.Seq)
	if !h.Time.IsZero() {
		le.PutUint64(out[24:], uint64(h.Time.UnixNano()))
	}
	le.PutUint64(out[32:], uint64(len(out)-pre))
	le.PutUint64(out[40:], uint64(len(body)))
	le.PutUint16(out[48:], uint16(len(h.Stream)))
	le.PutUint16(out[50:], uint16(len(kinds)))
	copy(out[HeaderSize:], h.Stream)
	copy(out[HeaderSize+len(h.Stream):], kinds)
	le.PutUint32(out[12:], checksum(out))
	return out, nil
}

func checksum(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:12])
	return crc32.Update(c, castagnoli, b[16:])
}

// DecodeHeader reads and checks the header of data: magic, version, lengths and the checksum
// of the whole snapshot. Errors: ErrCorrupt, ErrTruncated, ErrVersion (each wrapped with what
// was found).
func DecodeHeader(data []byte) (Header, error) {
	var h Header
	if len(data) < len(Magic) || string(data[:len(Magic)]) != Magic {
		if len(data) < len(Magic) && strings.HasPrefix(Magic, string(data)) {
			return h, fmt.Errorf("%w: %d bytes, not even a header", ErrTruncated, len(data))
		}
		return h, fmt.Errorf("%w: no %q at its start: not a snapshot", ErrCorrupt, Magic)
	}
	if len(data) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrTruncated, len(data), HeaderSize)
	}
	le := binary.LittleEndian
	h.Version = le.Uint16(data[8:])
	if h.Version != Version {
		return h, fmt.Errorf("%w: version %d, this program reads version %d", ErrVersion, h.Version, Version)
	}
	h.Compression = Compression(data[10])
	h.Seq = le.Uint64(data[16:])
	if ns := le.Uint64(data[24:]); ns != 0 {
		h.Time = time.Unix(0, int64(ns)).UTC()
	}
	h.Stored, h.Raw = le.Uint64(data[32:]), le.Uint64(data[40:])
	idLen, kindsLen := int(le.Uint16(data[48:])), int(le.Uint16(data[50:]))
	switch {
	case idLen > MaxIdentity || kindsLen > MaxKinds:
		return h, fmt.Errorf("%w: header claims a stream identity of %d bytes and kinds of %d", ErrCorrupt, idLen, kindsLen)
	case h.Stored > MaxBody || h.Raw > MaxBody:
		return h, fmt.Errorf("%w: header claims a body of %d bytes (%d decompressed), at most %d", ErrCorrupt, h.Stored, h.Raw, MaxBody)
	case h.Compression == None && h.Raw != h.Stored,
		h.Raw > maxRatio*h.Stored+4096:
		// A reader allocates the body's size up front: never more than the bytes it has
		// could hold.
		return h, fmt.Errorf("%w: header claims %d bytes decompressed from %d", ErrCorrupt, h.Raw, h.Stored)
	}
	want := uint64(HeaderSize+idLen+kindsLen) + h.Stored
	if uint64(len(data)) < want {
		return h, fmt.Errorf("%w: %d bytes of %d", ErrTruncated, len(data), want)
	}
	if uint64(len(data)) > want {
		return h, fmt.Errorf("%w: %d bytes after its end", ErrCorrupt, uint64(len(data))-want)
	}
	if got, stored := checksum(data), le.Uint32(data[12:]); got != stored {
		return h, fmt.Errorf("%w: checksum %08x, the header says %08x", ErrCorrupt, got, stored)
	}
	if data[11] != 0 || le.Uint32(data[52:]) != 0 {
		return h, fmt.Errorf("%w: reserved header bytes set", ErrCorrupt)
	}
	h.Stream = string(data[HeaderSize : HeaderSize+idLen])
	if k := string(data[HeaderSize+idLen : HeaderSize+idLen+kindsLen]); k != "" {
		h.Kinds = strings.Split(k, ",")
	}
	if h.Compression > S2 {
		return h, fmt.Errorf("%w: unknown compression %d", ErrCorrupt, data[10])
	}
	return h, nil
}

// Decode checks data and returns the state it holds. stream is the identity of the log the
// caller folds ("" accepts any). Errors: ErrCorrupt, ErrTruncated, ErrVersion, ErrOtherStream,
// each wrapped with what was found. It never panics, whatever data holds.
func Decode(data []byte, stream string) (*state.State, Header, error) {
	h, err := DecodeHeader(data)
	if err != nil {
		return nil, h, err
	}
	if stream != "" && h.Stream != stream {
		return nil, h, fmt.Errorf("%w: folded from %s, this log is %s", ErrOtherStream, h.Stream, stream)
	}
	body, err := decompress(h, data[uint64(len(data))-h.Stored:])
	if err != nil {
		return nil, h, err
	}
	// Decoding allocates the whole state, which lives on: a collection meanwhile finds almost
	// nothing to free, and took about as much CPU as the decoding itself at 150,000 pods.
	resume := pauseGC()
	st, err := state.UnmarshalSnapshot(body)
	resume()
	if err != nil {
		return nil, h, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if st.Seq != h.Seq {
		return nil, h, fmt.Errorf("%w: the header says sequence %d, the body %d", ErrCorrupt, h.Seq, st.Seq)
	}
	return st, h, nil
}

func decompress(h Header, stored []byte) ([]byte, error) {
	var body []byte
	var err error
	switch h.Compression {
	case None:
		body = stored
	case Zstd:
		// The decoder stops at the buffer's capacity: the size the header says.
		body, err = zstdDecoder().DecodeAll(stored, make([]byte, 0, h.Raw))
	case S2:
		var n int
		if n, err = s2.DecodedLen(stored); err == nil && uint64(n) != h.Raw {
			err = fmt.Errorf("s2 block of %d bytes", n)
		}
		if err == nil {
			body, err = s2.Decode(make([]byte, n), stored)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s body: %v", ErrCorrupt, h.Compression, err)
	}
	if uint64(len(body)) != h.Raw {
		return nil, fmt.Errorf("%w: body of %d bytes decompressed, the header says %d", ErrCorrupt, len(body), h.Raw)
	}
	return body, nil
}

// One encoder and one decoder, made on first use, serve every snapshot: EncodeAll and
// DecodeAll may be called concurrently.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(zstdWindow))
		if err != nil {
			panic(err) // only for invalid options
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxBody), zstd.WithDecoderMaxWindow(zstdWindow),
			zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0))
		if err != nil {
			panic(err)
		}
		return d
	})
)

// gc counts the decodes that run with the collector off: the first one turns it off and the
// last one turns it back to what it was (the parts of one skiff up decode at once).
var gc struct {
	sync.Mutex
	paused  int
	percent int
}

// pauseGC turns the collector off until the returned func is called. A memory limit
// (GOMEMLIMIT) still holds meanwhile.
func pauseGC() (resume func()) {
	gc.Lock()
	if gc.paused++; gc.paused == 1 {
		gc.percent = debug.SetGCPercent(-1)
	}
	gc.Unlock()
	return func() {
		gc.Lock()
		if gc.paused--; gc.paused == 0 {
			debug.SetGCPercent(gc.percent)
		}
		gc.Unlock()
	}
}
