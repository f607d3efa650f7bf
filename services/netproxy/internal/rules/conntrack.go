package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// flowTable is the part of the conntrack netlink API the Syncer needs.
type flowTable interface {
	Dump(opts *conntrack.DumpOptions) ([]conntrack.Flow, error)
	Delete(f conntrack.Flow) error
	Close() error
}

var _ flowTable = (*conntrack.Conn)(nil)

// clearUDPFlows deletes the UDP conntrack entries whose original destination is one of the ports
// in flushes and whose reply does not come from one of that port's current endpoints.
//
// NAT happens on the first packet of a connection only, and a UDP "connection" lives as long as
// its client keeps sending. Without this, a client of a removed endpoint keeps sending into the
// void, and a client that was refused while a port had no endpoints keeps its un-NATed entry
// and never reaches the endpoints that came later. TCP needs nothing: a gone endpoint answers
// nothing or a reset, and the client reconnects.
//
// It dumps the whole conntrack table once per call, which costs in proportion to the node's
// connections; it runs only after a sync that changed UDP endpoints.
func clearUDPFlows(ctx context.Context, ct flowTable, flushes []udpFlush) (deleted int, err error) {
	if len(flushes) == 0 {
		return 0, nil
	}
	keep := make(map[svcKey][]epKey, len(flushes))
	for _, f := range flushes {
		keep[f.key] = f.keep
	}
	flows, err := ct.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("dump conntrack table: %w", err)
	}
	var errs []error
	for _, f := range flows {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		orig, reply := f.TupleOrig, f.TupleReply
		if orig.Proto.Protocol != uint8(UDP) || !orig.IP.DestinationAddress.Unmap().Is4() {
			continue
		}
		key := newSvcKey(orig.IP.DestinationAddress.Unmap().As4(), UDP, orig.Proto.DestinationPort)
		eps, ok := keep[key]
		if !ok {
			continue
		}
		from := Endpoint{IP: reply.IP.SourceAddress.Unmap(), Port: reply.Proto.SourcePort}
		if from.IP.Is4() {
			if _, found := slices.BinarySearch(eps, newEpKey(from.IP.As4(), from.Port)); found {
				continue
			}
		}
		if err := ct.Delete(f); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // it expired meanwhile
			}
			errs = append(errs, fmt.Errorf("delete conntrack entry %s:%d -> %s:%d (reply from %s): %w",
				orig.IP.SourceAddress, orig.Proto.SourcePort, orig.IP.DestinationAddress, orig.Proto.DestinationPort, from, err))
			continue
		}
		deleted++
	}
	return deleted, errors.Join(errs...)
}
