// Package client connects Skiff's programs to NATS the same way: one set of flags (--config,
// --server, --creds, --tls-ca), a client config file like kubeconfig, reconnecting forever, and
// errors that say what to check.
//
// # Where the settings come from
//
// Each setting is taken from the first of: its flag, its environment variable (SKIFF_SERVER,
// SKIFF_CREDS, SKIFF_CA), the config file (--config, else $SKIFF_CONFIG, else
// $XDG_CONFIG_HOME/skiff/config or ~/.config/skiff/config, if it exists), the default
// (DefaultServer, no creds, the system's CAs).
//
// # Identity
//
// With creds, the connection's identity is the user JWT's name ("admin", "scheduler",
// "node:NAME" or a user's name). Its inboxes are under "_INBOX.<identity>": the server lets a
// client subscribe only there, so no one reads another's replies.
package client

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/auth"
)

// DefaultServer is where a single-machine cluster (skiff up) listens.
const DefaultServer = "nats://127.0.0.1:4222"

// Options says where the cluster's NATS is and how to authenticate. Empty fields are filled from
// the environment and the config file (see the package doc).
type Options struct {
	// Server is one or more comma-separated NATS URLs.
	Server string
	// Creds is a NATS credentials file (user JWT + nkey seed).
	Creds string
	// CA is a PEM file of the CA that signed the servers' certificates; tls:// URLs without it
	// use the system's CAs.
	CA string
	// Config is the client config file.
	Config string
	// Name names the connection in the server's monitoring.
	Name string
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
	// Dialer, if set, makes the TCP connections (tests dial into network namespaces).
	Dialer nats.CustomDialer
	// OnRefused, if set, hears every publish or subscription the server refused, worded for
	// people (events.ErrPermissionDenied). NATS reports those asynchronously: a refused request
	// would otherwise only time out. Default: nothing.
	OnRefused func(error)
}

// Flags registers --config, --server, --creds and --tls-ca on fs.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Config, "config", "", "client config file (env SKIFF_CONFIG, default ~/.config/skiff/config)")
	fs.StringVar(&o.Server, "server", "", "NATS server URL(s), comma-separated (env SKIFF_SERVER, default "+DefaultServer+")")
	fs.StringVar(&o.Creds, "creds", "", "NATS credentials file (env SKIFF_CREDS)")
	fs.StringVar(&o.CA, "tls-ca", "", "CA certificate (PEM) the servers' certificates are checked against (env SKIFF_CA)")
}

// Resolved are the settings a connection uses, after flags, environment, file and defaults.
type Resolved struct {
	Server, Creds, CA string
	// ConfigFile is the config file that was read, if any.
	ConfigFile string
}

// Resolve applies the environment, the config file and the defaults to o.
func (o Options) Resolve() (Resolved, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	r := Resolved{
		Server: cmp.Or(o.Server, getenv("SKIFF_SERVER")),
		Creds:  cmp.Or(o.Creds, getenv("SKIFF_CREDS")),
		CA:     cmp.Or(o.CA, getenv("SKIFF_CA")),
	}
	path, explicit := cmp.Or(o.Config, getenv("SKIFF_CONFIG")), true
	if path == "" {
		path, explicit = DefaultConfigPath(getenv), false
	}
	if path != "" {
		f, err := ReadConfig(path)
		switch {
		case err == nil:
			r.ConfigFile = path
			r.Server = cmp.Or(r.Server, f.Server)
			r.Creds = cmp.Or(r.Creds, f.Creds)
			r.CA = cmp.Or(r.CA, f.CA)
		case explicit || !errors.Is(err, os.ErrNotExist):
			return r, err
		}
	}
	r.Server = cmp.Or(r.Server, DefaultServer)
	return r, nil
}

// URL is the server URL(s) the options resolve to, for messages; DefaultServer if they do not
// resolve.
func (o Options) URL() string {
	r, _ := o.Resolve()
	return cmp.Or(r.Server, DefaultServer)
}

// PingInterval and MaxPingsOut bound how long a connection to a server that stopped answering
// lives on: about PingInterval × (MaxPingsOut + 1).
const (
	PingInterval = 5 * time.Second
	MaxPingsOut  = 3
)

// Connect connects, failing fast if the server is not there now; once connected, the connection
// reconnects forever. Errors say what was refused and what to do:
//   - events.ErrInvalidArgument: unreadable config, creds or CA file;
//   - events.ErrPermissionDenied: the server refused the credentials (none, wrong, expired, revoked);
//   - events.ErrUnavailable: no server answered, or TLS failed (wrong CA, plain text to a TLS port).
func Connect(o Options) (*nats.Conn, error) {
	r, err := o.Resolve()
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(5 * time.Second),
		// A server cut off the network (its VM lost, a partition) sends nothing, and TCP says
		// nothing for minutes: the client's own pings find it. Until then the connection's
		// subscriptions (a scheduler's queue group) still draw requests that nobody answers, so
		// nats.go's default of 2 min × 2 pings is far too long; 5 s × 3 finds a dead server within
		// 20 s and reconnects to another.
		nats.PingInterval(PingInterval),
		nats.MaxPingsOutstanding(MaxPingsOut),
	}
	if o.Dialer != nil {
		opts = append(opts, nats.SetCustomDialer(o.Dialer))
	}
	identity := ""
	if r.Creds != "" {
		if identity, err = IdentityOf(r.Creds); err != nil {
			return nil, err
		}
	}
	if o.OnRefused != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				o.OnRefused(Refused(identity, err))
			}
		}))
	}
	if r.Creds != "" {
		opts = append(opts, nats.UserCredentials(r.Creds), nats.CustomInboxPrefix(InboxPrefix(identity)))
	}
	if r.CA != "" {
		pool, err := loadCA(r.CA)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	nc, err := nats.Connect(r.Server, opts...)
	for try := 1; err != nil && pingBeforePong(err) && try < handshakeTries; try++ {
		nc, err = nats.Connect(r.Server, opts...)
	}
	if err != nil {
		return nil, explain(r, err)
	}
	return nc, nil
}

// handshakeTries bounds the connection attempts that lose the handshake race pingBeforePong
// tells.
const handshakeTries = 4

// pingBeforePong reports whether a connection attempt failed only because the server's first
// PING overtook its answer to the client's CONNECT: nats-server pings a new client 2 s (plus up
// to 20%) after accepting it, whether or not it has answered yet, and nats.go then gives up with
// "expected 'PONG', got 'PING'" (nats-server issue 1174). A busy server (200 CLIs connecting at
// once over TLS with creds, on 2 cores) takes that long; it is there, so try again.
func pingBeforePong(err error) bool {
	return err != nil && strings.Contains(err.Error(), "expected 'PONG', got 'PING'")
}

// Refused words a permission violation the server reported for identity: which action on which
// subject it refused, and that the identity's permissions are the reason.
func Refused(identity string, err error) error {
	who := identity
	if who == "" {
		who = "a client without credentials"
	}
	return events.Errorf(events.ErrPermissionDenied, "the server refused it: %v; %s may not do that (each identity may act only on its own subjects: see docs/architecture.md, Identities)", err, who)
}

// Identity is the identity the options connect as: the creds' user name, or "" without creds.
func (o Options) Identity() (string, error) {
	r, err := o.Resolve()
	if err != nil || r.Creds == "" {
		return "", err
	}
	return IdentityOf(r.Creds)
}

// InboxPrefix is where identity's replies arrive; its permissions allow subscribing only there.
func InboxPrefix(identity string) string { return auth.InboxPrefix(identity) }

// IdentityOf is the identity (user JWT name) in a creds file.
func IdentityOf(creds string) (string, error) {
	id, _, err := auth.IdentityFromCreds(creds)
	return id, err
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, events.Errorf(events.ErrInvalidArgument, "CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, events.Errorf(events.ErrInvalidArgument, "CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// explain turns a failed connect into one line naming what was refused and how to fix it.
func explain(r Resolved, err error) error {
	if e := auth.ExplainTLSError(err, r.CA); e != err {
		return fmt.Errorf("connect to %s: %w", r.Server, e)
	}
	if e := auth.ExplainConnectError(err, r.Creds); e != err {
		return fmt.Errorf("connect to %s: %w", r.Server, e)
	}
	return events.Errorf(events.ErrUnavailable, "connect to NATS at %s: %v (is the server running? set --server, SKIFF_SERVER or server: in %s)", r.Server, err, cmp.Or(r.ConfigFile, "the config file"))
}

// DefaultConfigPath is $XDG_CONFIG_HOME/skiff/config, else $HOME/.config/skiff/config, else "",
// all read through getenv only: a command run with an environment of its own (a test's) never
// picks up the config file of whoever runs it.
func DefaultConfigPath(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "skiff", "config")
	}
	home := getenv("HOME")
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".config", "skiff", "config")
}
