package controllers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"skiff.dev/events/live"
	"skiff.dev/services/scheduler/internal/controllers/deployments"
	"skiff.dev/services/scheduler/internal/controllers/endpoints"
	"skiff.dev/services/scheduler/internal/controllers/nodelifecycle"
	"skiff.dev/services/scheduler/internal/controllers/podlifecycle"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// Config configures all controllers. Log and Projection are required; the zero value of every
// other field works (Leases nil: node readiness is not tracked).
type Config struct {
	// Log is where decisions are appended; *store.Store implements it.
	Log reconcile.Log
	// LogFor, if set, gives each controller a log of its own (by name: "deployments",
	// "podlifecycle", "endpoints", "nodelifecycle") instead of Log: the leader's store.Fenced
	// writer per loop.
	LogFor func(controller string) reconcile.Log
	// Projection is the replica's live projection of the whole log.
	Projection *live.Projection
	// Leases is the node lease bucket (nodelifecycle.OpenLeaseBucket).
	Leases nodelifecycle.Leases
	// Clock is every controller's clock; default time.Now.
	Clock func() time.Time
	// Actor is written into every event, e.g. "scheduler/<replica>"; default
	// "scheduler/controllers".
	Actor  string
	Logger *slog.Logger
	// Tracer traces every controller's passes; nil traces nothing.
	Tracer trace.Tracer

	// PodCIDRRange is the cluster's pod range; default 10.88.0.0/16.
	PodCIDRRange string
	// LeaseTimeout: a Ready node that does not renew for this long becomes NotReady; default 40 s.
	LeaseTimeout time.Duration
	// EvictionTimeout: pods of a node NotReady for this long are force-deleted; default 5 min.
	EvictionTimeout time.Duration
	// DrainTimeout: a deleted pod still listed in Endpoints is stopped anyway after this; default
	// 30 s.
	DrainTimeout time.Duration
	// Resync bounds the sleep of loops waiting for the clock; default 5 s.
	Resync time.Duration
}

func (c *Config) log(controller string) reconcile.Log {
	if c.LogFor != nil {
		return c.LogFor(controller)
	}
	return c.Log
}

// Run runs every controller until ctx ends, and returns nil then. If one controller fails (only
// a bad configuration makes one fail), Run stops the others and returns its error.
func Run(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runs := []func(context.Context) error{
		deployments.New(deployments.Config{
			Log: cfg.log("deployments"), Projection: cfg.Projection, Tracer: cfg.Tracer, Clock: cfg.Clock, Actor: cfg.Actor, Logger: cfg.Logger,
		}).Run,
		podlifecycle.New(podlifecycle.Config{
			Log: cfg.log("podlifecycle"), Projection: cfg.Projection, Tracer: cfg.Tracer, Clock: cfg.Clock, Actor: cfg.Actor, Logger: cfg.Logger,
			EvictionTimeout: cfg.EvictionTimeout, DrainTimeout: cfg.DrainTimeout, Resync: cfg.Resync,
		}).Run,
		endpoints.New(endpoints.Config{
			Log: cfg.log("endpoints"), Projection: cfg.Projection, Tracer: cfg.Tracer, Clock: cfg.Clock, Actor: cfg.Actor, Logger: cfg.Logger,
		}).Run,
		nodelifecycle.New(nodelifecycle.Config{
			Log: cfg.log("nodelifecycle"), Projection: cfg.Projection, Tracer: cfg.Tracer, Leases: cfg.Leases, Clock: cfg.Clock, Actor: cfg.Actor, Logger: cfg.Logger,
			PodCIDRRange: cfg.PodCIDRRange, LeaseTimeout: cfg.LeaseTimeout, Resync: cfg.Resync,
		}).Run,
	}
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, run := range runs {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				once.Do(func() { first = err })
				cancel()
			}
		})
	}
	wg.Wait()
	return first
}
