// Command replaybench measures replaying Skiff's log, and starting from snapshots, at a
// realistic size (issue 11): by default 1,000,000 events in a real file-backed JetStream stream,
// ending with 150,000 live pods of 500 Deployments (each behind a Service) on 5,000 nodes.
//
//	make build && cd tests && go run ./cmd/replaybench                       # the size, 5 runs
//	go run ./cmd/replaybench -events 100000 -pods 15000 -nodes 500 -deployments 50 -runs 3
//
// The log is written once, as Skiff's writers write it (conditional appends through
// store.AppendAll; the leader's fences; pods created, scheduled, bound, reported Pending and
// Running, some replaced: deletion, stop, termination, deletion; Endpoints and rollout progress
// after each batch; node leases lapsing), into -dir (default /tmp/skiff-replaybench), and kept
// there for the next run of the same shape. Then, in one run, each measured -runs times, the
// median reported:
//
//   - full replay from the stream: store.Read from sequence 1 folded into a state (the path of
//     every service's start-up and `skiff events replay`), in events/s; beside it, as the
//     baseline, the same messages decoded and folded from memory (the old BenchmarkReplay);
//   - snapshots of the fold at the head (150,000 pods): the time under the projection's read
//     lock (state.MarshalSnapshot), compression (none, zstd, s2: time and size), decoding;
//   - start-up of a fresh process (this program again, in -child mode) that does what the
//     scheduler does, live.New(snapshot.Start(...)) and Run until synced: from the newest
//     snapshot -tail events before the head, and from none (the baseline); its RSS then, and its
//     peak;
//   - `skiff get pods -A --at SEQ` (the CLI's own fold, history.go foldLog) at old sequences,
//     and `skiff events replay pods` of the head with and without --from-snapshot, exec to exit;
//   - the stream's bytes on disk, per event and per million events.
//
// It prints the machine, the load average before and after, and a table per measurement.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

type options struct {
	dir, bin          string
	events, pods      int
	nodes, deploys    int
	runs              int
	tails, at         string
	child, server     string
	fromSnapshot      bool
	rebuild, keepLogs bool
	cpuProfile, only  string
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", filepath.Join(os.TempDir(), "skiff-replaybench"), "where the log is built once and kept for the next run of the same shape")
	flag.StringVar(&o.bin, "bin", "", "directory holding skiff (default: bin/ of the checkout, beside the tests module)")
	flag.IntVar(&o.events, "events", 1_000_000, "events in the log")
	flag.IntVar(&o.pods, "pods", 150_000, "live pods at the end")
	flag.IntVar(&o.nodes, "nodes", 5000, "nodes")
	flag.IntVar(&o.deploys, "deployments", 500, "Deployments (each with a Service), pods spread evenly")
	flag.IntVar(&o.runs, "runs", 5, "times each measurement is taken (the median is reported)")
	flag.StringVar(&o.tails, "tails", "100000,10000", "start-up from a snapshot this many events before the head (comma-separated)")
	flag.StringVar(&o.at, "at", "100000,500000", "sequences `skiff get pods --at` shows (comma-separated)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the snapshot costs (walk, encode, decode) to this file")
	flag.StringVar(&o.only, "only", "", "measure only this: startup (start-up from snapshots, each child profiled into -cpuprofile.N if given), or snapshot (its costs, from the newest snapshot in the bucket)")
	flag.BoolVar(&o.rebuild, "rebuild", false, "write the log again even if -dir holds one of this shape")
	flag.StringVar(&o.child, "child", "", "internal: run as the measured start-up process (\"startup\")")
	flag.StringVar(&o.server, "server", "", "internal: the child's NATS URL")
	flag.BoolVar(&o.fromSnapshot, "from-snapshot", false, "internal: the child starts from the newest snapshot")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	if o.child != "" {
		err = child(ctx, o)
	} else {
		err = bench(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replaybench:", err)
		os.Exit(1)
	}
}

func parseList(flagName, s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("-%s %q: %w", flagName, s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// binDir finds bin/ beside the tests module, as make build fills it.
func binDir(flagged string) (string, error) {
	if flagged != "" {
		return flagged, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "bin"), nil
		}
		if dir == filepath.Dir(dir) {
			return "", errors.New("no go.work above the working directory: give -bin")
		}
	}
}

// loadavg is /proc/loadavg's first three fields.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// procStatus reads kB fields (VmRSS, VmHWM) of /proc/self/status.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func writeJSON(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}
