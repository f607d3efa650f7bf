// Command skiff-netproxy runs on every node: it programs every Service's virtual IP in one
// nftables table (default "skiff"), through netlink, from the Services and Endpoints on the log.
package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/client"
	"skiff.dev/events/metrics"
	"skiff.dev/services/netproxy"
)

func main() { client.Main("skiff-netproxy", run) }

func run(args []string) error {
	fs := flag.NewFlagSet("skiff-netproxy", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff-netproxy [flags]\n\nPrograms Service virtual IPs in one nftables table of this node (needs root or CAP_NET_ADMIN).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		conn        client.Options
		cfg         netproxy.Config
		logger      = client.LogFlag(fs)
		metricsAddr = metrics.Flag(fs)
	)
	conn.Flags(fs)
	fs.StringVar(&cfg.Stream, "stream", "SKIFF", "JetStream stream holding the log")
	fs.StringVar(&cfg.Table, "table", "skiff", "the nftables table (family ip) this proxy owns")
	fs.StringVar(&cfg.Node, "node-name", "", "this node's name in traces (default the host name's first label)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	var err error
	if cfg.Logger, err = logger(); err != nil {
		return err
	}
	return client.Serve(conn, "skiff-netproxy", cfg.Logger, func(ctx context.Context, nc *nats.Conn) error {
		cfg.Conn = nc
		reg, err := metrics.ForProcess(ctx, *metricsAddr, nc, "skiff-netproxy", cfg.Logger)
		if err != nil {
			return err
		}
		cfg.Metrics = reg
		return netproxy.Run(ctx, cfg)
	})
}
