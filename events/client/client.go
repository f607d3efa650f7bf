// Package client connects Skiff's programs to NATS the same way: one set of flags (--server,
// --creds, env SKIFF_SERVER), reconnecting forever, with errors that say what to check.
package client

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
)

// DefaultServer is where a single-machine cluster (skiff up) listens.
const DefaultServer = "nats://127.0.0.1:4222"

// Options says where the cluster's NATS is and how to authenticate.
type Options struct {
	// Server is one or more comma-separated NATS URLs; default $SKIFF_SERVER, then DefaultServer.
	Server string
	// Creds is a NATS credentials file (JWT + nkey seed), if the cluster needs one.
	Creds string
	// Name names the connection in the server's monitoring.
	Name string
}

// Flags registers --server and --creds on fs.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Server, "server", "", "NATS server URL(s), comma-separated (env SKIFF_SERVER, default "+DefaultServer+")")
	fs.StringVar(&o.Creds, "creds", "", "NATS credentials file")
}

// URL is the server URL to use after defaults.
func (o *Options) URL() string {
	if o.Server != "" {
		return o.Server
	}
	if env := os.Getenv("SKIFF_SERVER"); env != "" {
		return env
	}
	return DefaultServer
}

// Connect connects, failing fast if the server is not there now; once connected, the connection
// reconnects forever.
func Connect(o Options) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(5 * time.Second),
	}
	if o.Creds != "" {
		if _, err := os.Stat(o.Creds); err != nil {
			return nil, fmt.Errorf("credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	nc, err := nats.Connect(o.URL(), opts...)
	if err != nil {
		return nil, events.Errorf(events.ErrUnavailable, "connect to NATS at %s: %v (is the server running? set --server or SKIFF_SERVER)", o.URL(), err)
	}
	return nc, nil
}
