// Command simnodes runs simulated nodes against a NATS server, for benchmarks and experiments
// until skiff-nodeagent --simulate exists. It prints "ready N" on stdout once N nodes are
// registered and following their work, and runs until interrupted.
//
//	go run ./services/nodeagent/internal/simulate/simnodes -nats nats://127.0.0.1:4222 -nodes 1000
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

	"skiff.dev/events/client"
	"skiff.dev/events/store"
	"skiff.dev/services/nodeagent/internal/simulate"
)

func main() {
	url := flag.String("nats", nats.DefaultURL, "NATS server URL, without creds or TLS (see --server)")
	var conn client.Options
	conn.Flags(flag.CommandLine)
	count := flag.Int("nodes", 100, "number of simulated nodes")
	prefix := flag.String("prefix", simulate.DefaultPrefix, "node name prefix")
	cpu := flag.Int64("milli-cpu", simulate.DefaultMilliCPU, "CPU of each node, in millicores")
	mem := flag.Int64("memory", simulate.DefaultMemory, "memory of each node, in bytes")
	maxPods := flag.Int("max-pods", simulate.DefaultMaxPods, "pods per node")
	lease := flag.Duration("lease-interval", 10*time.Second, "lease renewal interval")
	verbose := flag.Bool("v", false, "log at debug level")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if conn.Server == "" && conn.Config == "" {
		conn = client.Options{Server: *url}
	}
	if err := run(ctx, log, conn, simulate.Config{
		Count: *count, Prefix: *prefix, MilliCPU: *cpu, Memory: *mem, MaxPods: int32(*maxPods),
		LeaseInterval: *lease, Logger: log,
		Ready: func(nodes []string) { fmt.Printf("ready %d\n", len(nodes)) },
	}); err != nil {
		log.Error("simnodes", "err", err)
		os.Exit(1)
	}
}

// run simulates the nodes over one connection: with creds, they must allow every node's subjects
// (admin's do; one node's creds cover that node only).
func run(ctx context.Context, log *slog.Logger, conn client.Options, cfg simulate.Config) error {
	conn.Name = "simnodes"
	nc, err := client.Connect(conn)
	if err != nil {
		return err
	}
	defer nc.Close()
	st, err := store.Attach(ctx, nc, store.Config{Logger: log})
	if err != nil {
		return err
	}
	cfg.Store = st
	return simulate.Run(ctx, cfg)
}
