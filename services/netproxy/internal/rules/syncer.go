package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ti-mo/conntrack"

	"skiff.dev/events"
)

// maxTableName is NFT_NAME_MAXLEN less the terminating NUL.
const maxTableName = 255

// Syncer owns one nftables table and makes it match the Service ports it is given.
type Syncer struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex // serialises Sync and Close
	conn nftConn    // nil once closed
	seq  uint32     // sequence number of the next transaction's first message
	ct   flowTable

	// What the kernel holds, as of the last transaction it acknowledged. Meaningless while
	// needFull is set.
	state    kernelState
	needFull bool

	// UDP ports whose conntrack cleanup has not succeeded yet; retried by the next Sync.
	pendingFlush []udpFlush
}

// NewSyncer opens the netlink sockets the Syncer uses, in the network namespace of the calling
// OS thread; they stay in that namespace for the Syncer's life, whatever thread later calls
// Sync. A caller that switched its thread into another namespace must hold it with
// runtime.LockOSThread until NewSyncer returns. It reads and writes nothing: the first Sync
// replaces the table whole.
//
// Errors: events.ErrInvalidArgument for an impossible table name; otherwise the kernel's socket
// errors (for instance EPERM without CAP_NET_ADMIN), wrapped with events.ErrUnavailable.
func NewSyncer(cfg Config) (*Syncer, error) {
	cfg = cfg.withDefaults()
	if err := checkTableName(cfg.Table); err != nil {
		return nil, err
	}
	sock, err := openNFSocket()
	if err != nil {
		return nil, fmt.Errorf("nftables rules for table %s: %w: %w", cfg.Table, events.ErrUnavailable, err)
	}
	ct, err := conntrack.Dial(nil)
	if err != nil {
		sock.close()
		return nil, fmt.Errorf("nftables rules for table %s: open conntrack netlink socket: %w: %w", cfg.Table, events.ErrUnavailable, err)
	}
	// Sequence numbers start from the clock; they only have to differ between the batches of
	// one socket.
	return newSyncer(cfg, sock, uint32(time.Now().Unix()), ct), nil
}

func checkTableName(table string) error {
	if len(table) > maxTableName || strings.ContainsRune(table, 0) {
		return fmt.Errorf("nftables table name %q: at most %d bytes, no NUL: %w", table, maxTableName, events.ErrInvalidArgument)
	}
	return nil
}

// newSyncer returns a Syncer that sends its transactions through conn; cfg has its defaults.
func newSyncer(cfg Config, conn nftConn, firstSeq uint32, ct flowTable) *Syncer {
	return &Syncer{
		cfg:      cfg,
		log:      cfg.Logger.With("table", cfg.Table),
		conn:     conn,
		seq:      firstSeq,
		ct:       ct,
		needFull: true,
	}
}

// Close closes the netlink sockets. The table stays in the kernel, so Services keep working while
// the proxy restarts; the next Syncer replaces it.
func (s *Syncer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := errors.Join(s.conn.close(), s.ct.Close())
	s.conn, s.ct = nil, nil
	return err
}

// Sync makes the table hold exactly the Service ports in desired, in one netlink transaction:
// the whole table after NewSyncer or a failed Sync, otherwise only the map elements that changed
// since the last successful Sync (and an lb-N chain when a new endpoint count N appears). It
// returns once the kernel has acknowledged the transaction; then it deletes the conntrack
// entries of removed UDP endpoints.
//
// desired must hold every Service port, not a change: a port missing from it is removed. Sync
// does not keep desired or its slices.
//
// Errors:
//   - events.ErrInvalidArgument: desired has an invalid or duplicate port; nothing was written
//     and the table is as before.
//   - events.ErrUnavailable: the kernel refused or did not acknowledge the transaction (the
//     kernel's errno is wrapped too, e.g. unix.EPERM); the table is as before or unknown, and the
//     next Sync replaces it whole. Retry with backoff.
//   - events.ErrUnavailable after a successful transaction, if conntrack cleanup failed; the
//     rules are in place and the cleanup is retried by the next Sync.
//   - events.ErrFailedPrecondition after Close.
//   - the context's error if ctx ended before anything was sent.
func (s *Syncer) Sync(ctx context.Context, desired []ServicePort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return fmt.Errorf("sync table %s: %w: the Syncer is closed", s.cfg.Table, events.ErrFailedPrecondition)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync table %s: %w", s.cfg.Table, err)
	}
	start := time.Now()
	full := s.needFull
	p, err := s.state.plan(desired, full)
	if err != nil {
		return fmt.Errorf("sync table %s: %w", s.cfg.Table, err)
	}
	if !p.empty() {
		b, err := encodePlan(s.seq, s.cfg.Table, p, s.cfg.MaxElementsPerMessage)
		if err != nil {
			return fmt.Errorf("sync table %s: %w", s.cfg.Table, err)
		}
		s.seq = b.nextSeq
		if err := s.conn.transact(ctx, b); err != nil {
			s.cfg.Metrics.SyncErrors.Inc()
			s.needFull = true
			return fmt.Errorf("sync %d service ports to table %s (the next sync replaces the table): %w: %w",
				len(desired), s.cfg.Table, events.ErrUnavailable, err)
		}
		s.state.commit(p)
		s.needFull = false
		level := slog.LevelDebug
		if p.full {
			level = slog.LevelInfo // once per start or failure: worth seeing
		}
		s.log.Log(ctx, level, "nftables table synced", "full", p.full, "reason", p.reason, "service_ports", len(desired),
			"elements", p.elementCount(), "new_chains", len(p.newChains), "bytes", len(b.buf), "duration", time.Since(start))
	}
	s.observe(p, time.Since(start))
	return s.flushConntrack(ctx, p.udpFlush)
}

// observe records a sync whose transaction (if it had one) the kernel took.
func (s *Syncer) observe(p *plan, took time.Duration) {
	m := s.cfg.Metrics
	m.RuleChanges.Add(float64(p.elementCount() + len(p.newChains)))
	if p.full {
		m.FullSyncs.Inc()
		m.FullSync.Observe(took.Seconds())
		return
	}
	m.IncrementalSync.Observe(took.Seconds())
}

func (s *Syncer) flushConntrack(ctx context.Context, flushes []udpFlush) error {
	work := append(s.pendingFlush, flushes...)
	s.pendingFlush = nil
	if len(work) == 0 {
		return nil
	}
	// Only called after the kernel acknowledged (or had nothing to change), so written is what
	// the kernel holds: the endpoints to keep are today's, also for a cleanup left over from an
	// earlier sync whose endpoints have changed since.
	seen := make(map[svcKey]bool, len(work))
	dedup := work[:0]
	for _, f := range work {
		if seen[f.key] {
			continue
		}
		seen[f.key] = true
		f.keep = nil
		if st := s.state.written[f.key]; st != nil {
			f.keep = st.eps
		}
		dedup = append(dedup, f)
	}
	deleted, err := clearUDPFlows(ctx, s.ct, dedup)
	if deleted > 0 {
		s.log.Debug("deleted stale UDP conntrack entries", "entries", deleted, "service_ports", len(dedup))
	}
	if err != nil {
		s.pendingFlush = dedup
		return fmt.Errorf("clear conntrack entries of removed UDP endpoints (rules are in place; retried on the next sync): %w: %w",
			events.ErrUnavailable, err)
	}
	return nil
}
