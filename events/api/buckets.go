package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// BootstrapHint is what to do when the stream or a bucket is missing: only the bootstrap step
// creates them (package bootstrap), so services and the CLI never change what an operator set.
const BootstrapHint = store.BootstrapHint

// Missing is the error for a stream or bucket that is not there.
func Missing(what string) error {
	return events.Errorf(events.ErrNotFound, "%s not found: %s", what, BootstrapHint)
}

// OpenLeaseBucket opens LeaseBucket (node agents renew their key there, the node lifecycle
// controller watches it). It never creates it.
//
// Errors: events.ErrNotFound when the bucket does not exist; events.ErrUnavailable when
// JetStream does not answer.
func OpenLeaseBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return OpenKeyValue(ctx, js, LeaseBucket)
}

// OpenKeyValue opens an existing KV bucket; see OpenLeaseBucket for the errors.
func OpenKeyValue(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, Missing("bucket " + bucket)
	case err != nil:
		return nil, fmt.Errorf("open bucket %s: %w", bucket, errors.Join(err, events.ErrUnavailable))
	}
	return kv, nil
}
