// Package metrics is what every Skiff process shares to be measured: a Prometheus registry
// with the Go and process collectors, an HTTP server for it on --metrics-addr, the NATS
// connection's reconnects, and a projection's fold (events folded, how far behind the log).
//
// # Design
//
// Each process has one registry, passed down to the parts it runs; no instrument is global, so
// a unit test builds its own registry (or none) and reads what it holds. Inside `skiff up` the
// scheduler, node agent and net proxy share one registry and one endpoint: every family is
// named for the part that owns it (skiff_scheduler_..., skiff_nodeagent_...,
// skiff_netproxy_...), so the parts never register a family twice. What every part has (the
// NATS connection) carries a `connection` label instead.
//
// # Cost
//
// Instruments on hot paths are counters and histograms whose label values are resolved once,
// when they are made: an observation is a few atomic operations, without allocation. What
// costs a round trip (the log's head, for the projection's lag) is read only when scraped.
package metrics
