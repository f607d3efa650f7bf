package register

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// DefaultLeaseInterval is how often a node renews its lease unless told otherwise: a quarter of
// the control plane's default 40 s lease timeout, as the kubelet renews every 10 s for 40 s.
const DefaultLeaseInterval = 10 * time.Second

// Lease is the value of a node's key in the lease bucket.
type Lease struct {
	Node string `json:"node"`
	// RenewTime is the node's clock at renewal, for people; the lifecycle controller goes by the
	// key's server-stamped update time.
	RenewTime time.Time `json:"renewTime"`
	// IntervalSeconds is how often the node means to renew.
	IntervalSeconds int64 `json:"intervalSeconds,omitempty"`
}

// LeaseKV is the part of a KV bucket a lease needs; jetstream.KeyValue is one.
type LeaseKV interface {
	Put(ctx context.Context, key string, value []byte) (uint64, error)
}

// LeaseBucket opens the lease bucket, which the bootstrap step creates; see api.OpenLeaseBucket.
func LeaseBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return api.OpenLeaseBucket(ctx, js)
}

// RenewLease puts the node's lease now. Errors wrap events.ErrUnavailable.
func RenewLease(ctx context.Context, kv LeaseKV, node string) error {
	return renew(ctx, kv, node, time.Now(), 0)
}

func renew(ctx context.Context, kv LeaseKV, node string, now time.Time, interval time.Duration) error {
	b, err := json.Marshal(Lease{Node: node, RenewTime: now.UTC(), IntervalSeconds: int64(interval / time.Second)})
	if err != nil {
		return fmt.Errorf("encode lease of %s: %w", node, err)
	}
	if _, err := kv.Put(ctx, node, b); err != nil {
		return fmt.Errorf("renew lease of %s: %w", node, errors.Join(err, events.ErrUnavailable))
	}
	return nil
}

// RenewConfig configures RenewLoop; the zero value renews every DefaultLeaseInterval.
type RenewConfig struct {
	Interval time.Duration
	Clock    func() time.Time
	Logger   *slog.Logger
	// Renewed, if set, is called after each round with the number of leases renewed; tests
	// use it to wait without sleeping.
	Renewed func(n int)
}

// RenewLoop renews the leases of nodes at once and then every interval until ctx ends, and
// returns nil then. A failed renewal is logged and retried at the next round: one missed beat is
// well within the lease timeout.
func RenewLoop(ctx context.Context, kv LeaseKV, nodes []string, cfg RenewConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultLeaseInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		n := 0
		for _, node := range nodes {
			if ctx.Err() != nil {
				return nil
			}
			if err := renew(ctx, kv, node, cfg.Clock(), cfg.Interval); err != nil {
				cfg.Logger.Warn("lease renewal failed; retrying next round", "node", node, "err", err)
				continue
			}
			n++
		}
		if cfg.Renewed != nil {
			cfg.Renewed(n)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}
