// Package natsconf renders the configuration file of one nats-server of a Skiff cluster: what
// the stock `nats-server -c nats.conf` runs on each machine, and what `skiff up` loads in
// process with server.ProcessConfigFile.
//
// Every server trusts the cluster's operator, knows both accounts from the start
// (resolver_preload) and keeps later account updates (revocations) in a full resolver
// directory. JetStream syncs every write to disk before acknowledging it (sync_interval:
// always): the stream is the cluster's only state, and an acknowledged event must survive a
// power cut even where R1 replicas have no peers to recover from.
//
// Liveness: the server pings a client that has sent nothing for PingInterval, and a route every
// ClusterPingInterval, and drops either once PingMax pings are unanswered; with it go its
// subscriptions. Until then a scheduler replica whose machine was cut off is still a member of
// the queue group and gets its share of the requests, which are lost (the client resends them,
// package api). The defaults (two minutes for clients, 30 s for routes, two pings) keep a dead
// member for up to six minutes; Skiff's settings drop it within 15 to 20 s. Skiff's clients ping
// their server on the same schedule (package client), so either side finds the other gone: the
// server drops a cut-off client, a client leaves a cut-off server for another.
//
// Paths: nats-server resolves relative paths (TLS files, store and resolver directories)
// against its working directory, not the configuration file's. Run it from the directory of
// its nats.conf, or render absolute paths.
package natsconf

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"skiff.dev/events"
)

// Default ports.
const (
	DefaultPort        = 4222
	DefaultClusterPort = 6222
	DefaultMonitorPort = 8222
)

// MaxPayload matches the embedded server's: query answers are chunked below it.
const MaxPayload = 8 << 20

// Pings, for clients and for routes alike: a connection that answers nothing is dropped 15 to
// 20 s after it went silent (17 s measured, TestCutOffClientIsDropped). A live one is dropped
// only if it leaves three pings unanswered, i.e. reads nothing for 10 to 15 s. That is no less
// patient than the server is already: JetStream's Raft elects a new leader after 4 to 9 s
// without a peer's heartbeat, and the server drops a client it cannot write to for 10 s (its
// write_deadline). A busy client is not pinged at all (its traffic shows it is alive); an idle
// one costs a PING and a PONG, 6 bytes each, every 5 s.
const (
	PingInterval        = 5 * time.Second
	ClusterPingInterval = 5 * time.Second
	PingMax             = 3
)

// Server is one server of the cluster. Zero ports take the defaults, except MonitorPort, which
// a negative value turns off.
type Server struct {
	Name        string
	Host        string // address it listens on and others reach it at
	Port        int    // client port
	ClusterPort int    // route port
	MonitorPort int    // https (http without TLS) monitoring port; -1 for none
}

// ClientURL is how clients reach s: tls:// when the cluster uses TLS.
func (s Server) ClientURL(tls bool) string {
	scheme := "nats"
	if tls {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(s.Host, strconv.Itoa(portOr(s.Port, DefaultPort)))
}

// TLS names the PEM files of a server: its certificate and key, and the CA that verifies
// clients' (and on routes, peers') certificates.
type TLS struct {
	Cert, Key, CA string
}

// Account is an account JWT the servers know from the start.
type Account struct {
	Name      string // a comment for the reader
	PublicKey string
	JWT       string
}

// Config is the cluster's configuration. The zero value of each optional field works.
type Config struct {
	ClusterName string   // default "skiff"
	Servers     []Server // every server; more than one gets a cluster block with routes to the others
	TLS         *TLS     // nil: plain text, no client TLS and no route TLS
	StoreDir    string   // JetStream's directory
	ResolverDir string   // the full resolver's directory
	// Operator is the operator JWT, inline, or the path of a file holding it.
	Operator      string
	SystemAccount string // the system account's public key
	Accounts      []Account
}

// Render is the configuration of cfg's server called name.
//
// Errors: events.ErrInvalidArgument when name is not among the servers, or a required field is
// missing.
func Render(cfg Config, name string) ([]byte, error) {
	i := slices.IndexFunc(cfg.Servers, func(s Server) bool { return s.Name == name })
	if i < 0 {
		return nil, events.Errorf(events.ErrInvalidArgument, "no server %q in the cluster", name)
	}
	switch {
	case cfg.StoreDir == "":
		return nil, events.Errorf(events.ErrInvalidArgument, "no JetStream store directory")
	case cfg.Operator == "":
		return nil, events.Errorf(events.ErrInvalidArgument, "no operator JWT")
	case cfg.SystemAccount == "":
		return nil, events.Errorf(events.ErrInvalidArgument, "no system account")
	case cfg.ResolverDir == "":
		return nil, events.Errorf(events.ErrInvalidArgument, "no resolver directory")
	}
	me := cfg.Servers[i]
	clusterName := cfg.ClusterName
	if clusterName == "" {
		clusterName = "skiff"
	}
	var b bytes.Buffer
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	w(0, "# nats-server %s of the Skiff cluster %s. Written by skiff; run it from this directory:", me.Name, clusterName)
	w(0, "# relative paths are relative to the working directory.")
	w(0, "server_name: %s", q(me.Name))
	w(0, "listen: %s", q(hostPort(me.Host, portOr(me.Port, DefaultPort))))
	w(0, "max_payload: %d", MaxPayload)
	w(0, "# A client that leaves %d pings unanswered is dropped with its subscriptions: a scheduler", PingMax)
	w(0, "# replica cut off from the network stops being handed requests %s to %s after it went quiet.", PingMax*PingInterval, (PingMax+1)*PingInterval)
	w(0, "ping_interval: %s", q(PingInterval.String()))
	w(0, "ping_max: %d", PingMax)
	if me.MonitorPort >= 0 {
		scheme := "http"
		if cfg.TLS != nil {
			scheme = "https"
		}
		w(0, "%s: %s", scheme, q(hostPort(me.Host, portOr(me.MonitorPort, DefaultMonitorPort))))
	}
	if cfg.TLS != nil {
		w(0, "")
		w(0, "# Clients verify the server with the CA; the server does not ask them for certificates:")
		w(0, "# they authenticate with their creds.")
		tlsBlock(w, 0, cfg.TLS, false)
	}
	if len(cfg.Servers) > 1 {
		w(0, "")
		w(0, "cluster {")
		w(1, "name: %s", q(clusterName))
		w(1, "listen: %s", q(hostPort(me.Host, portOr(me.ClusterPort, DefaultClusterPort))))
		w(1, "routes: [")
		for _, s := range cfg.Servers {
			if s.Name != me.Name {
				w(2, "%s", q("nats-route://"+hostPort(s.Host, portOr(s.ClusterPort, DefaultClusterPort))))
			}
		}
		w(1, "]")
		w(1, "# A route gone silent is dropped as a client is, with every subscription it brought.")
		w(1, "ping_interval: %s", q(ClusterPingInterval.String()))
		w(1, "ping_max: %d", PingMax)
		if cfg.TLS != nil {
			w(1, "# Mutual TLS: a route is accepted only from a server with a certificate of the CA.")
			tlsBlock(w, 1, cfg.TLS, true)
		}
		w(0, "}")
	}
	w(0, "")
	w(0, "jetstream {")
	w(1, "store_dir: %s", q(cfg.StoreDir))
	w(1, "# Every write reaches the disk before it is acknowledged: the log is the only state.")
	w(1, "sync_interval: always")
	w(0, "}")
	w(0, "")
	w(0, "operator: %s", q(cfg.Operator))
	w(0, "system_account: %s", q(cfg.SystemAccount))
	w(0, "resolver {")
	w(1, "type: full")
	w(1, "dir: %s", q(cfg.ResolverDir))
	w(1, "allow_delete: false")
	w(0, "}")
	if len(cfg.Accounts) > 0 {
		w(0, "resolver_preload {")
		for _, a := range cfg.Accounts {
			if a.Name != "" {
				w(1, "# %s", a.Name)
			}
			w(1, "%s: %s", a.PublicKey, q(a.JWT))
		}
		w(0, "}")
	}
	return b.Bytes(), nil
}

func tlsBlock(w func(int, string, ...any), indent int, t *TLS, verify bool) {
	w(indent, "tls {")
	w(indent+1, "cert_file: %s", q(t.Cert))
	w(indent+1, "key_file: %s", q(t.Key))
	w(indent+1, "ca_file: %s", q(t.CA))
	if verify {
		w(indent+1, "verify: true")
	}
	w(indent+1, "timeout: 5")
	w(indent, "}")
}

func portOr(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// q quotes a string for the configuration file, which reads JSON-style double-quoted strings.
func q(s string) string { return strconv.Quote(s) }
