// Package proxier turns the log's Services and Endpoints into the net proxy's rules, the way
// kube-proxy's proxier does: the projection's handlers only record that something changed and
// ask for a sync; one sync function computes the whole desired state and hands it to the rules
// engine as one transaction; nothing is synced before the projection has caught up with the log;
// a failed sync is retried, and the engine then rewrites the whole table.
package proxier

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/services/netproxy/internal/rules"
)

// Syncer programs the rules; *rules.Syncer is one.
type Syncer interface {
	Sync(ctx context.Context, desired []rules.ServicePort) error
}

// Config configures a Proxier. Projection and Rules are required.
type Config struct {
	// Projection must follow the service and endpoints subjects.
	Projection *live.Projection
	Rules      Syncer
	// RetryInterval is the pause after a failed sync; default 1 s.
	RetryInterval time.Duration
	// Clock times the pause and the syncs; default the system clock. Tests pass a fake one and
	// move it instead of waiting.
	Clock  Clock
	Logger *slog.Logger
	// Synced, if set, is called after every successful sync with the log sequence it reflects
	// (live.Projection.Complete: every Service and Endpoints event up to it is in the sync);
	// tests and benchmarks wait on it.
	Synced func(seq uint64)
	// Tracer traces each sync (see trace.go); nil traces nothing.
	Tracer trace.Tracer
	// Node names the node in spans.
	Node string
}

// Clock is the proxier's time.
type Clock interface {
	Now() time.Time
	// After sends the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Proxier keeps the rules in step with the log.
type Proxier struct{ cfg Config }

// New returns a proxier.
func New(cfg Config) *Proxier {
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	return &Proxier{cfg: cfg}
}

// Run syncs until ctx ends: once when the projection has caught up, then after every change.
func (p *Proxier) Run(ctx context.Context) error {
	var watch *live.Changes
	if p.cfg.Tracer != nil {
		// The changes each sync answers, for its spans; watched only when traced.
		watch = p.cfg.Projection.Watch()
		defer p.cfg.Projection.Unwatch(watch)
	}
	if err := p.cfg.Projection.WaitSynced(ctx); err != nil {
		return nil
	}
	var answers []live.Change
	for {
		changed := p.cfg.Projection.Changed()
		if watch != nil {
			// Taken before the state is viewed: every change taken is in the sync. A failed
			// sync's changes are answered by the next one.
			changes, _ := watch.Take()
			answers = append(answers, changes...)
		}
		// What the sync reflects is taken before the state it syncs: the state only grows. It
		// costs round trips to the log (Complete), so only when someone reads it: Synced, or the
		// debug log that tests follow.
		var seq uint64
		if p.cfg.Synced != nil || p.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
			var err error
			if seq, err = p.cfg.Projection.Complete(ctx); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Debug("how far the log is folded: using the lowest consumer's sequence", "seq", seq, "err", err)
			}
		}
		var desired []rules.ServicePort
		p.cfg.Projection.View(func(st *state.State) {
			desired = ServicePorts(st)
		})
		start := p.cfg.Clock.Now()
		err := p.cfg.Rules.Sync(ctx, desired)
		p.traceSync(answers, len(desired), start, err)
		if err != nil {
			// The rules engine makes the next sync a full one; try again after a pause.
			p.cfg.Logger.Error("sync rules failed; retrying with a full sync", "seq", seq, "err", err)
			select {
			case <-p.cfg.Clock.After(p.cfg.RetryInterval):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		answers = answers[:0]
		p.cfg.Logger.Debug("rules synced", "seq", seq, "servicePorts", len(desired), "took", p.cfg.Clock.Now().Sub(start))
		if p.cfg.Synced != nil {
			p.cfg.Synced(seq)
		}
		// Whatever arrived during the sync has closed changed already: the next pass takes it
		// all in one transaction.
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// ServicePorts computes the desired rules from the state: one entry per port of every ClusterIP
// Service, with the endpoints the endpoints controller recorded for that port.
func ServicePorts(st *state.State) []rules.ServicePort {
	var out []rules.ServicePort
	for key, svc := range st.Services {
		vip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil || !vip.Is4() {
			continue
		}
		eps := st.Endpoints[key]
		for _, sp := range svc.Spec.Ports {
			proto := rules.TCP
			if strings.EqualFold(sp.Protocol, "UDP") {
				proto = rules.UDP
			}
			r := rules.ServicePort{Namespace: key.Namespace, Name: key.Name, PortName: sp.Name, VIP: vip, Protocol: proto, Port: uint16(sp.Port)}
			if eps != nil {
				r.Endpoints = endpointsFor(eps.Addresses, sp)
			}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b rules.ServicePort) int {
		return cmp.Or(a.VIP.Compare(b.VIP), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	return out
}

// endpointsFor picks, from every address, the target port resolved for service port sp.
func endpointsFor(addrs []events.EndpointAddress, sp events.ServicePort) []rules.Endpoint {
	var out []rules.Endpoint
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a.IP)
		if err != nil {
			continue
		}
		for _, p := range a.Ports {
			if p.Name == sp.Name && strings.EqualFold(cmp.Or(p.Protocol, "TCP"), cmp.Or(sp.Protocol, "TCP")) {
				out = append(out, rules.Endpoint{IP: ip, Port: uint16(p.Port)})
			}
		}
	}
	return out
}
