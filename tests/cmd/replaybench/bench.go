package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/bootstrap"
	"skiff.dev/events/natsserver"
	"skiff.dev/events/snapshot"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// generatorVersion changes when the workload does: a cached log of another version is
// written again.
const generatorVersion = 1

// built is what the cache directory says of its log.
type built struct {
	Version, Events, Pods, Nodes, Deployments int
	Head                                      uint64
	Took                                      time.Duration
}

func bench(ctx context.Context, o options) error {
	tails, err := parseList("tails", o.tails)
	if err != nil {
		return err
	}
	ats, err := parseList("at", o.at)
	if err != nil {
		return err
	}
	bin, err := binDir(o.bin)
	if err != nil {
		return err
	}
	skiff := filepath.Join(bin, "skiff")
	if _, err := os.Stat(skiff); err != nil {
		return fmt.Errorf("%w (run make build, or point -bin at the binaries)", err)
	}
	sh := shape{events: o.events, pods: o.pods, nodes: o.nodes, deployments: o.deploys}
	dir := filepath.Join(o.dir, fmt.Sprintf("v%d-e%d-p%d-n%d-d%d", generatorVersion, sh.events, sh.pods, sh.nodes, sh.deployments))
	fmt.Printf("replaybench: %d events, %d live pods of %d Deployments on %d nodes at the end; %d runs; log in %s\n",
		sh.events, sh.pods, sh.deployments, sh.nodes, o.runs, dir)
	fmt.Printf("machine: %d CPUs, %s/%s, %s; load average at start %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, memTotal(), loadavg())

	var b built
	if data, err := os.ReadFile(filepath.Join(dir, "built.json")); err == nil && !o.rebuild {
		err = json.Unmarshal(data, &b)
		if err != nil || b.Version != generatorVersion {
			return fmt.Errorf("%s/built.json: %v (remove the directory, or -rebuild)", dir, err)
		}
		fmt.Printf("log: built before, head %d (writing it took %s)\n", b.Head, b.Took.Round(time.Second))
	} else {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	srv, err := natsserver.Start(natsserver.Config{DataDir: filepath.Join(dir, "nats")})
	if err != nil {
		return err
	}
	defer srv.Stop()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	res, err := bootstrap.Run(ctx, nc, bootstrap.Config{})
	if err != nil {
		return err
	}
	st := res.Store
	if b.Head == 0 {
		start := time.Now()
		last := time.Now()
		n, err := sh.write(ctx, st, func(n int) {
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				fmt.Printf("  writing the log: %d events, %.0f/s\n", n, float64(n)/time.Since(start).Seconds())
			}
		})
		if err != nil {
			return err
		}
		b = built{Version: generatorVersion, Events: n, Pods: sh.pods, Nodes: sh.nodes, Deployments: sh.deployments, Took: time.Since(start)}
		if b.Head, err = st.Head(ctx); err != nil {
			return err
		}
		data, _ := json.Marshal(b)
		if err := os.WriteFile(filepath.Join(dir, "built.json"), data, 0o644); err != nil {
			return err
		}
		fmt.Printf("log: written, %d events in %s (%.0f/s)\n", n, b.Took.Round(time.Second), float64(n)/b.Took.Seconds())
	}
	if err := storage(ctx, st, dir, b.Head); err != nil {
		return err
	}

	switch o.only {
	case "startup":
		return startupOnly(ctx, o, st, srv.URL(), b.Head, tails)
	case "stream":
		var d time.Duration
		err := profiled(o.cpuProfile, func() (err error) {
			d, err = measure(o.runs, func() (time.Duration, error) {
				s := state.New()
				start := time.Now()
				err := st.Read(ctx, store.ReadOptions{OnPoison: func(subject string, seq uint64, _ error) { s.Skip(subject, seq) }},
					func(ev *events.Event) error { _ = s.Apply(ev); return nil })
				return time.Since(start), err
			})
			return err
		})
		fmt.Printf("replay from the stream: %s, %.0f events/s\n", d.Round(time.Millisecond), float64(b.Head)/d.Seconds())
		return err
	case "replay":
		raw, err := rawMessages(ctx, nc)
		if err != nil {
			return err
		}
		var mem time.Duration
		err = profiled(o.cpuProfile, func() (err error) {
			mem, err = measure(o.runs, func() (time.Duration, error) {
				start := time.Now()
				err := replayMemory(raw)
				return time.Since(start), err
			})
			return err
		})
		fmt.Printf("replay from memory: %s, %.0f events/s\n", mem.Round(time.Millisecond), float64(b.Head)/mem.Seconds())
		return err
	case "snapshot":
		// The fold from the newest snapshot in the bucket (quicker than a replay).
		l, err := snapshot.LoadFrom(ctx, st, api.SnapshotBucket, nil, 0, nil)
		if err != nil || l == nil {
			return fmt.Errorf("no snapshot to start from (run -only startup first): %v", err)
		}
		return profiled(o.cpuProfile, func() error { return snapshotCosts(o.runs, l.State) })
	}
	fmt.Printf("\n## Full replay from the stream (load %s)\n\n", loadavg())
	var fold *state.State
	full, err := measure(o.runs, func() (time.Duration, error) {
		s := state.New()
		start := time.Now()
		err := st.Read(ctx, store.ReadOptions{OnPoison: func(subject string, seq uint64, _ error) { s.Skip(subject, seq) }},
			func(ev *events.Event) error { _ = s.Apply(ev); return nil })
		fold = s
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	if len(fold.Pods) != sh.pods || fold.Seq != b.Head {
		return fmt.Errorf("the replay folded %d pods up to %d; the log should end with %d pods at %d", len(fold.Pods), fold.Seq, sh.pods, b.Head)
	}
	raw, err := rawMessages(ctx, nc)
	if err != nil {
		return err
	}
	mem, err := measure(o.runs, func() (time.Duration, error) {
		start := time.Now()
		err := replayMemory(raw)
		return time.Since(start), err
	})
	raw = nil
	if err != nil {
		return err
	}
	fmt.Println("| path | median | events/s |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| stream (store.Read, decode on every core, fold) | %s | %.0f |\n", full.Round(time.Millisecond), float64(b.Head)/full.Seconds())
	fmt.Printf("| memory, same messages (baseline) | %s | %.0f |\n", mem.Round(time.Millisecond), float64(b.Head)/mem.Seconds())

	fmt.Printf("\n## Snapshot of the fold at the head, %d pods (load %s)\n\n", len(fold.Pods), loadavg())
	if err := profiled(o.cpuProfile, func() error { return snapshotCosts(o.runs, fold) }); err != nil {
		return err
	}
	fold = nil
	runtime.GC()

	fmt.Printf("\n## Start-up of a fresh process to caught up (load %s)\n\n", loadavg())
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	full0, err := startups(ctx, o.runs, exe, srv.URL(), false)
	if err != nil {
		return err
	}
	fmt.Println("| start | snapshot at | events folded | state loaded | synced (median) | CPU | RSS synced | peak RSS | Go heap |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	printStartup("log from sequence 1 (baseline)", full0)
	id, err := snapshot.Identity(ctx, st)
	if err != nil {
		return err
	}
	bucket, err := snapshot.Open(ctx, st.JetStream(), api.SnapshotBucket)
	if err != nil {
		return err
	}
	for _, tail := range tails {
		if tail >= b.Head {
			continue
		}
		if err := putSnapshot(ctx, st, bucket, id, b.Head-tail); err != nil {
			return err
		}
		r, err := startups(ctx, o.runs, exe, srv.URL(), true)
		if err != nil {
			return err
		}
		printStartup(fmt.Sprintf("newest snapshot, %d events before the head", tail), r)
	}

	fmt.Printf("\n## The CLI: exec to exit, output discarded (load %s)\n\n", loadavg())
	fmt.Println("| command | median |")
	fmt.Println("|---|---|")
	for _, at := range ats {
		if at > b.Head {
			continue
		}
		args := []string{"get", "pods", "-A", "--at", strconv.FormatUint(at, 10)}
		d, err := measure(o.runs, func() (time.Duration, error) { return run(ctx, skiff, srv.URL(), args...) })
		if err != nil {
			return err
		}
		fmt.Printf("| skiff %s | %s |\n", strings.Join(args, " "), d.Round(time.Millisecond))
	}
	for _, args := range [][]string{{"events", "replay", "pods", "-o", "json"}, {"events", "replay", "pods", "-o", "json", "--from-snapshot"}} {
		d, err := measure(o.runs, func() (time.Duration, error) { return run(ctx, skiff, srv.URL(), args...) })
		if err != nil {
			return err
		}
		fmt.Printf("| skiff %s | %s |\n", strings.Join(args, " "), d.Round(time.Millisecond))
	}
	fmt.Printf("\nload average at the end %s\n", loadavg())
	return nil
}

// measure runs f n times and returns the median.
func measure(n int, f func() (time.Duration, error)) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		d, err := f()
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "? memory"
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "? memory"
	}
	kb, _ := strconv.ParseInt(f[1], 10, 64)
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

// storage prints the stream's size, as JetStream counts it and on disk.
func storage(ctx context.Context, st *store.Store, dir string, head uint64) error {
	s, err := st.JetStream().Stream(ctx, st.Name())
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	var disk int64
	_ = filepath.WalkDir(filepath.Join(dir, "nats"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(path, string(filepath.Separator)+"streams"+string(filepath.Separator)+st.Name()+string(filepath.Separator)) {
			if fi, err := d.Info(); err == nil {
				disk += fi.Size()
			}
		}
		return nil
	})
	n := float64(head)
	fmt.Printf("\n## Storage\n\n")
	fmt.Println("| | bytes | per event | per million events |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| stream (JetStream's count: messages with subjects and headers) | %d | %.0f | %s |\n", info.State.Bytes, float64(info.State.Bytes)/n, mib(int64(float64(info.State.Bytes)/n*1e6)))
	fmt.Printf("| files of the stream on disk (blocks and index) | %d | %.0f | %s |\n", disk, float64(disk)/n, mib(int64(float64(disk)/n*1e6)))
	return nil
}

// rawMessages reads every message of the log into memory, for the baseline.
func rawMessages(ctx context.Context, nc *nats.Conn) ([]*jetstream.RawStreamMsg, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, store.DefaultStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	info, err := js.Stream(ctx, store.DefaultStream)
	if err != nil {
		return nil, err
	}
	last := info.CachedInfo().State.LastSeq
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	var out []*jetstream.RawStreamMsg
	for {
		m, err := it.Next()
		if err != nil {
			return nil, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		out = append(out, &jetstream.RawStreamMsg{Subject: m.Subject(), Sequence: md.Sequence.Stream, Data: m.Data()})
		if md.Sequence.Stream >= last {
			return out, nil
		}
	}
}

// replayMemory decodes and folds msgs as store.Read does, without the stream.
func replayMemory(msgs []*jetstream.RawStreamMsg) error {
	s := state.New()
	dec := events.NewDecoder(false)
	go func() {
		for _, m := range msgs {
			dec.Submit(m.Subject, m.Sequence, m.Data, "")
		}
		dec.Close()
	}()
	for {
		m, ok := dec.Next()
		if !ok {
			return nil
		}
		if m.Err != nil {
			s.Skip(m.Subject, m.Seq)
			continue
		}
		_ = s.Apply(m.Event)
	}
}

// snapshotCosts prints what writing and reading a snapshot of fold costs.
func snapshotCosts(runs int, fold *state.State) error {
	var frozen *state.Frozen
	lock, err := measure(runs, func() (time.Duration, error) {
		start := time.Now()
		frozen = fold.Freeze()
		return time.Since(start), nil
	})
	if err != nil {
		return err
	}
	var body []byte
	walk, err := measure(runs, func() (time.Duration, error) {
		start := time.Now()
		var err error
		body, err = frozen.MarshalSnapshot(make([]byte, 0, len(body)+len(body)/8), nil)
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	nodes, err := measure(runs, func() (time.Duration, error) {
		start := time.Now()
		_, err := frozen.MarshalSnapshot(nil, snapshot.NodeKinds)
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	frozen = nil
	direct, err := measure(runs, func() (time.Duration, error) {
		start := time.Now()
		_, err := fold.MarshalSnapshot(make([]byte, 0, len(body)+len(body)/8), nil)
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	fmt.Println("| step | median |")
	fmt.Println("|---|---|")
	fmt.Printf("| freeze: copy what the fold changes in place (the writer holds the projection's read lock for this) | %s |\n", lock.Round(time.Millisecond))
	fmt.Printf("| walk the copy: the whole fold's body (%s) | %s |\n", mib(int64(len(body))), walk.Round(time.Millisecond))
	fmt.Printf("| walk the copy: the node bucket's body | %s |\n", nodes.Round(time.Millisecond))
	fmt.Printf("| baseline: walk the state itself (what the lock would cover without the copy) | %s |\n\n", direct.Round(time.Millisecond))
	fmt.Println("| compression | size | encode (after the lock) | decode (decompress and rebuild the state) |")
	fmt.Println("|---|---|---|---|")
	for _, c := range []snapshot.Compression{snapshot.None, snapshot.Zstd, snapshot.S2} {
		h := snapshot.Header{Stream: "SKIFF@bench", Seq: fold.Seq, Compression: c}
		var data []byte
		enc, err := measure(runs, func() (time.Duration, error) {
			start := time.Now()
			var err error
			data, err = snapshot.Encode(h, body)
			return time.Since(start), err
		})
		if err != nil {
			return err
		}
		dec, err := measure(runs, func() (time.Duration, error) {
			start := time.Now()
			_, _, err := snapshot.Decode(data, "")
			return time.Since(start), err
		})
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %s (%d bytes) | %s | %s |\n", c, mib(int64(len(data))), len(data), enc.Round(time.Millisecond), dec.Round(time.Millisecond))
	}
	// Baseline: the objects alone as JSON, as the log writes them (goccy), without subject
	// sequences, indexes or shared templates; walking and encoding is all under the lock.
	objs := jsonObjects{Namespaces: fold.Namespaces, Nodes: fold.Nodes}
	for _, p := range fold.Pods {
		objs.Pods = append(objs.Pods, p)
	}
	for _, d := range fold.Deployments {
		objs.Deployments = append(objs.Deployments, d)
	}
	for _, sv := range fold.Services {
		objs.Services = append(objs.Services, sv)
	}
	for _, ep := range fold.Endpoints {
		objs.Endpoints = append(objs.Endpoints, ep)
	}
	var data []byte
	enc, err := measure(runs, func() (time.Duration, error) {
		start := time.Now()
		var err error
		data, err = gojson.Marshal(objs)
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	dec, err := measure(runs, func() (time.Duration, error) {
		start := time.Now()
		var back jsonObjects
		err := gojson.Unmarshal(data, &back)
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	fmt.Printf("| baseline: the objects as JSON (goccy), uncompressed, no subjects or indexes | %s | %s (all under the lock) | %s (no indexes rebuilt) |\n",
		mib(int64(len(data))), enc.Round(time.Millisecond), dec.Round(time.Millisecond))
	return nil
}

// jsonObjects is the baseline's document.
type jsonObjects struct {
	Namespaces  map[string]*events.Namespace
	Nodes       map[string]*state.Node
	Pods        []*state.Pod
	Deployments []*state.Deployment
	Services    []*state.Service
	Endpoints   []*events.Endpoints
}

// putSnapshot writes the snapshot of the log's first seq events as the leader's writer does.
func putSnapshot(ctx context.Context, st *store.Store, bucket *snapshot.Bucket, id string, seq uint64) error {
	s := state.New()
	err := st.Read(ctx, store.ReadOptions{To: seq, OnPoison: func(subject string, seq uint64, _ error) { s.Skip(subject, seq) }},
		func(ev *events.Event) error { _ = s.Apply(ev); return nil })
	if err != nil {
		return err
	}
	body, err := s.MarshalSnapshot(nil, nil)
	if err != nil {
		return err
	}
	h := snapshot.Header{Stream: id, Seq: seq, Compression: snapshot.Zstd}
	if ev, err := st.Get(ctx, seq); err == nil {
		h.Time = ev.Time
	}
	data, err := snapshot.Encode(h, body)
	if err != nil {
		return err
	}
	// The only one in the bucket: the newest is the one measured.
	infos, err := bucket.List(ctx)
	if err != nil {
		return err
	}
	for _, in := range infos {
		if err := bucket.Delete(ctx, in.Name); err != nil {
			return err
		}
	}
	_, err = bucket.Put(ctx, h, data)
	return err
}

// startupOnly measures start-up from snapshots alone, profiling each child if asked.
func startupOnly(ctx context.Context, o options, st *store.Store, url string, head uint64, tails []uint64) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	id, err := snapshot.Identity(ctx, st)
	if err != nil {
		return err
	}
	bucket, err := snapshot.Open(ctx, st.JetStream(), api.SnapshotBucket)
	if err != nil {
		return err
	}
	fmt.Println("| start | snapshot at | events folded | state loaded | synced (median) | CPU | RSS synced | peak RSS | Go heap |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, tail := range tails {
		if err := putSnapshot(ctx, st, bucket, id, head-tail); err != nil {
			return err
		}
		childProfile = o.cpuProfile
		r, err := startups(ctx, o.runs, exe, url, true)
		if err != nil {
			return err
		}
		printStartup(fmt.Sprintf("newest snapshot, %d events before the head", tail), r)
	}
	return nil
}

// profiled runs f with a CPU profile written to path, if set.
func profiled(path string, f func() error) error {
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	return f()
}

// childProfile, if set, is where each child writes a CPU profile (with its run's number).
var childProfile string

// startups runs the child n times and returns the run of median time.
func startups(ctx context.Context, n int, exe, url string, fromSnapshot bool) (startup, error) {
	var rs []startup
	for i := range n {
		args := []string{"-child", "startup", "-server", url, "-from-snapshot=" + strconv.FormatBool(fromSnapshot)}
		if childProfile != "" {
			args = append(args, "-cpuprofile", fmt.Sprintf("%s.%d", childProfile, i))
		}
		cmd := exec.CommandContext(ctx, exe, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return startup{}, fmt.Errorf("child: %w: %s", err, errb.String())
		}
		var r startup
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			return startup{}, fmt.Errorf("child said %q: %w", out.String(), err)
		}
		r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b startup) int { return int(a.Synced - b.Synced) })
	return rs[len(rs)/2], nil
}

func printStartup(what string, r startup) {
	at := "-"
	if r.Snapshot > 0 {
		at = strconv.FormatUint(r.Snapshot, 10)
	}
	fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %s | %s |\n", what, at, r.Folded, r.Loaded.Round(time.Millisecond), r.Synced.Round(time.Millisecond),
		r.CPU.Round(time.Millisecond), mib(r.RSS), mib(r.Peak), mib(r.Heap))
}

// run execs skiff with args against url, without anyone's client config, output discarded.
func run(ctx context.Context, skiff, url string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, skiff, append([]string{"--server", url}, args...)...)
	cfg, err := os.MkdirTemp("", "replaybench-config-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(cfg)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfg, "SKIFF_CONFIG=", "SKIFF_CREDS=", "SKIFF_SERVER=")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("skiff %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return time.Since(start), nil
}
