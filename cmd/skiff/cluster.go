package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/auth"
	"skiff.dev/events/client"
	"skiff.dev/events/natsconf"
	"skiff.dev/events/pki"
)

func init() { clusterCommands = append(clusterCommands, newClusterInitCmd) }

// The layout of a cluster directory below the files package auth owns (keys/, accounts/,
// operator.jwt).
const (
	caFile       = "ca.pem"
	caKeyFile    = "ca-key.pem"
	serversDir   = "servers"
	credsDir     = "creds"
	configDir    = "config"
	sysCredsFile = "creds/sys.creds"
)

type clusterInitOptions struct {
	dir                   string
	servers               []string
	clusterPort           int
	monitorPort           int
	storeDir, resolverDir string
	// tlsPath is the directory nats.conf names its TLS files in.
	tlsPath         string
	clusterName     string
	tlsCA, tlsCAKey string
	// tlsCerts holds the operator's own server certificates, NAME.pem and NAME-key.pem.
	tlsCerts string
	force    bool
}

func newClusterInitCmd(a *app) *cobra.Command {
	var o clusterInitOptions
	initCmd := &cobra.Command{
		Use:   "init --dir DIR --server NAME=HOST[:PORT]...",
		Short: "Make the keys, certificates, server configurations and credentials of a new cluster",
		Long: "init writes into DIR everything a multi-machine cluster needs: the operator, account and system\n" +
			"keys (keep keys/ offline), a cluster CA (unless --tls-ca/--tls-ca-key name yours), for each server\n" +
			"a directory servers/NAME to copy to its machine (nats.conf, certificate, key, CA), and the\n" +
			"credentials and client configurations of the admin and the scheduler.",
		Example: "  skiff cluster init --dir ./prod --server n1=10.0.0.1 --server n2=10.0.0.2 --server n3=10.0.0.3",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.clusterInit(cmd, o)
		},
	}
	f := initCmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory to write the cluster's files into (required)")
	f.StringArrayVar(&o.servers, "server", nil, "a server of the cluster as NAME=HOST[:PORT] (client port, default 4222); repeat for each")
	f.IntVar(&o.clusterPort, "cluster-port", natsconf.DefaultClusterPort, "port of the routes between servers")
	f.IntVar(&o.monitorPort, "monitor-port", natsconf.DefaultMonitorPort, "port of the https monitoring endpoint")
	f.StringVar(&o.storeDir, "store-dir", "/var/lib/nats", "JetStream's directory on each server (nats-server adds jetstream/ below it)")
	f.StringVar(&o.tlsPath, "tls-path", "", "directory each nats.conf names server.pem, server-key.pem and ca.pem in, as nats-server resolves it from its working directory (default: none, run nats-server from servers/NAME; \"secrets\" under Nomad)")
	f.StringVar(&o.resolverDir, "resolver-dir", "/var/lib/nats/jwt", "the account resolver's directory on each server")
	f.StringVar(&o.clusterName, "cluster-name", "skiff", "name of the NATS cluster")
	f.StringVar(&o.tlsCA, "tls-ca", "", "your CA certificate (PEM), instead of a new cluster CA")
	f.StringVar(&o.tlsCAKey, "tls-ca-key", "", "the private key of --tls-ca (PEM); it is not copied into DIR")
	f.StringVar(&o.tlsCerts, "tls-certs", "", "a directory of your own server certificates, NAME.pem and NAME-key.pem per server, signed by --tls-ca (then no --tls-ca-key)")
	f.BoolVar(&o.force, "force", false, "replace the keys of an existing cluster directory (every credential made from them stops working)")
	return initCmd
}

// parseServers reads NAME=HOST[:PORT] flags.
func parseServers(flags []string, clusterPort, monitorPort int) ([]natsconf.Server, error) {
	var out []natsconf.Server
	seen := map[string]bool{}
	for _, f := range flags {
		name, hostport, ok := strings.Cut(f, "=")
		if !ok || name == "" || hostport == "" {
			return nil, fmt.Errorf("--server %q: want NAME=HOST[:PORT]", f)
		}
		if err := auth.CheckName(name); err != nil {
			return nil, fmt.Errorf("--server %q: invalid server name %q: %v", f, name, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("--server %q: server %q is given twice", f, name)
		}
		seen[name] = true
		host, port := hostport, natsconf.DefaultPort
		if h, p, err := net.SplitHostPort(hostport); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("--server %q: port %q is not a number from 1 to 65535", f, p)
			}
			host, port = h, n
		} else if strings.Count(hostport, ":") == 1 {
			return nil, fmt.Errorf("--server %q: want NAME=HOST[:PORT]: %v", f, err)
		}
		host = strings.Trim(host, "[]")
		if host == "" || strings.ContainsAny(host, " /=,") {
			return nil, fmt.Errorf("--server %q: %q is not a host name or IP address", f, host)
		}
		out = append(out, natsconf.Server{Name: name, Host: host, Port: port, ClusterPort: clusterPort, MonitorPort: monitorPort})
	}
	if len(out) == 0 {
		return nil, errors.New("no --server given: name each server as NAME=HOST[:PORT]")
	}
	return out, nil
}

func (a *app) clusterInit(cmd *cobra.Command, o clusterInitOptions) error {
	if o.dir == "" {
		return usage(cmd, "--dir is required: the directory to write the cluster's files into")
	}
	servers, err := parseServers(o.servers, o.clusterPort, o.monitorPort)
	if err != nil {
		return usage(cmd, "%v", err)
	}
	switch {
	case o.tlsCerts != "" && o.tlsCA == "":
		return usage(cmd, "--tls-certs needs --tls-ca, the CA that signed them")
	case o.tlsCerts != "" && o.tlsCAKey != "":
		return usage(cmd, "--tls-certs and --tls-ca-key exclude each other: init either uses your certificates or issues them")
	case o.tlsCerts == "" && (o.tlsCA == "") != (o.tlsCAKey == ""):
		return usage(cmd, "--tls-ca and --tls-ca-key go together (or --tls-ca with --tls-certs)")
	}
	if _, err := os.Stat(filepath.Join(o.dir, auth.AccountSeedFile)); err == nil && !o.force {
		return errorf(events.ErrAlreadyExists, "%s already holds a cluster's keys (%s): use another --dir, or --force to replace them (every credential made from them stops working)",
			o.dir, auth.AccountSeedFile)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var written []string
	rel := func(path string) string {
		written = append(written, path)
		return filepath.Join(o.dir, path)
	}

	// The CA first: a bad --tls-ca must not leave half a directory.
	var ca *pki.CA
	var own map[string]*pki.Cert
	switch {
	case o.tlsCerts != "":
		if ca, err = pki.ReadCACert(o.tlsCA); err != nil {
			return err
		}
		if own, err = ownCerts(ca, o.tlsCerts, servers, a.Now()); err != nil {
			return err
		}
	case o.tlsCA != "":
		if ca, err = pki.LoadCA(o.tlsCA, o.tlsCAKey); err != nil {
			return err
		}
	default:
		if ca, err = pki.NewCA(o.clusterName+" cluster CA", a.Now()); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	keyFile := ""
	if ca.KeyPEM != nil {
		keyFile = rel(caKeyFile)
	}
	if err := ca.Save(rel(caFile), keyFile); err != nil {
		return err
	}

	keys, err := auth.NewKeys()
	if err != nil {
		return err
	}
	keys.Now = a.Now
	if err := keys.Save(o.dir); err != nil {
		return err
	}
	written = append(written, auth.OperatorSeedFile, auth.AccountSeedFile, auth.SystemSeedFile, auth.AccountJWTFile, auth.SystemAccountFile, auth.OperatorJWTFile)
	cfg, err := clusterConfig(keys, servers, o)
	if err != nil {
		return err
	}
	for _, s := range servers {
		dir := filepath.Join(serversDir, s.Name)
		cert := own[s.Name]
		if cert == nil {
			if cert, err = ca.ServerCert(s.Name, []string{s.Host}, a.Now()); err != nil {
				return err
			}
		}
		if err := cert.Save(rel(filepath.Join(dir, "server.pem")), rel(filepath.Join(dir, "server-key.pem"))); err != nil {
			return err
		}
		if err := os.WriteFile(rel(filepath.Join(dir, caFile)), ca.CertPEM, 0o644); err != nil {
			return err
		}
		conf, err := natsconf.Render(cfg, s.Name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(rel(filepath.Join(dir, "nats.conf")), conf, 0o644); err != nil {
			return err
		}
	}
	sys, err := keys.SystemCreds()
	if err != nil {
		return err
	}
	if err := writeSecret(rel(sysCredsFile), sys); err != nil {
		return err
	}
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL(true)
	}
	for _, r := range []auth.Role{auth.RoleAdmin, auth.RoleScheduler} {
		creds, err := keys.UserCreds(r, "", 0)
		if err != nil {
			return err
		}
		credsPath, configPath := credsFiles(string(r))
		if err := writeSecret(rel(credsPath), creds); err != nil {
			return err
		}
		if err := writeClientConfig(rel(configPath), strings.Join(urls, ","), filepath.Join(o.dir, credsPath), filepath.Join(o.dir, caFile)); err != nil {
			return err
		}
	}

	fmt.Fprintf(a.Stdout, "wrote cluster %s into %s:\n", o.clusterName, o.dir)
	for _, w := range written {
		fmt.Fprintf(a.Stdout, "  %s\n", w)
	}
	fmt.Fprintf(a.Stdout, "\nnext steps:\n")
	fmt.Fprintf(a.Stdout, "  1. keep %s offline; servers need none of it\n", filepath.Join(o.dir, "keys"))
	fmt.Fprintf(a.Stdout, "  2. copy %s to each server's machine and run, from that directory: nats-server -c nats.conf\n", filepath.Join(o.dir, serversDir, "NAME"))
	fmt.Fprintf(a.Stdout, "  3. create the log once: SKIFF_CONFIG=%s skiff cluster bootstrap --replicas %d\n",
		filepath.Join(o.dir, configDir, "admin.yaml"), min(3, len(servers)))
	fmt.Fprintf(a.Stdout, "  4. credentials for each node: skiff node creds NODE --dir %s; for each person: skiff user creds NAME --dir %s\n", o.dir, o.dir)
	return nil
}

// clusterConfig is the servers' shared configuration; paths of the server's own files are
// relative to its directory, so servers/NAME can be copied to its machine as is.
func clusterConfig(keys *auth.Keys, servers []natsconf.Server, o clusterInitOptions) (natsconf.Config, error) {
	op, err := keys.OperatorJWT()
	if err != nil {
		return natsconf.Config{}, err
	}
	acc, err := keys.AccountJWT()
	if err != nil {
		return natsconf.Config{}, err
	}
	sys, err := keys.SystemAccountJWT()
	if err != nil {
		return natsconf.Config{}, err
	}
	accPub, _ := keys.Account.PublicKey()
	sysPub, _ := keys.System.PublicKey()
	return natsconf.Config{
		ClusterName: o.clusterName,
		Servers:     servers,
		TLS:         &natsconf.TLS{Cert: filepath.Join(o.tlsPath, "server.pem"), Key: filepath.Join(o.tlsPath, "server-key.pem"), CA: filepath.Join(o.tlsPath, caFile)},
		StoreDir:    o.storeDir, ResolverDir: o.resolverDir,
		Operator: op, SystemAccount: sysPub,
		Accounts: []natsconf.Account{
			{Name: auth.SystemAccountName, PublicKey: sysPub, JWT: sys},
			{Name: auth.AccountName, PublicKey: accPub, JWT: acc},
		},
	}, nil
}

// credsFiles are the creds and client config files of an identity's file name stem
// (admin, scheduler, node-X, user-U), relative to a cluster directory.
func credsFiles(stem string) (creds, config string) {
	return filepath.Join(credsDir, stem+".creds"), filepath.Join(configDir, stem+".yaml")
}

func writeSecret(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return auth.WriteFile(path, data, 0o600)
}

// writeClientConfig writes a client configuration at path whose creds and CA paths are relative
// to the file's directory, so the directory holding all three can move.
func writeClientConfig(path, server, creds, ca string) error {
	relTo := func(p string) string {
		if p == "" {
			return ""
		}
		absDir, err1 := filepath.Abs(filepath.Dir(path))
		absP, err2 := filepath.Abs(p)
		if err1 != nil || err2 != nil {
			return p
		}
		if r, err := filepath.Rel(absDir, absP); err == nil {
			return r
		}
		return absP
	}
	return client.WriteConfig(path, client.File{Server: server, Creds: relTo(creds), CA: relTo(ca)})
}

// ownCerts reads the operator's certificate of every server from dir (NAME.pem, NAME-key.pem)
// and checks that each is signed by ca, valid now, usable by a server and a route peer, and names
// its host: a mistake shows here, not as a TLS failure between machines.
func ownCerts(ca *pki.CA, dir string, servers []natsconf.Server, now time.Time) (map[string]*pki.Cert, error) {
	out := map[string]*pki.Cert{}
	for _, s := range servers {
		certFile, keyFile := filepath.Join(dir, s.Name+".pem"), filepath.Join(dir, s.Name+"-key.pem")
		c, err := pki.ReadServerCert(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", s.Name, err)
		}
		if err := c.Verify(ca, s.Host, now); err != nil {
			return nil, errorf(events.ErrInvalidArgument, "server %s: %s: %v", s.Name, certFile, err)
		}
		out[s.Name] = c
	}
	return out, nil
}
