package main

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"skiff.dev/events"
	"skiff.dev/events/auth"
	"skiff.dev/events/client"
	"skiff.dev/events/natsconf"
)

// upAuth is skiff up's authentication, the same as a multi-machine cluster's (decentralized
// NATS auth, a creds file per part) on one server: the keys stay under DATA/auth, so a restart
// keeps every identity, and each part of skiff up connects as itself (admin for the bootstrap
// and the image import, scheduler, node:NAME), so the server enforces the same permissions as
// on many machines.
type upAuth struct {
	dir      string
	confPath string // the embedded server's nats.conf
	url      string
	creds    map[string]string // identity → creds file
	configs  map[string]string // identity → client config file
	user     string            // the CLI user's identity
}

// prepareUpAuth makes or loads the keys under dataDir/auth, writes the server's configuration and
// a creds file and client config for admin, the scheduler, node and the CLI user.
func prepareUpAuth(dataDir, listen, node string, getenv func(string) string) (*upAuth, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, events.Errorf(events.ErrInvalidArgument, "--listen %q: want HOST:PORT: %v", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return nil, events.Errorf(events.ErrInvalidArgument, "--listen %q: the port must be a number from 1 to 65535", listen)
	}
	u := &upAuth{dir: filepath.Join(dataDir, "auth"), creds: map[string]string{}, configs: map[string]string{},
		url: "nats://" + net.JoinHostPort(host, portText)}
	keys, err := auth.LoadKeys(u.dir)
	if errors.Is(err, events.ErrNotFound) {
		if keys, err = auth.NewKeys(); err == nil {
			err = keys.Save(u.dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("skiff up's keys in %s: %w", u.dir, err)
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
	u.confPath = filepath.Join(u.dir, "nats.conf")
	if err := auth.WriteFile(u.confPath, conf, 0o600); err != nil {
		return nil, err
	}

	u.user = upUserName(getenv)
	for _, who := range []struct {
		role auth.Role
		name string
	}{{auth.RoleAdmin, ""}, {auth.RoleScheduler, ""}, {auth.RoleNode, node}, {auth.RoleUser, u.user}} {
		id, err := auth.Identity(who.role, who.name)
		if err != nil {
			return nil, err
		}
		data, err := keys.UserCreds(who.role, who.name, 0)
		if err != nil {
			return nil, err
		}
		file := fileName(id)
		u.creds[id] = filepath.Join(u.dir, "creds", file+".creds")
		if err := os.MkdirAll(filepath.Dir(u.creds[id]), 0o700); err != nil {
			return nil, err
		}
		if err := auth.WriteFile(u.creds[id], data, 0o600); err != nil {
			return nil, err
		}
		u.configs[id] = filepath.Join(u.dir, "config", file+".yaml")
		if err := client.WriteConfig(u.configs[id], client.File{Server: u.url, Creds: filepath.Join("..", "creds", file+".creds")}); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// fileName is an identity as a file name: node:a → node-a.
func fileName(identity string) string {
	b := []byte(identity)
	for i, c := range b {
		if c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

// upUserName is the CLI user's identity: the login name when it is a valid one, else "user".
func upUserName(getenv func(string) string) string {
	name := getenv("USER")
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

// installClientConfig writes the CLI user's client config to path (the default one, unless
// --client-config says otherwise), so that plain `skiff` commands find the cluster. A config
// there that belongs to another cluster is left alone: it says so and how to use this one.
func (u *upAuth) installClientConfig(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	mine := u.configs[u.user]
	if f, err := client.ReadConfig(path); err == nil {
		if rel, err := filepath.Rel(u.dir, f.Creds); err != nil || !filepath.IsLocal(rel) {
			return "", fmt.Errorf("%s is the client config of another cluster (creds %s); left alone: use this one with --config %s or SKIFF_CONFIG=%s",
				path, cmp.Or(f.Creds, "none"), mine, mine)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w; left alone: use this cluster with --config %s", err, mine)
	}
	return path, client.WriteConfig(path, client.File{Server: u.url, Creds: u.creds[u.user]})
}
