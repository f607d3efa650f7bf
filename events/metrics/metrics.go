package metrics

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"skiff.dev/events/live"
)

// Path is where a Server serves the metrics.
const Path = "/metrics"

// NewRegistry returns a registry holding the Go runtime's and the process's collectors, as
// Prometheus users expect of any Go program (go_*, process_*).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server serves a registry's metrics over HTTP.
type Server struct {
	ln   net.Listener
	done chan struct{}
}

// Start listens on addr (HOST:PORT; port 0 picks one) and serves g's metrics on Path until ctx
// ends. It fails at once when addr cannot be listened on, so a wrong --metrics-addr stops the
// process at start rather than going unnoticed.
func Start(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slogErrors{log},
		// A collector that fails (the log's head unreachable) leaves its sample out, not the
		// whole scrape.
		ErrorHandling: promhttp.ContinueOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s := &Server{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+Path)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// slogErrors hands promhttp's errors (a collector that failed) to the logger.
type slogErrors struct{ log *slog.Logger }

func (l slogErrors) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// RegisterConn registers skiff_nats_reconnects_total{connection=name} for nc, read from the
// connection's own statistics when scraped. Each connection of a process needs its own name.
func RegisterConn(reg prometheus.Registerer, nc *nats.Conn, name string) error {
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "skiff_nats_reconnects_total",
		Help:        "Times the NATS connection was lost and made again.",
		ConstLabels: prometheus.Labels{"connection": name},
	}, func() float64 { return float64(nc.Stats().Reconnects) })
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("metrics: connection %s: %w", name, err)
	}
	return nil
}

// Head is the log's last sequence; *store.Store's Head is one.
type Head func(ctx context.Context) (uint64, error)

// headTimeout bounds the round trip a scrape makes for the log's head.
const headTimeout = 2 * time.Second

// RegisterProjection registers, for a projection that follows the whole log, <prefix>_events_folded_total
// (rate() of it is the fold's events per second) and <prefix>_projection_lag_events (the log's
// last sequence less the projection's, asked of the log when scraped; no sample when the log
// does not answer).
func RegisterProjection(reg prometheus.Registerer, prefix string, p *live.Projection, head Head) error {
	folded := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: prefix + "_events_folded_total",
		Help: "Events the projection has folded (applied or skipped) since the process started.",
	}, func() float64 { return float64(p.Folded()) })
	lag := &lagCollector{
		desc: prometheus.NewDesc(prefix+"_projection_lag_events",
			"Events in the log the projection has not folded yet: the stream's last sequence minus the projection's.", nil, nil),
		p: p, head: head,
	}
	return errors.Join(reg.Register(folded), reg.Register(lag))
}

type lagCollector struct {
	desc *prometheus.Desc
	p    *live.Projection
	head Head
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), headTimeout)
	defer cancel()
	// The projection's sequence first: read after the head, a fold in between could make the
	// lag negative.
	seq := c.p.Seq()
	head, err := c.head(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("the log's last sequence: %w", err))
		return
	}
	lag := 0.0
	if head > seq {
		lag = float64(head - seq)
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, lag)
}

// FlagUsage is --metrics-addr's help, the same on every Skiff program.
const FlagUsage = "serve Prometheus metrics on http://HOST:PORT" + Path + " (e.g. 127.0.0.1:9090; default: off)"

// Flag registers --metrics-addr on fs.
func Flag(fs *flag.FlagSet) *string { return fs.String("metrics-addr", "", FlagUsage) }

// ForProcess is a service binary's metrics: with addr set, a new registry (NewRegistry, plus
// nc's reconnects under the connection name) served on addr until ctx ends; with addr empty, a
// nil Registerer (no metrics, nothing served), which the services take as "off".
func ForProcess(ctx context.Context, addr string, nc *nats.Conn, name string, log *slog.Logger) (prometheus.Registerer, error) {
	if addr == "" {
		return nil, nil
	}
	reg := NewRegistry()
	if err := RegisterConn(reg, nc, name); err != nil {
		return nil, err
	}
	if _, err := Start(ctx, addr, reg, log); err != nil {
		return nil, err
	}
	return reg, nil
}
