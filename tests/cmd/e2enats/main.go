// Command e2enats runs a NATS server with JetStream, with skiff up's authentication (package
// localauth: creds for admin, the scheduler and a user under DATA-DIR/auth; the harness mints
// the nodes' with skiff node creds), and
// bootstraps the log and buckets on it (package bootstrap), and nothing else: the end-to-end
// harness uses it when a test needs the scheduler in separate processes (several replicas, one
// of them killed), where `skiff up --control-plane-only` would add a scheduler of its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"skiff.dev/events/bootstrap"
	"skiff.dev/events/client"
	"skiff.dev/events/localauth"
	"skiff.dev/events/natsserver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4222", "HOST:PORT to listen on")
	dataDir := flag.String("data-dir", "", "directory for JetStream's files and the creds (required)")
	leaderTTL := flag.Duration("leader-ttl", bootstrap.DefaultLeaderTTL, "the leader key's TTL")
	flag.Parse()
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "e2enats: --data-dir is required")
		os.Exit(2)
	}
	if err := run(*dataDir, *listen, *leaderTTL); err != nil {
		fmt.Fprintln(os.Stderr, "e2enats:", err)
		os.Exit(1)
	}
}

func run(dataDir, listen string, leaderTTL time.Duration) error {
	// Plain text: the harness's own network namespaces; skiff up there runs with TLS.
	ua, err := localauth.Prepare(dataDir, listen, nil, "e2e", localauth.TLSOff)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := natsserver.Start(natsserver.Config{ConfigFile: ua.ConfPath, Logger: log,
		Tune: func(o *server.Options) { o.SyncAlways, o.SyncInterval = false, 0 }})
	if err != nil {
		return err
	}
	defer srv.Stop()
	nc, err := client.Connect(client.Options{Server: srv.URL(), Creds: ua.Creds["admin"], Name: "e2enats/bootstrap"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err = bootstrap.Run(ctx, nc, bootstrap.Config{LeaderTTL: leaderTTL})
	cancel()
	nc.Close()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	fmt.Println("NATS listening at", srv.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}
