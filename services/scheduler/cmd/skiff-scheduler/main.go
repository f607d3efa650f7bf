// Command skiff-scheduler is Skiff's control plane: admission, queries and, in the leader
// replica, scheduling and the controllers. Run as many replicas as you like.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/client"
	"skiff.dev/events/metrics"
	"skiff.dev/events/snapshot"
	"skiff.dev/services/scheduler"
)

func main() { client.Main("skiff-scheduler", run) }

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
		logger       = client.LogFlag(fs)
		metricsAddr  = metrics.Flag(fs)
	)
	conn.Flags(fs)
	fs.StringVar(&cfg.Stream, "stream", "SKIFF", "JetStream stream holding the log")
	fs.StringVar(&cfg.ID, "id", "", "this replica's name (default hostname-pid)")
	fs.DurationVar(&cfg.LeaseTimeout, "lease-timeout", 40*time.Second, "a node that does not renew its lease for this long is NotReady")
	snapshot.Flags(fs, &cfg.Snapshots)
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
	if cfg.Logger, err = logger(); err != nil {
		return err
	}
	return client.Serve(conn, "skiff-scheduler", cfg.Logger, func(ctx context.Context, nc *nats.Conn) error {
		cfg.Conn = nc
		reg, err := metrics.ForProcess(ctx, *metricsAddr, nc, "skiff-scheduler", cfg.Logger)
		if err != nil {
			return err
		}
		cfg.Metrics = reg
		return scheduler.Run(ctx, cfg)
	})
}
