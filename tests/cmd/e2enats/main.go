// Command e2enats runs a NATS server with JetStream and bootstraps the log and buckets on it
// (package bootstrap), and nothing else: the end-to-end harness
// uses it when a test needs the scheduler in separate processes (several replicas, one of them
// killed), where `skiff up --control-plane-only` would add a scheduler of its own.
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

	"github.com/nats-io/nats.go"

	"skiff.dev/events/bootstrap"
	"skiff.dev/events/natsserver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4222", "HOST:PORT to listen on")
	dataDir := flag.String("data-dir", "", "directory for JetStream's files (required)")
	leaderTTL := flag.Duration("leader-ttl", bootstrap.DefaultLeaderTTL, "the leader key's TTL")
	flag.Parse()
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "e2enats: --data-dir is required")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := natsserver.Start(natsserver.Config{DataDir: *dataDir, Listen: *listen, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2enats:", err)
		os.Exit(1)
	}
	if err := bootstrapLog(srv.URL(), *leaderTTL); err != nil {
		fmt.Fprintln(os.Stderr, "e2enats: bootstrap:", err)
		srv.Stop()
		os.Exit(1)
	}
	fmt.Println("NATS listening at", srv.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Stop()
}

func bootstrapLog(url string, leaderTTL time.Duration) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = bootstrap.Run(ctx, nc, bootstrap.Config{LeaderTTL: leaderTTL})
	return err
}
