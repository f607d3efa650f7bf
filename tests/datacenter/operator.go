package datacenter

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events/client"
	"skiff.dev/tests/cluster"
	"skiff.dev/tests/nomad"
)

// natsPorts are the ports skiff cluster init writes into every nats.conf (its defaults).
const (
	natsClientPort  = 4222
	natsMonitorPort = 8222
)

// variables turns the files of `skiff cluster init` and `skiff node creds` in dir into the
// Nomad Variables README step 5 puts, item by item as `nomad var put path item=@file` would.
func variables(dir string, vms []*VM) (nomad.Variables, string, error) {
	var urls []string
	for _, vm := range vms {
		urls = append(urls, fmt.Sprintf("tls://%s:%d", vm.Address, natsClientPort))
	}
	servers := strings.Join(urls, ",")
	vars := nomad.Variables{}
	put := func(path string, items map[string]string) error {
		out := map[string]string{}
		for k, v := range items {
			if file, ok := strings.CutPrefix(v, "@"); ok {
				b, err := os.ReadFile(filepath.Join(dir, file))
				if err != nil {
					return fmt.Errorf("nomad var put %s %s=%s: %w", path, k, v, err)
				}
				v = string(b)
			}
			out[k] = v
		}
		vars[path] = out
		return nil
	}
	for _, vm := range vms {
		n := vm.Name
		if err := put("nomad/jobs/skiff-nats/"+n, map[string]string{
			"conf": "@servers/" + n + "/nats.conf", "cert": "@servers/" + n + "/server.pem",
			"key": "@servers/" + n + "/server-key.pem", "ca": "@servers/" + n + "/ca.pem",
		}); err != nil {
			return nil, "", err
		}
		if err := put("nomad/jobs/skiff-node/"+n, map[string]string{
			"server": servers, "creds": "@creds/node-" + n + ".creds", "ca": "@ca.pem",
		}); err != nil {
			return nil, "", err
		}
	}
	if err := put("nomad/jobs/skiff-bootstrap", map[string]string{"server": servers, "creds": "@creds/admin.creds", "ca": "@ca.pem"}); err != nil {
		return nil, "", err
	}
	if err := put("nomad/jobs/skiff-scheduler", map[string]string{"server": servers, "creds": "@creds/scheduler.creds", "ca": "@ca.pem"}); err != nil {
		return nil, "", err
	}
	return vars, servers, nil
}

// allocID is a new allocation ID, a UUID as Nomad makes them.
func allocID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// monitor GETs path from the NATS monitoring port of vm (https, verified with the cluster CA),
// with a socket made in the VM's network namespace, and decodes the JSON answer into v.
func monitor(ctx context.Context, vm *VM, ca, path string, v any) error {
	url := fmt.Sprintf("https://%s:%d%s", vm.Address, natsMonitorPort, path)
	if err := cluster.NATSMonitor(ctx, dialIn(vm, 2*time.Second), ca, url, v); err != nil {
		return fmt.Errorf("%s: %w", vm.Name, err)
	}
	return nil
}

// natsReady reports nil once every VM's server answers /healthz ok (JetStream current) and all
// name the same JetStream meta leader, which it returns.
func natsReady(ctx context.Context, vms []*VM, ca string) (string, error) {
	leader := ""
	for _, vm := range vms {
		var h struct {
			Status string `json:"status"`
		}
		if err := monitor(ctx, vm, ca, "/healthz", &h); err != nil {
			return "", err
		}
		var j struct {
			Meta *struct {
				Leader string `json:"leader"`
			} `json:"meta_cluster"`
		}
		if err := monitor(ctx, vm, ca, "/jsz", &j); err != nil {
			return "", err
		}
		if j.Meta == nil || j.Meta.Leader == "" {
			return "", fmt.Errorf("%s has no JetStream meta leader", vm.Name)
		}
		if leader != "" && j.Meta.Leader != leader {
			return "", fmt.Errorf("servers disagree on the meta leader: %s and %s", leader, j.Meta.Leader)
		}
		leader = j.Meta.Leader
	}
	return leader, nil
}

// dialIn dials from inside vm's network namespace.
func dialIn(vm *VM, timeout time.Duration) func(ctx context.Context, network, address string) (net.Conn, error) {
	d := netnsDialer(vm, timeout)
	return func(_ context.Context, network, address string) (net.Conn, error) { return d.Dial(network, address) }
}

// connect connects to the NATS cluster from vm's namespace with a creds file, as identity.
func connect(vm *VM, servers, creds, ca, identity string) (*nats.Conn, error) {
	return nats.Connect(servers,
		nats.UserCredentials(creds), nats.RootCAs(ca),
		nats.SetCustomDialer(netnsDialer(vm, 5*time.Second)),
		nats.CustomInboxPrefix("_INBOX."+identity),
		nats.Name("datacenter-test"),
		nats.MaxReconnects(-1),
		// As every Skiff client (events/client): a server cut off by a partition is left
		// within 20 s, not nats.go's default minutes.
		nats.PingInterval(client.PingInterval),
		nats.MaxPingsOutstanding(client.MaxPingsOut),
	)
}

func netnsDialer(vm *VM, timeout time.Duration) nats.CustomDialer {
	return cluster.NetnsDialer(vm.Netns, timeout)
}
