package register

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
)

// NodeInfo is what a node says about itself when it registers.
type NodeInfo struct {
	// Name is a DNS-1123 label: it becomes a subject token.
	Name    string
	Labels  map[string]string
	Taints  []events.Taint
	Address string
	// MilliCPU, Memory (bytes) and MaxPods are the node's allocatable capacity.
	MilliCPU int64
	Memory   int64
	MaxPods  int32
	// EphemeralStorage (bytes) and Extended (units by name) are what the node offers beyond
	// CPU and memory.
	EphemeralStorage int64
	Extended         map[string]int64
}

// Log is the part of the event log registration needs; *store.Store is one.
type Log interface {
	AppendAll(ctx context.Context, ws []store.Write) []error
	LastSeq(ctx context.Context, subject string) (uint64, error)
}

// Projection is a view of the log that can be waited on; *live.Projection is one. It needs to
// follow at least the node subjects.
type Projection interface {
	View(fn func(*state.State))
	WaitSeq(ctx context.Context, seq uint64) error
}

var _ Log = (*store.Store)(nil)

// maxAttempts bounds how often one registration is decided again after conflicts: each conflict
// means someone else wrote to the node subject, which happens a handful of times per node's life,
// not continuously.
const maxAttempts = 10

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Validate reports what is wrong with n, wrapping events.ErrInvalidArgument.
func (n NodeInfo) Validate() error {
	switch {
	case !dns1123Label.MatchString(n.Name):
		return fmt.Errorf("node name %q: want a DNS-1123 label (lower-case letters, digits and '-', at most 63): %w", n.Name, events.ErrInvalidArgument)
	case n.MilliCPU <= 0 || n.Memory <= 0 || n.MaxPods <= 0:
		return fmt.Errorf("node %s: capacity cpu=%dm memory=%d pods=%d: every one must be positive: %w", n.Name, n.MilliCPU, n.Memory, n.MaxPods, events.ErrInvalidArgument)
	}
	return nil
}

// Register appends NodeRegistered for node unless the log already holds the same registration.
// actor is written into the event; empty means "node/<name>". Errors:
//   - events.ErrInvalidArgument: the node info is invalid.
//   - events.ErrConflict: others kept writing to the node's subject through maxAttempts tries.
//   - events.ErrUnavailable: the log did not answer; calling again is safe.
func Register(ctx context.Context, log Log, proj Projection, node NodeInfo, actor string) error {
	return RegisterAll(ctx, log, proj, []NodeInfo{node}, actor)
}

// RegisterAll registers many nodes at once, with their appends pipelined (a simulated cluster
// registers thousands). It returns the errors of all nodes that failed, joined.
func RegisterAll(ctx context.Context, log Log, proj Projection, nodes []NodeInfo, actor string) error {
	var errs []error
	todo := make([]NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		if err := n.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		todo = append(todo, n)
	}
	for attempt := 1; len(todo) > 0; attempt++ {
		now := time.Now()
		var ws []store.Write
		var which []NodeInfo
		var buildErr error
		proj.View(func(st *state.State) {
			for _, n := range todo {
				if same(st.Nodes[n.Name], n) {
					continue
				}
				a := actor
				if a == "" {
					a = "node/" + n.Name
				}
				ev, err := events.New(now, events.Meta{Actor: a}, events.ObjectRef{Kind: events.KindNode, Name: n.Name, UID: n.Name}, "",
					&events.NodeRegistered{Labels: n.Labels, Taints: n.Taints, Address: n.Address, MilliCPU: n.MilliCPU, Memory: n.Memory, MaxPods: n.MaxPods,
						EphemeralStorage: n.EphemeralStorage, Extended: n.Extended})
				if err != nil {
					buildErr = errors.Join(buildErr, err)
					continue
				}
				ws = append(ws, store.Write{Event: ev, Expect: st.SubjectSeq(ev.Subject)})
				which = append(which, n)
			}
		})
		if buildErr != nil {
			errs = append(errs, buildErr)
		}
		if len(ws) == 0 {
			break
		}
		todo = todo[:0]
		var waitFor uint64
		for i, err := range log.AppendAll(ctx, ws) {
			switch {
			case err == nil:
				waitFor = max(waitFor, ws[i].Event.Seq)
			case errors.Is(err, events.ErrConflict) && attempt < maxAttempts:
				seq, lerr := log.LastSeq(ctx, ws[i].Event.Subject)
				if lerr != nil {
					errs = append(errs, fmt.Errorf("register node %s: %w", which[i].Name, lerr))
					continue
				}
				waitFor = max(waitFor, seq)
				todo = append(todo, which[i])
			default:
				errs = append(errs, fmt.Errorf("register node %s: %w", which[i].Name, err))
			}
		}
		// Wait until the projection shows what landed (ours and others'), so the next decision,
		// and the caller's next look, see it.
		if waitFor > 0 {
			if err := proj.WaitSeq(ctx, waitFor); err != nil {
				errs = append(errs, fmt.Errorf("register nodes: %w", err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// same reports whether the log's node already says what n says.
func same(cur *state.Node, n NodeInfo) bool {
	return cur != nil &&
		maps.Equal(cur.Metadata.Labels, n.Labels) &&
		slices.Equal(cur.Spec.Taints, n.Taints) &&
		cur.Address() == n.Address &&
		cur.MilliCPU == n.MilliCPU && cur.Memory == n.Memory && cur.MaxPods == n.MaxPods &&
		cur.EphemeralStorage == n.EphemeralStorage && maps.Equal(cur.Extended, n.Extended)
}
