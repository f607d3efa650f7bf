// Command skiff-netproxy runs on every node: it programs every Service's virtual IP in one
// nftables table (default "skiff"), through netlink, from the Services and Endpoints on the log.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"skiff.dev/events/client"
	"skiff.dev/services/netproxy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "skiff-netproxy:", err)
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("skiff-netproxy", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff-netproxy [flags]\n\nPrograms Service virtual IPs in one nftables table of this node (needs root or CAP_NET_ADMIN).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		conn     client.Options
		cfg      netproxy.Config
		logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	)
	conn.Flags(fs)
	fs.StringVar(&cfg.Stream, "stream", "SKIFF", "JetStream stream holding the log")
	fs.StringVar(&cfg.Table, "table", "skiff", "the nftables table (family ip) this proxy owns")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	conn.Name = "skiff-netproxy"
	nc, err := client.Connect(conn)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg.Conn = nc
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return netproxy.Run(ctx, cfg)
}
