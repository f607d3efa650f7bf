package eventstest

import (
	"context"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"skiff.dev/events/bootstrap"
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

// NewServerOptions starts an embedded server from opts, stopped at cleanup: for the servers
// NewServer cannot make, such as one in operator mode or one of a cluster's nats.conf files.
func NewServerOptions(t testing.TB, opts *server.Options) *natsserver.Server {
	t.Helper()
	opts.NoSigs, opts.NoLog = true, true
	s, err := natsserver.StartOptions(opts, nil)
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

// NewStore starts a server and bootstraps the event log and the buckets on it, as skiff up does.
func NewStore(t testing.TB) (*store.Store, *nats.Conn, *natsserver.Server) {
	t.Helper()
	return NewStoreConfig(t, bootstrap.Config{})
}

// NewStoreConfig is NewStore with bootstrap settings (a short leader TTL, say).
func NewStoreConfig(t testing.TB, cfg bootstrap.Config) (*store.Store, *nats.Conn, *natsserver.Server) {
	t.Helper()
	s := NewServer(t)
	nc := Connect(t, s)
	res, err := bootstrap.Run(context.Background(), nc, cfg)
	if err != nil {
		t.Fatalf("bootstrap the log: %v", err)
	}
	return res.Store, nc, s
}
