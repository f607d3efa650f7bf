// Package eventstest starts real, embedded JetStream servers for tests.
package eventstest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/natsserver"
	"skiff.dev/events/store"
)

// NewServer starts an embedded NATS server with JetStream in t.TempDir(), stopped at cleanup.
func NewServer(t testing.TB) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Connect opens a client connection to s, closed at cleanup.
func Connect(t testing.TB, s *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// NewStore starts a server and opens the event log on it.
func NewStore(t testing.TB) (*store.Store, *nats.Conn, *natsserver.Server) {
	t.Helper()
	s := NewServer(t)
	nc := Connect(t, s)
	st, err := store.Open(context.Background(), nc, store.Config{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st, nc, s
}
