package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"skiff.dev/events/bootstrap"
	"skiff.dev/events/client"
	"skiff.dev/events/images"
	"skiff.dev/events/localauth"
	"skiff.dev/events/metrics"
	"skiff.dev/events/natsserver"
	snapshots "skiff.dev/events/snapshot"
	"skiff.dev/services/netproxy"
	"skiff.dev/services/nodeagent"
	"skiff.dev/services/nodeagent/containerd"
	schedsvc "skiff.dev/services/scheduler"
)

func init() { register(newUpCommand) }

// upOptions are `skiff up`'s flags.
type upOptions struct {
	dataDir    string
	listen     string
	logLevel   string
	containerd string
	ociRuntime string
	sandbox    string
	nodeName   string
	imagesDir  string
	noNode     bool
	leaderTTL  time.Duration
	maxBytes   int64
	// clientConfig is where the CLI user's client config is written ("" for nowhere).
	clientConfig string
	// tls is auto (on beyond loopback), on or off.
	tls string
	// metricsAddr serves every part's metrics on one endpoint ("" for none).
	metricsAddr string
	// jaeger runs Jaeger all-in-one (jaegerBin, default bin/jaeger) and points every part's
	// traces at it.
	jaeger    bool
	jaegerBin string
	// snapshots: when the scheduler's leader writes snapshots of the fold.
	snapshotWriter snapshots.WriterConfig
}

func newUpCommand(a *app) *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole single-machine cluster in the foreground",
		Long: "up runs, in one process, an embedded NATS server with JetStream stored under --data-dir, the\n" +
			"scheduler, and this machine's node agent and net proxy. Each part has its own NATS connection, so\n" +
			"they talk only through the log, as on a multi-machine cluster. Stop it with Ctrl-C; starting it\n" +
			"again on the same data dir recovers everything from the log.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.up(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", ".data", "directory for the log and the node's state")
	f.StringVar(&o.listen, "listen", "127.0.0.1:4222", "HOST:PORT the embedded NATS server listens on")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.containerd, "containerd-address", "/run/containerd/containerd.sock", "containerd socket; if none answers there, skiff up runs its own under --data-dir")
	f.StringVar(&o.sandbox, "sandbox", "", `what holds a pod's namespaces: "pinned" (the namespaces pinned as files, no container; default where containerd sees the pins, else pause) or "pause" (a pause container)`)
	f.StringVar(&o.ociRuntime, "oci-runtime", "", "what containers run with: crun or runc (default: crun if it works under the node's containerd, else runc)")
	f.StringVar(&o.nodeName, "node-name", "", "this machine's node name (default: the host name)")
	f.StringVar(&o.imagesDir, "images-dir", "", "image tarballs to import into the cluster if missing (default: images/ next to the skiff binary)")
	f.BoolVar(&o.noNode, "control-plane-only", false, "run NATS and the scheduler only, no node agent or net proxy")
	f.StringVar(&o.clientConfig, "client-config", client.DefaultConfigPath(a.Getenv), "write the CLI's client config (servers, creds) here, unless another cluster's is there; \"\" for nowhere")
	f.StringVar(&o.tls, "tls", "auto", "TLS on the NATS port: auto (on unless --listen is a loopback address), on or off")
	f.DurationVar(&o.leaderTTL, "leader-ttl", bootstrap.DefaultLeaderTTL, "how long a dead scheduler keeps leadership (the leader bucket's TTL)")
	// skiff up is this machine's bootstrap step and runs it at every start, so the limit lives
	// here too: without the flag a restart lifts a limit set by skiff cluster bootstrap.
	f.StringVar(&o.metricsAddr, "metrics-addr", "", metrics.FlagUsage+"; one endpoint for every part")
	f.BoolVar(&o.jaeger, "jaeger", false, "also run Jaeger all-in-one (traces in memory; UI and query API on http://"+jaegerUI+", OTLP on "+jaegerOTLPGRPC+" and "+jaegerOTLPHTTP+") and send every part's traces there")
	f.StringVar(&o.jaegerBin, "jaeger-bin", "", "the Jaeger binary for --jaeger (default: jaeger next to skiff, as `make jaeger` builds it, else on PATH)")
	snapshotFlags := flag.NewFlagSet("snapshots", flag.ContinueOnError)
	snapshots.Flags(snapshotFlags, &o.snapshotWriter)
	f.AddGoFlagSet(snapshotFlags)
	f.Var((*byteSize)(&o.maxBytes), "max-bytes", "the log's size limit (64Mi, 10Gi): once reached, every write fails until it is raised; nothing is ever dropped (0: no limit)")
	return cmd
}

func (a *app) up(ctx context.Context, o upOptions) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: level}))
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if o.jaeger {
		j, err := startJaeger(ctx, o.jaegerBin, filepath.Join(dataDir, "jaeger"), log.With("part", "jaeger"))
		if err != nil {
			return err
		}
		// Last: the parts flush their spans as they stop.
		defer j.stop()
		// Before any part starts: each reads the standard variables when it sets up tracing.
		for _, kv := range jaegerEnv {
			if err := os.Setenv(kv[0], kv[1]); err != nil {
				return fmt.Errorf("--jaeger: %w", err)
			}
		}
	}
	var reg prometheus.Registerer // nil: no metrics
	metricsURL := ""
	if o.metricsAddr != "" {
		r := metrics.NewRegistry()
		srv, err := metrics.Start(ctx, o.metricsAddr, r, log.With("part", "metrics"))
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		reg, metricsURL = r, "http://"+srv.Addr().String()+metrics.Path
	}
	nodeName := o.nodeName
	if nodeName == "" {
		nodeName = nodeagent.DefaultNodeName()
	}
	var tlsMode localauth.TLSMode
	switch o.tls {
	case "auto":
		tlsMode = localauth.TLSAuto
	case "on":
		tlsMode = localauth.TLSOn
	case "off":
		tlsMode = localauth.TLSOff
	default:
		return fmt.Errorf("--tls %q: want auto, on or off", o.tls)
	}
	ua, err := localauth.Prepare(dataDir, o.listen, []string{nodeName}, localauth.UserName(a.Getenv("USER")), tlsMode)
	if err != nil {
		return err
	}
	srv, err := natsserver.Start(natsserver.Config{ConfigFile: ua.ConfPath, Logger: log.With("part", "nats"),
		// One machine: a write is on disk within the server's sync interval (the default, not
		// "always" as on a cluster, whose servers replicate each other): skiff up trades the
		// last moments before a power cut for its speed.
		Tune: func(so *server.Options) { so.SyncAlways, so.SyncInterval = false, 0 }})
	if err != nil {
		return fmt.Errorf("start NATS on %s: %w (is another skiff up running? choose another --listen)", o.listen, err)
	}
	defer srv.Stop()
	connect := func(id, name string) (*nats.Conn, error) {
		return client.Connect(client.Options{Server: ua.URL, Creds: ua.Creds[id], CA: ua.CA, Name: "skiff-up/" + name,
			OnRefused: func(err error) { log.Error("the server refused an action", "part", name, "err", err) }})
	}
	if err := bootstrapLog(ctx, connect, o, log); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	// start runs one part with its own connection until ctx ends.
	start := func(name, id string, run func(context.Context, *nats.Conn) error) error {
		nc, err := connect(id, name)
		if err != nil {
			return fmt.Errorf("%s: connect: %w", name, err)
		}
		if reg != nil {
			if err := metrics.RegisterConn(reg, nc, "skiff-up/"+name); err != nil {
				nc.Close()
				return err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			if err := run(ctx, nc); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
		return nil
	}
	if err := start("scheduler", "scheduler", func(ctx context.Context, nc *nats.Conn) error {
		return schedsvc.Run(ctx, schedsvc.Config{Conn: nc, ID: "up", Logger: log.With("part", "scheduler"), Metrics: reg, Snapshots: o.snapshotWriter})
	}); err != nil {
		return err
	}
	o.nodeName = nodeName
	stopNode, err := a.startNode(ctx, o, start, connect, dataDir, reg, log)
	// The node's own containerd, if it started one, stops after the agent.
	defer stopNode()
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	fmt.Fprintf(a.Stdout, "Skiff is up: NATS at %s, data in %s\n", ua.URL, dataDir)
	if ua.CA != "" {
		fmt.Fprintf(a.Stdout, "TLS: clients on other machines verify the server with %s (--tls-ca)\n", ua.CA)
	}
	if metricsURL != "" {
		fmt.Fprintf(a.Stdout, "Metrics: %s\n", metricsURL)
	}
	if o.jaeger {
		fmt.Fprintf(a.Stdout, "Jaeger: http://%s (traces of every part, in memory until skiff up stops)\n", jaegerUI)
	}
	fmt.Fprintf(a.Stdout, "Credentials: %s (you are %s; admin.creds may bootstrap the log)\n", filepath.Dir(ua.Creds[ua.User]), ua.User)
	if path, err := ua.InstallClientConfig(o.clientConfig); err != nil {
		fmt.Fprintf(a.Stdout, "Client config: %v\n", err)
	} else if path != "" {
		fmt.Fprintf(a.Stdout, "Client config: %s (the CLI reads it; elsewhere use --config or SKIFF_CONFIG=%s)\n", path, ua.Configs[ua.User])
		fmt.Fprintln(a.Stdout, "Try: skiff get nodes")
	} else {
		fmt.Fprintf(a.Stdout, "Try: skiff --config %s get nodes\n", ua.Configs[ua.User])
	}

	<-ctx.Done()
	fmt.Fprintln(a.Stdout, "Skiff is stopping")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		log.Warn("parts did not stop within 30s; stopping NATS anyway")
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}

// startNode starts this machine's node agent (with its own containerd if none runs) and net
// proxy, and imports the project's images into the cluster's image store.
func (a *app) startNode(ctx context.Context, o upOptions, start func(string, string, func(context.Context, *nats.Conn) error) error,
	connect func(id, name string) (*nats.Conn, error), dataDir string, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	stop = func() {}
	// The bootstrap made the image store before any part started, so a failure here is real.
	if err := importImages(ctx, connect, o.imagesDir, log); err != nil {
		log.Warn("could not import the project's images; import them with skiff image import", "err", err)
	}
	if o.noNode {
		return stop, nil
	}
	if os.Geteuid() != 0 {
		return stop, fmt.Errorf("the node agent needs root (containerd, CNI, nftables): run skiff up as root, or with --control-plane-only")
	}
	address := o.containerd
	if !containerd.Answers(address) {
		d, err := containerd.Start(ctx, filepath.Join(dataDir, "containerd"), log.With("part", "containerd"),
			nodeagent.DefaultPinDir(o.nodeName))
		if err != nil {
			return stop, fmt.Errorf("no containerd answers at %s and starting one failed: %w", o.containerd, err)
		}
		stop = d.Stop
		address = d.Address
	}
	nodeID := "node:" + o.nodeName
	if err := start("netproxy", nodeID, func(ctx context.Context, nc *nats.Conn) error {
		return netproxy.Run(ctx, netproxy.Config{Conn: nc, Node: o.nodeName, Logger: log.With("part", "netproxy"), Metrics: reg})
	}); err != nil {
		return stop, err
	}
	return stop, start("nodeagent", nodeID, func(ctx context.Context, nc *nats.Conn) error {
		return nodeagent.Run(ctx, nodeagent.Config{
			Conn: nc, Node: o.nodeName, Identity: nodeID, ContainerdAddress: address, OCIRuntime: o.ociRuntime, Sandbox: o.sandbox,
			StateDir: filepath.Join(dataDir, "node"), LogDir: filepath.Join(dataDir, "logs"),
			Logger: log.With("part", "nodeagent"), Metrics: reg,
		})
	})
}

// importImages puts every image tarball of dir into the cluster's image store unless an image of
// that name is there already.
func importImages(ctx context.Context, connect func(id, name string) (*nats.Conn, error), dir string, log *slog.Logger) error {
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		dir = filepath.Join(filepath.Dir(exe), "images")
	}
	tars, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	if len(tars) == 0 {
		return nil
	}
	nc, err := connect("admin", "images")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	obs, err := images.OpenBucket(ctx, js)
	if err != nil {
		return err
	}
	for _, t := range tars {
		names, err := images.NamesInTarball(t)
		if err != nil {
			log.Warn("not an image tarball", "file", t, "err", err)
			continue
		}
		missing := false
		for _, n := range names {
			if _, err := obs.GetInfo(ctx, n); err != nil {
				missing = true
			}
		}
		if !missing {
			continue
		}
		if _, err := images.Put(ctx, obs, t); err != nil {
			return err
		}
		log.Info("imported image", "file", t, "images", names)
	}
	return nil
}

// bootstrapLog creates the stream and buckets, or brings them to this machine's settings: skiff
// up is the bootstrap step of a one-machine cluster.
func bootstrapLog(ctx context.Context, connect func(id, name string) (*nats.Conn, error), o upOptions, log *slog.Logger) error {
	nc, err := connect("admin", "bootstrap")
	if err != nil {
		return fmt.Errorf("bootstrap: connect: %w", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{Replicas: 1, LeaderTTL: o.leaderTTL, MaxBytes: o.maxBytes})
	if err != nil {
		return fmt.Errorf("bootstrap the log: %w", err)
	}
	for _, l := range res.Lines {
		log.Debug("bootstrap", "made", l)
	}
	return nil
}
