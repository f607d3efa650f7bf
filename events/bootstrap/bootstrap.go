// Package bootstrap creates and changes what holds the cluster's state: the stream of the log and
// the buckets beside it. It is the only code that does: `skiff up` runs it with its own admin
// identity, `skiff cluster bootstrap` with an operator's admin creds. Services and the CLI only
// attach to what exists (store.Attach, api.OpenKeyValue, images.OpenBucket) and say, when it is
// missing, to run this step. So starting a node agent can never change an operator's replicas or
// retention, and no identity but admin needs the stream-admin part of the JetStream API.
//
// Running it again is safe: it creates what is missing and brings what exists to the given
// settings (replicas, retention, the leader TTL); it never deletes anything.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/store"
)

// DefaultLeaderTTL is how long a dead scheduler keeps leadership unless Config.LeaderTTL says
// otherwise.
const DefaultLeaderTTL = 10 * time.Second

// Config is what to create. The zero value is one machine's: one replica, keep everything.
type Config struct {
	// Stream is the log's stream; default store.DefaultStream.
	Stream string
	// Replicas of the stream and of every bucket: 1 on one server, 3 on a 3-server cluster.
	Replicas int
	// MaxAge bounds the log's retention: older events are dropped. Zero keeps everything.
	MaxAge time.Duration
	// MaxBytes bounds the log's size. Once it is reached every append fails with store.ErrFull
	// (the stream discards new events, never old ones) until the limit is raised by running the
	// bootstrap again. Zero is no limit.
	MaxBytes int64
	// LeaderTTL is the leader key's time to live: how long a dead leader keeps leadership.
	LeaderTTL time.Duration
	Logger    *slog.Logger
}

// Result is what Run made: the log, ready to use, and one line per stream or bucket.
type Result struct {
	Store *store.Store
	// Lines say, per stream and bucket, its name, replicas and settings.
	Lines []string
}

// Run creates the stream and the buckets, or brings them to cfg.
//
// Errors: events.ErrPermissionDenied when the connection's identity may not manage streams
// (only admin may); events.ErrUnavailable when JetStream does not answer (for Replicas 3: fewer
// than three servers are up); events.ErrInvalidArgument for a change JetStream refuses (such as
// a different storage type).
func Run(ctx context.Context, nc *nats.Conn, cfg Config) (*Result, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, events.Errorf(events.ErrInvalidArgument, "replicas %d: want 1, 3 or 5 (one per server, at most five)", cfg.Replicas)
	}
	if cfg.LeaderTTL == 0 {
		cfg.LeaderTTL = DefaultLeaderTTL
	}
	var st *store.Store
	err := retryStoreRace(ctx, func() (err error) {
		st, err = store.Bootstrap(ctx, nc, store.Config{Stream: cfg.Stream, Replicas: cfg.Replicas, MaxAge: cfg.MaxAge, MaxBytes: cfg.MaxBytes, Logger: cfg.Logger})
		return err
	})
	if err != nil {
		return nil, explain(err)
	}
	js := st.JetStream()
	res := &Result{Store: st, Lines: []string{streamLine(ctx, st, cfg)}}
	kvs := []jetstream.KeyValueConfig{{
		Bucket: api.LeaseBucket, Description: "Skiff: node leases, one key per node, renewed by its agent",
		History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	}, {
		Bucket: api.LeaderBucket, Description: "Skiff: the control loops' leader",
		History: 1, TTL: cfg.LeaderTTL, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
		// Markers make expiry visible to watchers, so a standby does not have to poll.
		LimitMarkerTTL: cfg.LeaderTTL,
	}}
	for _, kc := range kvs {
		if err := retryStoreRace(ctx, func() error { _, err := js.CreateOrUpdateKeyValue(ctx, kc); return err }); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", kc.Bucket, explain(err))
		}
		line := fmt.Sprintf("bucket %s: replicas %d", kc.Bucket, kc.Replicas)
		if kc.TTL > 0 {
			line += ", ttl " + kc.TTL.String()
		}
		res.Lines = append(res.Lines, line)
	}
	objs := []jetstream.ObjectStoreConfig{{
		Bucket:      api.ImageBucket,
		Description: "Skiff: imported container images (OCI or docker save tarballs)",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Compression: true,
	}, {
		// Snapshots are compressed already (package snapshot).
		Bucket:      api.SnapshotBucket,
		Description: "Skiff: snapshots of the fold, written by the scheduler's leader",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}, {
		Bucket:      api.NodeSnapshotBucket,
		Description: "Skiff: snapshots of what nodes fold (nodes, services, endpoints)",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}}
	for _, oc := range objs {
		err = retryStoreRace(ctx, func() error { _, err := js.CreateOrUpdateObjectStore(ctx, oc); return err })
		if err != nil {
			return nil, fmt.Errorf("object store %s: %w", oc.Bucket, explain(err))
		}
		res.Lines = append(res.Lines, fmt.Sprintf("object store %s: replicas %d", oc.Bucket, oc.Replicas))
	}
	return res, nil
}

// streamLine says the stream's settings and, when the server tells it, how much it holds; it
// warns when the log already holds more than a new MaxBytes allows.
func streamLine(ctx context.Context, st *store.Store, cfg Config) string {
	line := fmt.Sprintf("stream %s: replicas %d, retention %s", st.Name(), cfg.Replicas, retention(cfg))
	info, err := st.JetStream().Stream(ctx, st.Name())
	if err != nil {
		return line
	}
	used := int64(info.CachedInfo().State.Bytes)
	line += ", holds " + store.FormatBytes(used)
	if cfg.MaxBytes > 0 && used >= cfg.MaxBytes {
		line += "; FULL: every write fails until --max-bytes is raised above what it holds"
	}
	return line
}

func retention(cfg Config) string {
	switch {
	case cfg.MaxAge == 0 && cfg.MaxBytes == 0:
		return "everything"
	case cfg.MaxBytes == 0:
		return "max age " + cfg.MaxAge.String()
	case cfg.MaxAge == 0:
		return fmt.Sprintf("max %s, then writes fail", store.FormatBytes(cfg.MaxBytes))
	}
	return fmt.Sprintf("max age %s, max %s, then writes fail", cfg.MaxAge, store.FormatBytes(cfg.MaxBytes))
}

// errCodeStreamCreate is JSStreamCreateErrF, "error creating store for stream" when the
// stream's directory could not be made.
const errCodeStreamCreate jetstream.ErrorCode = 10049

// isStoreRace reports whether err is a stream's store that could not be created because its
// directory vanished under it. nats-server (2.15.2, jetstream.go, Account.EnableJetStream)
// answers an account's JetStream API as soon as it has registered the account, and only then,
// if the account has no streams directory yet, makes one and removes it again to check that it
// can: a stream created in between loses its directory ("mkdir …/streams/SKIFF/msgs: no such
// file or directory"). That happens to the first bootstrap after a server starts, a few times
// in a hundred on a busy machine; the stream does not exist afterwards, so trying again is safe.
func isStoreRace(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamCreate && strings.Contains(apiErr.Description, "error creating store")
}

// isForming reports whether err is JetStream answering 503 (such as "not enough JetStream
// servers for the replicas asked for"): right after the servers agree on a meta leader, the
// other servers' JetStream may not be known to it yet, and a bootstrap then failed a few times in
// a hundred (the chaos suite's start-ups). Or no one answering on the JetStream API yet: a
// server that has just started registers the account's JetStream after its first client
// connects, and a `skiff up` failed once in make test with "no responders". With servers
// really missing it goes on failing, and the error says so once the retries are over.
func isForming(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503 || errors.Is(err, nats.ErrNoResponders)
}

// retryStoreRace runs create, again while it fails with isStoreRace (a few times) or isForming
// (for about 10 s).
func retryStoreRace(ctx context.Context, create func() error) error {
	err := create()
	for try := 1; try < 5 && isStoreRace(err) || try < 15 && isForming(err); try++ {
		select {
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
		err = create()
	}
	return err
}

// errCodeReplicasNotSupported is JetStream's "replicas > 1 not supported in non-clustered mode"
// (nats.go names no constant for it).
const errCodeReplicasNotSupported jetstream.ErrorCode = 10074

// explain classes what JetStream answered.
func explain(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, events.ErrPermissionDenied), errors.Is(err, events.ErrUnavailable), errors.Is(err, events.ErrInvalidArgument):
		return err
	case errors.Is(err, nats.ErrPermissionViolation):
		return events.Errorf(events.ErrPermissionDenied, "%v: only admin credentials may create or change the stream and buckets", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return events.Errorf(events.ErrUnavailable, "%v: is JetStream up, with enough servers for the replicas asked for? (a permission violation also looks like this: bootstrap needs admin credentials)", err)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeReplicasNotSupported:
		return events.Errorf(events.ErrInvalidArgument, "%v: this server is not part of a cluster; --replicas above 1 needs that many clustered servers (skiff cluster init)", err)
	case errors.As(err, &apiErr) && apiErr.Code == 503:
		return events.Errorf(events.ErrUnavailable, "%v: not enough JetStream servers for the replicas asked for", err)
	case errors.As(err, &apiErr) && apiErr.Code < 500:
		return events.Errorf(events.ErrInvalidArgument, "%v", err)
	}
	return err
}
