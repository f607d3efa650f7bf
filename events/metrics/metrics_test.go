package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"skiff.dev/events"
	"skiff.dev/events/eventstest"
	"skiff.dev/events/live"
	"skiff.dev/events/metrics"
	"skiff.dev/events/metrics/metricstest"
	"skiff.dev/events/natsserver"
	"skiff.dev/events/state"
)

func node(t *testing.T, name string) *events.Event {
	t.Helper()
	ev, err := events.New(time.Now(), events.Meta{Actor: "test"}, events.ObjectRef{Kind: events.KindNode, Name: name}, "",
		&events.NodeRegistered{Address: "10.0.0.1", MilliCPU: 1000, Memory: 1 << 30, MaxPods: 10})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// One endpoint serves the Go and process collectors, the connection's reconnects, and a
// projection's fold: its events folded and how far it is behind the log, both as they change.
func TestServeProjectionAndConn(t *testing.T) {
	st, nc, _ := eventstest.NewStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), eventstest.Timeout)
	defer cancel()
	following := eventstest.Follow(t, st)
	// A projection nobody runs stays at sequence 0: its lag is the whole log.
	stopped := live.New(state.New(), nil)

	reg := metrics.NewRegistry()
	if err := metrics.RegisterProjection(reg, "skiff_a", following, st.Head); err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterProjection(reg, "skiff_b", stopped, st.Head); err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterConn(reg, nc, "test"); err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterConn(reg, nc, "test"); err == nil {
		t.Fatal("a second connection of the same name registered; want an error")
	}
	srv, err := metrics.Start(ctx, "127.0.0.1:0", reg, eventstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s%s", srv.Addr(), metrics.Path)

	before := following.Folded()
	seq, err := eventstest.Append(ctx, st, following, node(t, "n1"), node(t, "n2"), node(t, "n3"))
	if err != nil {
		t.Fatal(err)
	}
	fams, err := metricstest.Scrape(ctx, nil, url)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"skiff_a_events_folded_total":   float64(before + 3),
		"skiff_a_projection_lag_events": 0,
		"skiff_b_events_folded_total":   0,
		"skiff_b_projection_lag_events": float64(seq),
		"skiff_nats_reconnects_total":   0,
	}
	for name, w := range want {
		if got, ok := fams.Value(name); !ok || got != w {
			t.Errorf("%s = %v (present %v); want %v", name, got, ok, w)
		}
	}
	if _, ok := fams.Value("skiff_nats_reconnects_total", "connection", "test"); !ok {
		t.Error("skiff_nats_reconnects_total has no connection=\"test\" sample")
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams.Value(name); !ok {
			t.Errorf("%s missing: the standard collectors are not registered", name)
		}
	}

	cancel()
	select {
	case <-srv.Done():
	case <-time.After(eventstest.Timeout):
		t.Fatal("the metrics server did not stop when its context ended")
	}
}

// A wrong --metrics-addr fails at start.
func TestStartBadAddress(t *testing.T) {
	if _, err := metrics.Start(context.Background(), "127.0.0.1:notaport", metrics.NewRegistry(), nil); err == nil {
		t.Fatal("Start on a bad address succeeded")
	}
}

// The reconnects counter follows the connection: a server restarted on the same address makes
// the client reconnect, and the next scrape says so.
func TestConnReconnects(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsserver.Start(natsserver.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL(), "nats://")
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg := prometheus.NewPedanticRegistry()
	if err := metrics.RegisterConn(reg, nc, "test"); err != nil {
		t.Fatal(err)
	}
	reconnects := func() float64 {
		v, err := testutil.GatherAndCount(reg, "skiff_nats_reconnects_total")
		if err != nil || v != 1 {
			t.Fatalf("reconnects series: %d, %v", v, err)
		}
		fams, _ := reg.Gather()
		return fams[0].GetMetric()[0].GetCounter().GetValue()
	}
	if got := reconnects(); got != 0 {
		t.Fatalf("reconnects before any = %v", got)
	}

	srv.Stop()
	srv, err = natsserver.Start(natsserver.Config{DataDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	eventstest.Eventually(t, eventstest.Timeout, "the client to reconnect", func() bool { return nc.IsConnected() && nc.Stats().Reconnects > 0 })
	if got := reconnects(); got != 1 {
		t.Fatalf("reconnects after a server restart = %v, want 1", got)
	}
}
