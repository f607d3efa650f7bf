package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"skiff.dev/events/natsserver"
	"skiff.dev/services/scheduler"
)

func init() { register(newUpCommand) }

// upOptions are `skiff up`'s flags.
type upOptions struct {
	dataDir  string
	listen   string
	logLevel string
}

func newUpCommand(a *app) *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole single-machine cluster in the foreground",
		Long: "up runs, in one process, an embedded NATS server with JetStream stored under --data-dir, the\n" +
			"scheduler, and this machine's node agent and net proxy. Each part has its own NATS connection, so\n" +
			"they talk only through the log, as on a multi-machine cluster. Stop it with Ctrl-C; starting it\n" +
			"again on the same data dir recovers everything from the log.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.up(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", ".data", "directory for the log and the node's state")
	f.StringVar(&o.listen, "listen", "127.0.0.1:4222", "HOST:PORT the embedded NATS server listens on")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func (a *app) up(ctx context.Context, o upOptions) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: level}))
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	srv, err := natsserver.Start(natsserver.Config{DataDir: filepath.Join(dataDir, "nats"), Listen: o.listen, Logger: log.With("part", "nats")})
	if err != nil {
		return fmt.Errorf("start NATS on %s: %w (is another skiff up running? choose another --listen)", o.listen, err)
	}
	defer srv.Stop()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	// start runs one part with its own connection until ctx ends.
	start := func(name string, run func(context.Context, *nats.Conn) error) error {
		nc, err := nats.Connect(srv.URL(), nats.Name("skiff-up/"+name), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("%s: connect: %w", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			if err := run(ctx, nc); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
		return nil
	}
	if err := start("scheduler", func(ctx context.Context, nc *nats.Conn) error {
		return scheduler.Run(ctx, scheduler.Config{Conn: nc, ID: "up", Logger: log.With("part", "scheduler")})
	}); err != nil {
		return err
	}
	if err := a.startNode(ctx, start, dataDir, log); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	fmt.Fprintf(a.Stdout, "Skiff is up: NATS at %s, data in %s\n", srv.URL(), dataDir)
	fmt.Fprintf(a.Stdout, "Try: skiff --server %s get nodes\n", srv.URL())

	<-ctx.Done()
	fmt.Fprintln(a.Stdout, "Skiff is stopping")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		log.Warn("parts did not stop within 30s; stopping NATS anyway")
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}

// startNode starts this machine's node agent and net proxy.
func (a *app) startNode(ctx context.Context, start func(string, func(context.Context, *nats.Conn) error) error, dataDir string, log *slog.Logger) error {
	return nil
}
