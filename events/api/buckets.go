package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
)

// OpenLeaseBucket opens LeaseBucket, creating it if it is missing (history 1, file storage):
// node agents renew their key there, the node lifecycle controller watches it.
//
// Errors: events.ErrUnavailable when JetStream does not answer.
func OpenLeaseBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, LeaseBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: LeaseBucket, Description: "Skiff: node leases, one key per node, renewed by its agent",
			History: 1, Storage: jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another agent or controller created it in the meantime.
			kv, err = js.KeyValue(ctx, LeaseBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", LeaseBucket, errors.Join(err, events.ErrUnavailable))
	}
	return kv, nil
}
