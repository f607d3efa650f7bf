package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/bootstrap"
)

// clusterCommands are the subcommands of `skiff cluster`, added by each file's init.
var clusterCommands []func(*app) *cobra.Command

func init() {
	clusterCommands = append(clusterCommands, newClusterBootstrapCmd)
	register(func(a *app) *cobra.Command {
		var subs []*cobra.Command
		for _, newCmd := range clusterCommands {
			subs = append(subs, newCmd(a))
		}
		return group("cluster", "Set up a multi-machine cluster: its NATS servers, identities and log", subs...)
	})
}

func newClusterBootstrapCmd(a *app) *cobra.Command {
	var cfg bootstrap.Config
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create the event log and the buckets, or bring them to these settings (admin only)",
		Long: "bootstrap creates the stream that holds the event log and the buckets beside it (node leases, the\n" +
			"scheduler's leader key, the image store), each with --replicas replicas, or brings existing ones to\n" +
			"the given settings. It is the only step that creates or changes them: the services and the rest of\n" +
			"the CLI only attach, so it needs admin credentials. Run it once after the NATS servers are up, and\n" +
			"again to change replicas or retention; it never deletes anything. skiff up does it by itself.",
		Example: "  skiff cluster bootstrap --config admin.yaml --replicas 3",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.bootstrap(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Replicas, "replicas", 1, "replicas of the stream and of every bucket: 3 on a 3-server NATS cluster")
	f.DurationVar(&cfg.MaxAge, "max-age", 0, "drop events older than this (0 keeps everything)")
	f.Var((*byteSize)(&cfg.MaxBytes), "max-bytes", "the log's size limit (64Mi, 10Gi): once reached, every write fails until it is raised; nothing is ever dropped (0: no limit)")
	f.DurationVar(&cfg.LeaderTTL, "leader-ttl", bootstrap.DefaultLeaderTTL, "how long a dead scheduler keeps leadership")
	return cmd
}

func (a *app) bootstrap(ctx context.Context, cfg bootstrap.Config) error {
	nc, err := a.conn()
	if err != nil {
		return err
	}
	cfg.Stream = a.stream
	ctx, cancel := context.WithTimeout(ctx, max(a.timeout, 30*time.Second))
	defer cancel()
	res, err := bootstrap.Run(ctx, nc, cfg)
	if err != nil {
		return err
	}
	for _, l := range res.Lines {
		fmt.Fprintln(a.Stdout, l)
	}
	return nil
}

// byteSize is a flag holding a size in bytes, written as a number of bytes or with a binary or
// decimal suffix as memory quantities are ("64Mi", "1G"); "MiB" and "GiB" are accepted too.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *byteSize) Type() string   { return "size" }

func (b *byteSize) Set(s string) error {
	q := strings.TrimSpace(s)
	if strings.HasSuffix(q, "iB") {
		q = strings.TrimSuffix(q, "B")
	}
	n, err := events.ParseMemory(q)
	if err != nil {
		return fmt.Errorf("%q: want bytes (67108864) or a size such as 64Mi or 10Gi", s)
	}
	*b = byteSize(n)
	return nil
}
