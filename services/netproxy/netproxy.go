// Package netproxy is the net proxy service, kube-proxy's job in nftables mode: it follows the
// Services and Endpoints on the log and programs every Service's virtual IP in one nftables
// table of this node (internal/rules), through netlink.
package netproxy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/live"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/store"
	"skiff.dev/events/telemetry"
	"skiff.dev/services/netproxy/internal/proxier"
	"skiff.dev/services/netproxy/internal/rules"
)

// Config configures a net proxy. Conn is required; every other zero value works.
type Config struct {
	Conn   *nats.Conn
	Stream string
	// Table is the nftables table (family ip) the proxy owns; default "skiff".
	Table  string
	Logger *slog.Logger
	// Synced, if set, is called after every successful sync with the log sequence it reflects.
	Synced func(seq uint64)
	// Metrics, if set, receives the proxy's metrics (skiff_netproxy_*); Run fails if it holds
	// them already.
	Metrics prometheus.Registerer
	// Node names this node in traces (service.instance.id, k8s.node.name); default the host
	// name's first label.
	Node string
}

// Filters are the subjects the proxy reads: Services and their Endpoints, nothing else.
var Filters = []string{events.KindFilter(events.KindService), events.KindFilter(events.KindEndpoints)}

// snapshotKinds are the kinds of Filters, what the proxy keeps of a snapshot.
var snapshotKinds = []string{events.KindService, events.KindEndpoints}

// Run programs the rules until ctx ends. The table stays when it returns, so Services keep
// working while the proxy restarts; the next start replaces it whole.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Conn == nil {
		return fmt.Errorf("net proxy: no NATS connection: %w", events.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" {
		host, _ := os.Hostname()
		cfg.Node, _, _ = strings.Cut(host, ".")
	}
	tp, err := telemetry.Setup(ctx, telemetry.Config{Service: telemetry.ServiceNetProxy, Instance: cfg.Node})
	if err != nil {
		return fmt.Errorf("net proxy: %w", err)
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(fctx); err != nil {
			cfg.Logger.Warn("flush traces", "err", err)
		}
	}()
	if tp.Enabled() {
		cfg.Logger = slog.New(telemetry.NewLogHandler(cfg.Logger.Handler()))
	}
	st, err := store.Attach(ctx, cfg.Conn, store.Config{Stream: cfg.Stream, Logger: cfg.Logger})
	if err != nil {
		return fmt.Errorf("net proxy: %w", err)
	}
	m, err := rules.NewMetrics(cfg.Metrics)
	if err != nil {
		return fmt.Errorf("net proxy: %w", err)
	}
	syncer, err := rules.NewSyncer(rules.Config{Table: cfg.Table, Logger: cfg.Logger, Metrics: m})
	if err != nil {
		return fmt.Errorf("net proxy: nftables: %w", err)
	}
	defer syncer.Close()

	// The follower ends with ctx, so it is cancelled before it is waited for (defers run last
	// first): the proxier returning an error must not wait for the caller to end ctx.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// From the newest snapshot of what nodes read, restricted to what the proxy folds.
	proj := live.New(snapshot.Start(ctx, st, api.NodeSnapshotBucket, snapshotKinds, cfg.Logger), cfg.Logger)
	followErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := proj.Run(ctx, st, Filters); err != nil {
			followErr <- fmt.Errorf("follow services: %w", err)
			cancel()
		}
	}()
	err = proxier.New(proxier.Config{Projection: proj, Rules: syncer, Logger: cfg.Logger, Synced: cfg.Synced,
		Tracer: tp.Tracer(), Node: cfg.Node}).Run(ctx)
	select {
	case e := <-followErr:
		return e
	default:
		return err
	}
}
