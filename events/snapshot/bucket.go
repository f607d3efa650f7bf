package snapshot

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/store"
)

// DefaultKeep is how many snapshots a bucket keeps unless told otherwise.
const DefaultKeep = 3

// Bucket is an object store of snapshots, one object per snapshot, named for its sequence so
// that names sort as sequences do.
type Bucket struct {
	obs  jetstream.ObjectStore
	name string
}

// Info is a snapshot as a bucket lists it, without reading it.
type Info struct {
	Name   string
	Seq    uint64
	Size   uint64
	Stream string
	// Modified is when it was written (the server's time).
	Modified time.Time
}

// objectPrefix starts every snapshot's object name; the rest is its sequence, 20 digits.
const objectPrefix = "snapshot-"

// ObjectName is the name of the snapshot at seq.
func ObjectName(seq uint64) string { return fmt.Sprintf("%s%020d", objectPrefix, seq) }

// Open opens the bucket called name (api.SnapshotBucket or api.NodeSnapshotBucket). It never
// creates it: only the bootstrap step does.
//
// Errors: events.ErrNotFound when the bucket does not exist (made by a bootstrap older than
// snapshots); events.ErrPermissionDenied when the identity may not read it; otherwise
// events.ErrUnavailable.
func Open(ctx context.Context, js jetstream.JetStream, name string) (*Bucket, error) {
	obs, err := js.ObjectStore(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, api.Missing("object store " + name)
	case isDenied(err):
		return nil, events.Errorf(events.ErrPermissionDenied, "open object store %s: %v: these credentials may not read it (creds minted before snapshots; mint them again)", name, err)
	case err != nil:
		return nil, fmt.Errorf("open object store %s: %w", name, errors.Join(err, events.ErrUnavailable))
	}
	return &Bucket{obs: obs, name: name}, nil
}

// isDenied reports whether err is the server refusing a request for permissions. A refused
// JetStream API request is not answered at all; nats.go then waits out its timeout, so a
// refusal usually shows as a timeout the connection's error handler explains.
func isDenied(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation"))
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// List returns the bucket's snapshots, newest first. Objects that are not snapshots are left
// out.
func (b *Bucket) List(ctx context.Context) ([]Info, error) {
	objs, err := b.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots in %s: %w", b.name, classify(err))
	}
	var out []Info
	for _, o := range objs {
		digits, ok := strings.CutPrefix(o.Name, objectPrefix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, Info{Name: o.Name, Seq: seq, Size: o.Size, Stream: o.Metadata[metaStream], Modified: o.ModTime})
	}
	slices.SortFunc(out, func(a, b Info) int { return -cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// classify turns what JetStream answered into one of events' classes.
func classify(err error) error {
	switch {
	case isDenied(err):
		return errors.Join(err, events.ErrPermissionDenied)
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return errors.Join(err, events.ErrNotFound)
	}
	return errors.Join(err, events.ErrUnavailable)
}

// Object metadata: what List shows without reading the snapshot.
const (
	metaStream  = "stream"
	metaVersion = "version"
	metaKinds   = "kinds"
)

// Put stores a snapshot Encode made, under the name of its sequence.
func (b *Bucket) Put(ctx context.Context, h Header, data []byte) (Info, error) {
	meta := jetstream.ObjectMeta{
		Name:        ObjectName(h.Seq),
		Description: fmt.Sprintf("Skiff: the fold of %s up to sequence %d", h.Stream, h.Seq),
		Metadata: map[string]string{metaStream: h.Stream, metaVersion: strconv.Itoa(int(Version)),
			metaKinds: strings.Join(h.Kinds, ",")},
	}
	o, err := b.obs.Put(ctx, meta, bytes.NewReader(data))
	if err != nil {
		return Info{}, fmt.Errorf("put snapshot %d in %s: %w", h.Seq, b.name, classify(err))
	}
	return Info{Name: o.Name, Seq: h.Seq, Size: o.Size, Stream: h.Stream, Modified: o.ModTime}, nil
}

// Get reads a snapshot whole. The object store checks its digest on the way.
func (b *Bucket) Get(ctx context.Context, name string) ([]byte, error) {
	data, err := b.obs.GetBytes(ctx, name)
	if err != nil {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return nil, fmt.Errorf("read snapshot %s from %s: %w: %v", name, b.name, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("read snapshot %s from %s: %w", name, b.name, classify(err))
	}
	return data, nil
}

// Delete deletes the named snapshots; one that is not there is no error.
func (b *Bucket) Delete(ctx context.Context, names ...string) error {
	var errs []error
	for _, name := range names {
		if err := b.obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			errs = append(errs, fmt.Errorf("delete snapshot %s from %s: %w", name, b.name, classify(err)))
		}
	}
	return errors.Join(errs...)
}

// Prune deletes all but the newest keep snapshots and returns the names it deleted.
func (b *Bucket) Prune(ctx context.Context, keep int) ([]string, error) {
	if keep < 1 {
		keep = 1
	}
	infos, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, in := range infos[min(keep, len(infos)):] {
		deleted = append(deleted, in.Name)
	}
	return deleted, b.Delete(ctx, deleted...)
}

// Identity is the identity of st's stream as snapshots record it: its name and when it was
// made. Another cluster's stream of the same name, or this one made again, has another.
func Identity(ctx context.Context, st *store.Store) (string, error) {
	s, err := st.JetStream().Stream(ctx, st.Name())
	if err != nil {
		return "", fmt.Errorf("stream %s info: %w", st.Name(), errors.Join(err, events.ErrUnavailable))
	}
	info := s.CachedInfo()
	return info.Config.Name + "@" + info.Created.UTC().Format(time.RFC3339Nano), nil
}
