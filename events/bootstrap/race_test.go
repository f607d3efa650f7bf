package bootstrap

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"skiff.dev/events"
)

// The failure that nats-server's race at an account's first JetStream use produces is tried
// again; other failures are not.
func TestRetryStoreRace(t *testing.T) {
	race := fmt.Errorf("create stream SKIFF: %w", &jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"})
	forming := &jetstream.APIError{Code: 503, ErrorCode: 10039, Description: "JetStream not enabled for account: not enough JetStream servers for the replicas asked for"}
	noResponders := fmt.Errorf("create stream SKIFF: %w", fmt.Errorf("%w: %w", events.ErrUnavailable, nats.ErrNoResponders))
	for _, tc := range []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   bool
	}{
		{name: "race once", errs: []error{race, nil}, wantCalls: 2},
		{name: "race always", errs: []error{race, race, race, race, race, race}, wantCalls: 5, wantErr: true},
		{name: "other error", errs: []error{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use"}}, wantCalls: 1, wantErr: true},
		{name: "ok", errs: []error{nil}, wantCalls: 1},
		{name: "cluster forming", errs: []error{forming, forming, forming, nil}, wantCalls: 4},
		{name: "account registering", errs: []error{noResponders, noResponders, nil}, wantCalls: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := retryStoreRace(context.Background(), func() error {
				calls++
				return tc.errs[min(calls, len(tc.errs))-1]
			})
			if calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Errorf("%d calls, err %v; want %d calls, error %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

// A 503 that went through the store's error translation is still seen as a cluster forming.
func TestFormingSurvivesTranslation(t *testing.T) {
	err := fmt.Errorf("create stream SKIFF: %w", fmt.Errorf("%w: %w", events.ErrUnavailable,
		&jetstream.APIError{Code: 503, ErrorCode: 10039, Description: "JetStream not enabled for account"}))
	if !isForming(err) {
		t.Fatalf("isForming(%v) = false, want true", err)
	}
}
