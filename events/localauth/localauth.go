// Package localauth is the authentication of a one-server cluster (skiff up, and the test
// harness's server): the same decentralized NATS auth as a multi-machine cluster's, with the
// same files as `skiff cluster init` writes (keys/, accounts/, creds/, config/), under one
// directory. The keys stay there, so a restart keeps every identity; each part connects as
// itself (admin for the bootstrap and the image import, scheduler, node:NAME, a CLI user), so the
// server enforces the same permissions as on many machines.
//
// TLS is on when the server listens beyond loopback (Options.TLS): a CA of its own under the
// directory (kept across restarts, so clients elsewhere keep trusting it) signs a server
// certificate for every address of the machine, issued again at each start.
package localauth

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/auth"
	"skiff.dev/events/client"
	"skiff.dev/events/natsconf"
	"skiff.dev/events/pki"
)

// Setup is a one-server cluster's authentication, ready to use.
type Setup struct {
	// Dir holds the keys, creds and configs (DATA/auth).
	Dir string
	// ConfPath is the server's nats.conf (natsserver.Config.ConfigFile).
	ConfPath string
	// URL is the server's client URL.
	URL string
	// Creds and Configs map an identity ("admin", "scheduler", "node:NAME", the user's name) to
	// its creds file and client config.
	Creds, Configs map[string]string
	// User is the CLI user's identity.
	User string
	// CA is the CA file clients verify the server with; "" without TLS.
	CA string
}

// TLSMode says when the server uses TLS.
type TLSMode int

const (
	// TLSAuto is on when the listen address is not a loopback one.
	TLSAuto TLSMode = iota
	TLSOn
	TLSOff
)

// Prepare makes or loads the keys under dataDir/auth, writes the server's configuration (JetStream
// under dataDir/nats) and a creds file and client config for admin, the scheduler, each node and
// the CLI user (UserName).
func Prepare(dataDir, listen string, nodes []string, user string, mode TLSMode) (*Setup, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, events.Errorf(events.ErrInvalidArgument, "--listen %q: want HOST:PORT: %v", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return nil, events.Errorf(events.ErrInvalidArgument, "--listen %q: the port must be a number from 1 to 65535", listen)
	}
	u := &Setup{Dir: filepath.Join(dataDir, "auth"), Creds: map[string]string{}, Configs: map[string]string{},
		URL: "nats://" + net.JoinHostPort(host, portText), User: user}
	var tlsFiles *natsconf.TLS
	if mode == TLSOn || mode == TLSAuto && !isLoopback(host) {
		if tlsFiles, err = u.serverTLS(host); err != nil {
			return nil, err
		}
		// Local clients reach an any-address server on loopback, which the certificate names.
		local := host
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			local = "127.0.0.1"
		}
		u.URL = "tls://" + net.JoinHostPort(local, portText)
		u.CA = tlsFiles.CA
	}
	keys, err := auth.LoadKeys(u.Dir)
	if errors.Is(err, events.ErrNotFound) {
		if keys, err = auth.NewKeys(); err == nil {
			err = keys.Save(u.Dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keys in %s: %w", u.Dir, err)
	}
	opJWT, err := keys.OperatorJWT()
	if err != nil {
		return nil, err
	}
	accJWT, err := keys.AccountJWT()
	if err != nil {
		return nil, err
	}
	sysJWT, err := keys.SystemAccountJWT()
	if err != nil {
		return nil, err
	}
	sysPub, _ := keys.System.PublicKey()
	accPub, _ := keys.Account.PublicKey()
	conf, err := natsconf.Render(natsconf.Config{
		Servers:       []natsconf.Server{{Name: "skiff", Host: host, Port: port, MonitorPort: -1}},
		TLS:           tlsFiles,
		StoreDir:      filepath.Join(dataDir, "nats"),
		ResolverDir:   filepath.Join(dataDir, "nats", "jwt"),
		Operator:      opJWT,
		SystemAccount: sysPub,
		Accounts: []natsconf.Account{
			{Name: auth.SystemAccountName, PublicKey: sysPub, JWT: sysJWT},
			{Name: auth.AccountName, PublicKey: accPub, JWT: accJWT},
		},
	}, "skiff")
	if err != nil {
		return nil, err
	}
	u.ConfPath = filepath.Join(u.Dir, "nats.conf")
	if err := auth.WriteFile(u.ConfPath, conf, 0o600); err != nil {
		return nil, err
	}

	type who struct {
		role auth.Role
		name string
	}
	all := []who{{auth.RoleAdmin, ""}, {auth.RoleScheduler, ""}, {auth.RoleUser, user}}
	for _, n := range nodes {
		all = append(all, who{auth.RoleNode, n})
	}
	for _, w := range all {
		id, err := auth.Identity(w.role, w.name)
		if err != nil {
			return nil, err
		}
		data, err := keys.UserCreds(w.role, w.name, 0)
		if err != nil {
			return nil, err
		}
		// The names `skiff cluster init` and `skiff node creds` use: admin, node-NAME, user-NAME.
		stem := string(w.role)
		if w.name != "" {
			stem += "-" + w.name
		}
		u.Creds[id] = filepath.Join(u.Dir, "creds", stem+".creds")
		if err := os.MkdirAll(filepath.Dir(u.Creds[id]), 0o700); err != nil {
			return nil, err
		}
		if err := auth.WriteFile(u.Creds[id], data, 0o600); err != nil {
			return nil, err
		}
		u.Configs[id] = filepath.Join(u.Dir, "config", stem+".yaml")
		if err := client.WriteConfig(u.Configs[id], client.File{Server: u.URL, Creds: filepath.Join("..", "creds", stem+".creds"), CA: u.relCA()}); err != nil {
			return nil, err
		}
	}
	// The CLI user's config under a name that does not depend on the user's: scripts use it.
	if err := client.WriteConfig(filepath.Join(u.Dir, "config", "user.yaml"), client.File{Server: u.URL, Creds: filepath.Join("..", "creds", "user-"+user+".creds"), CA: u.relCA()}); err != nil {
		return nil, err
	}
	return u, nil
}

// UserName is a CLI user's identity: name (the login name) when it is a valid one, else "user".
func UserName(name string) string {
	if name == "" {
		if cur, err := user.Current(); err == nil {
			name = cur.Username
		}
	}
	if _, err := auth.Identity(auth.RoleUser, name); err != nil {
		return "user"
	}
	return name
}

// InstallClientConfig writes the CLI user's client config to path, so that plain `skiff`
// commands find the cluster, and returns path. A config there that belongs to another cluster is
// left alone: the error says so and how to use this one.
func (u *Setup) InstallClientConfig(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	mine := u.Configs[u.User]
	if f, err := client.ReadConfig(path); err == nil {
		if rel, err := filepath.Rel(u.Dir, f.Creds); err != nil || !filepath.IsLocal(rel) {
			return "", fmt.Errorf("%s is the client config of another cluster (creds %s); left alone: use this one with --config %s or SKIFF_CONFIG=%s",
				path, cmp.Or(f.Creds, "none"), mine, mine)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w; left alone: use this cluster with --config %s", err, mine)
	}
	return path, client.WriteConfig(path, client.File{Server: u.URL, Creds: u.Creds[u.User], CA: u.CA})
}

// relCA is the CA as a client config under Dir/config names it.
func (u *Setup) relCA() string {
	if u.CA == "" {
		return ""
	}
	return filepath.Join("..", filepath.Base(u.CA))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverTLS makes (or loads) the CA under Dir and issues the server's certificate for host, or,
// when host is an any-address, for every address of the machine and its host name.
func (u *Setup) serverTLS(host string) (*natsconf.TLS, error) {
	caFile, caKey := filepath.Join(u.Dir, "ca.pem"), filepath.Join(u.Dir, "ca-key.pem")
	ca, err := pki.LoadCA(caFile, caKey)
	if err != nil {
		if _, statErr := os.Stat(caFile); !errors.Is(statErr, os.ErrNotExist) {
			return nil, fmt.Errorf("the CA in %s: %w", u.Dir, err)
		}
		if ca, err = pki.NewCA("Skiff (skiff up) CA", time.Now()); err != nil {
			return nil, err
		}
		if err := ca.Save(caFile, caKey); err != nil {
			return nil, err
		}
	}
	hosts := []string{host}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		hosts = nil
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				hosts = append(hosts, n.IP.String())
			}
		}
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	cert, err := ca.ServerCert("skiff", hosts, time.Now())
	if err != nil {
		return nil, err
	}
	t := &natsconf.TLS{Cert: filepath.Join(u.Dir, "server.pem"), Key: filepath.Join(u.Dir, "server-key.pem"), CA: caFile}
	if err := cert.Save(t.Cert, t.Key); err != nil {
		return nil, err
	}
	return t, nil
}
