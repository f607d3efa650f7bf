// Package natsserver runs an embedded NATS server with JetStream, for `skiff up` and for tests.
package natsserver

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server. The zero value listens on a random loopback port and
// keeps JetStream in a temporary directory chosen by the server.
type Config struct {
	// DataDir holds JetStream's files; required for anything that must survive a restart.
	DataDir string
	// Listen is host:port; default 127.0.0.1 with a random port.
	Listen string
	// Name is the server name; default "skiff".
	Name string
	// ConfigFile, if set, is a nats-server configuration file (package natsconf renders them)
	// that replaces every setting above: skiff up runs its server with operator JWTs this way.
	ConfigFile string
	// Tune, if set, changes the options read from ConfigFile before the server starts.
	Tune   func(*server.Options)
	Logger *slog.Logger
}

// Server is a running embedded server.
type Server struct {
	*server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	host, port := "127.0.0.1", -1
	if cfg.Listen != "" {
		h, p, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: want HOST:PORT: %w", cfg.Listen, err)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return nil, fmt.Errorf("listen address %q: port must be a number from 0 to 65535", cfg.Listen)
		}
		host, port = h, n
		if port == 0 {
			port = -1
		}
	}
	name := cfg.Name
	if name == "" {
		name = "skiff"
	}
	if cfg.ConfigFile != "" {
		opts, err := server.ProcessConfigFile(cfg.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("nats server config %s: %w", cfg.ConfigFile, err)
		}
		opts.NoSigs = true
		opts.NoLog = cfg.Logger == nil
		if cfg.Tune != nil {
			cfg.Tune(opts)
		}
		return StartOptions(opts, cfg.Logger)
	}
	opts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
		// Query answers are chunked well below this; events are far smaller.
		MaxPayload: 8 << 20,
	}
	return StartOptions(opts, cfg.Logger)
}

// StartOptions starts a server from options the caller made (operator mode with an in-memory
// account resolver, a cluster's nats.conf read by server.ProcessConfigFile) and waits until it
// accepts connections (readyWithin at most). logger, if set, receives the server's log.
func StartOptions(opts *server.Options, logger *slog.Logger) (*Server, error) {
	host, port := opts.Host, opts.Port
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if logger != nil {
		s.SetLoggerV2(&slogAdapter{logger}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(readyWithin) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server on %s:%d did not become ready within %v", host, port, readyWithin)
	}
	return &Server{s}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ClientURL() }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  {}

// readyWithin bounds the wait for a starting server: 10 s was exceeded by a clustered server
// (TLS, JetStream) under the race detector on a busy 2-core machine.
const readyWithin = 30 * time.Second
