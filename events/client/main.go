package client

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
)

// Main runs a service binary: run parses args and does the work. An error is printed as one line
// "name: error" (nothing for --help) and the process exits with status 2.
func Main(name string, run func(args []string) error) {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, name+":", err)
		}
		os.Exit(2)
	}
}

// LogFlag registers --log-level on fs; the returned function builds the logger (text to stderr)
// once the flags are parsed.
func LogFlag(fs *flag.FlagSet) func() (*slog.Logger, error) {
	level := fs.String("log-level", "info", "debug, info, warn or error")
	return func() (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
	}
}

// Serve connects to NATS as name and runs fn with a context that ends on SIGINT or SIGTERM.
// Whatever the server refuses the connection is logged to log as an error.
func Serve(o Options, name string, log *slog.Logger, fn func(ctx context.Context, nc *nats.Conn) error) error {
	o.Name = name
	if o.OnRefused == nil {
		o.OnRefused = func(err error) { log.Error("the server refused an action", "err", err) }
	}
	nc, err := Connect(o)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return fn(ctx, nc)
}
