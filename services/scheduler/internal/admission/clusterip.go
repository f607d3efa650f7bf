package admission

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/state"
)

// ClusterIP allocation. The lowest free address of the service range is taken, skipping the
// network address, the first host address (reserved, as Kubernetes reserves it for its own
// `kubernetes` Service; it can still be requested explicitly) and the broadcast address.

// broadcast is the last address of the range.
func (a *Admission) broadcast() netip.Addr {
	b := a.cidr.Addr().AsSlice()
	bits := a.cidr.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	ip, _ := netip.AddrFromSlice(b)
	return ip
}

// allocate returns the lowest free address, skipping those claimed by this request and skip.
func (a *Admission) allocate(st *state.State, claimed map[netip.Addr]*decoded, skip netip.Addr) (netip.Addr, bool) {
	last := a.broadcast()
	for ip := a.cidr.Addr().Next().Next(); ip.IsValid() && ip.Less(last) && a.cidr.Contains(ip); ip = ip.Next() {
		if ip == skip {
			continue
		}
		if _, ok := claimed[ip]; ok {
			continue
		}
		if _, ok := st.ClusterIPOwner(ip.String()); ok {
			continue
		}
		return ip, true
	}
	return netip.Addr{}, false
}

// outOfRange says why ip cannot be a ClusterIP, or "".
func (a *Admission) outOfRange(ip netip.Addr) string {
	switch {
	case !a.cidr.Contains(ip):
		return fmt.Sprintf("%s is not in the service range %s", ip, a.cidr)
	case ip == a.cidr.Addr():
		return fmt.Sprintf("%s is the network address of the service range %s", ip, a.cidr)
	case ip == a.broadcast():
		return fmt.Sprintf("%s is the broadcast address of the service range %s", ip, a.cidr)
	}
	return ""
}

// verifyClusterIP runs after a new Service was written. allocMu keeps this replica from handing
// one address out twice, but two replicas deciding at the same moment on states that do not yet
// hold each other's Service can. The log orders the two claims, and the writer of the later one
// (which sees both once its own write is in its projection) moves its Service to a free address.
// A Service whose address the user asked for is not moved; the answer says what happened.
func (a *Admission) verifyClusterIP(ctx context.Context, meta events.Meta, d *decoded, result *api.Result, resp *api.Response) {
	key := state.Key{Namespace: d.namespace, Name: d.name}
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if err := a.proj.WaitSeq(ctx, result.Seq); err != nil {
			a.lg.WarnContext(ctx, "cannot verify the ClusterIP of a new Service", "service", key.String(), "err", err)
			return
		}
		var (
			ev      *events.Event
			expect  uint64
			ip      string
			holder  *state.Key
			noSpace bool
		)
		a.proj.View(func(st *state.State) {
			svc := st.Services[key]
			if svc == nil || st.SubjectSeq(events.ObjectSubject(events.KindService, key.Namespace, key.Name)) != result.Seq {
				return // changed or deleted since: no longer this command's business
			}
			ip = svc.Spec.ClusterIP
			for k, other := range st.Services {
				if k == key || other.Spec.ClusterIP != ip {
					continue
				}
				// Both are in the projection; the one that is not ours has the lower sequence if it
				// claimed first (see doc.go for the one case this misses).
				if st.SubjectSeq(events.ObjectSubject(events.KindService, k.Namespace, k.Name)) < result.Seq {
					holder = &k
					break
				}
			}
			if holder == nil || d.clusterIPSet {
				return
			}
			cur, _ := netip.ParseAddr(ip)
			next, ok := a.allocate(st, nil, cur)
			if !ok {
				noSpace = true
				return
			}
			moved := svc.Service
			moved.Spec.ClusterIP = next.String()
			ref := events.ObjectRef{Kind: events.KindService, Namespace: key.Namespace, Name: key.Name, UID: moved.Metadata.UID}
			if e, err := events.New(a.clock(), meta, ref, "", &events.ServiceApplied{Service: moved}); err == nil {
				ev, expect = e, st.SubjectSeq(e.Subject)
			}
		})
		if holder == nil {
			return
		}
		if d.clusterIPSet || noSpace || ev == nil {
			msg := fmt.Sprintf("%s was created with clusterIP %s, which Service %q in namespace %q claimed at the same moment: delete %s and apply it again",
				d.label(), ip, holder.Name, holder.Namespace, d.label())
			a.lg.ErrorContext(ctx, "ClusterIP collision", "service", key.String(), "ip", ip, "holder", holder.String())
			resp.Error = &api.Error{Code: events.Code(events.ErrConflict), Message: msg}
			return
		}
		seq, err := a.append(ctx, ev, expect)
		if errors.Is(err, events.ErrConflict) {
			// Someone changed the Service meanwhile; look again once we see it.
			if werr := a.waitForOther(ctx, ev.Subject, expect, result.Seq); werr != nil {
				a.lg.WarnContext(ctx, "cannot verify the ClusterIP of a new Service", "service", key.String(), "err", werr)
				return
			}
			continue
		}
		if err != nil {
			a.lg.ErrorContext(ctx, "cannot move a Service off a ClusterIP another Service holds", "service", key.String(), "ip", ip, "err", err)
			resp.Error = &api.Error{Code: events.Code(err), Message: fmt.Sprintf(
				"%s was created with clusterIP %s, which Service %q in namespace %q claimed at the same moment, and moving it failed: %v; delete it and apply it again",
				d.label(), ip, holder.Name, holder.Namespace, err)}
			return
		}
		a.lg.Warn("moved a new Service off a ClusterIP claimed concurrently", "service", key.String(), "from", ip, "holder", holder.String(), "seq", seq)
		result.Seq = seq
		resp.Seq = max(resp.Seq, seq)
	}
}
