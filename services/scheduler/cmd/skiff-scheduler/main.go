// Command skiff-scheduler is Skiff's control plane: admission, queries and, in the leader
// replica, scheduling and the controllers. Run as many replicas as you like.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"skiff.dev/events/client"
	"skiff.dev/services/scheduler"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "skiff-scheduler:", err)
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("skiff-scheduler", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff-scheduler [flags]\n\nSkiff's control plane: validates commands, answers queries, and (leader only) schedules pods\nand runs the controllers. Any number of replicas may run against one NATS cluster.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		conn         client.Options
		cfg          scheduler.Config
		serviceCIDR  = fs.String("service-cidr", "10.96.0.0/16", "range ClusterIPs are allocated from")
		podCIDRRange = fs.String("pod-cidr", "10.88.0.0/16", "range split into one /24 pod CIDR per node")
		logLevel     = fs.String("log-level", "info", "debug, info, warn or error")
	)
	conn.Flags(fs)
	fs.StringVar(&cfg.Stream, "stream", "SKIFF", "JetStream stream holding the log")
	fs.IntVar(&cfg.Replicas, "replicas", 1, "replicas of the stream and buckets (3 in a NATS cluster)")
	fs.StringVar(&cfg.ID, "id", "", "this replica's name (default hostname-pid)")
	fs.DurationVar(&cfg.LeaseTimeout, "lease-timeout", 40*time.Second, "a node that does not renew its lease for this long is NotReady")
	fs.DurationVar(&cfg.LeaderTTL, "leader-ttl", 10*time.Second, "how long a dead leader keeps leadership")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	var err error
	if cfg.ServiceCIDR, err = netip.ParsePrefix(*serviceCIDR); err != nil {
		return fmt.Errorf("--service-cidr: %w", err)
	}
	if cfg.PodCIDRRange, err = netip.ParsePrefix(*podCIDRRange); err != nil {
		return fmt.Errorf("--pod-cidr: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	conn.Name = "skiff-scheduler"
	nc, err := client.Connect(conn)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg.Conn = nc
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return scheduler.Run(ctx, cfg)
}
