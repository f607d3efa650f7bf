// Command e2enats runs a NATS server with JetStream and nothing else: the end-to-end harness
// uses it when a test needs the scheduler in separate processes (several replicas, one of them
// killed), where `skiff up --control-plane-only` would add a scheduler of its own.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"skiff.dev/events/natsserver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4222", "HOST:PORT to listen on")
	dataDir := flag.String("data-dir", "", "directory for JetStream's files (required)")
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
	fmt.Println("NATS listening at", srv.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Stop()
}
