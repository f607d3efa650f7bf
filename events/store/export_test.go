package store

import (
	"context"
	"sync/atomic"
)

// Watch exposes the follower's stall watchdog to the tests.
func (s *Store) Watch(ctx context.Context, filters []string, last *atomic.Uint64, stalled func()) {
	s.watch(ctx, filters, last, stalled)
}
