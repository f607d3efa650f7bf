package rules

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// fakeFlows is a conntrack table in memory: Dump returns what it holds, Delete removes it.
type fakeFlows struct {
	flows     []conntrack.Flow
	failOn    netip.Addr // Delete fails with EIO for flows answered by this address
	vanishing netip.Addr // Delete finds no entry (it expired) for flows answered by this address
}

var _ flowTable = (*fakeFlows)(nil)

func (f *fakeFlows) Dump(*conntrack.DumpOptions) ([]conntrack.Flow, error) {
	return slices.Clone(f.flows), nil
}
func (f *fakeFlows) Close() error { return nil }

func (f *fakeFlows) Delete(fl conntrack.Flow) error {
	switch fl.TupleReply.IP.SourceAddress {
	case f.failOn:
		return unix.EIO
	case f.vanishing:
		return unix.ENOENT
	}
	f.flows = slices.DeleteFunc(f.flows, func(x conntrack.Flow) bool { return x.ID == fl.ID })
	return nil
}

func flow(id uint32, proto uint8, client, vip string, vport uint16, replyFrom string, rport uint16) conntrack.Flow {
	var f conntrack.Flow
	f.ID = id
	f.TupleOrig.IP = conntrack.IPTuple{SourceAddress: ip(client), DestinationAddress: ip(vip)}
	f.TupleOrig.Proto = conntrack.ProtoTuple{Protocol: proto, SourcePort: 40000 + uint16(id), DestinationPort: vport}
	f.TupleReply.IP = conntrack.IPTuple{SourceAddress: ip(replyFrom), DestinationAddress: ip(client)}
	f.TupleReply.Proto = conntrack.ProtoTuple{Protocol: proto, SourcePort: rport, DestinationPort: 40000 + uint16(id)}
	return f
}

func TestClearUDPFlows(t *testing.T) {
	udp, tcp := uint8(unix.IPPROTO_UDP), uint8(unix.IPPROTO_TCP)
	dns := newSvcKey([4]byte{10, 96, 0, 10}, UDP, 53)
	keep := []epKey{newEpKey([4]byte{10, 88, 0, 1}, 53)}
	ct := &fakeFlows{flows: []conntrack.Flow{
		flow(1, udp, "10.88.0.9", "10.96.0.10", 53, "10.88.0.1", 53),  // to the kept endpoint
		flow(2, udp, "10.88.0.9", "10.96.0.10", 53, "10.88.0.2", 53),  // to a removed endpoint
		flow(3, udp, "10.88.0.9", "10.96.0.10", 53, "10.96.0.10", 53), // refused before: un-NATed
		flow(4, udp, "10.88.0.9", "10.96.0.10", 53, "10.88.0.1", 54),  // right address, wrong port
		flow(5, tcp, "10.88.0.9", "10.96.0.10", 53, "10.88.0.2", 53),  // TCP: not ours to clear
		flow(6, udp, "10.88.0.9", "10.96.0.11", 53, "10.88.0.2", 53),  // another port
	}}
	deleted, err := clearUDPFlows(context.Background(), ct, []udpFlush{{key: dns, keep: keep}})
	if err != nil {
		t.Fatal(err)
	}
	var left []uint32
	for _, f := range ct.flows {
		left = append(left, f.ID)
	}
	if diff := cmp.Diff([]uint32{1, 5, 6}, left); diff != "" || deleted != 3 {
		t.Errorf("deleted %d, left %v (-want +got):\n%s", deleted, left, diff)
	}
}

func TestClearUDPFlowsReportsFailuresButSkipsExpired(t *testing.T) {
	udp := uint8(unix.IPPROTO_UDP)
	ct := &fakeFlows{
		failOn:    ip("10.88.0.2"),
		vanishing: ip("10.88.0.3"),
		flows: []conntrack.Flow{
			flow(1, udp, "10.88.0.9", "10.96.0.10", 53, "10.88.0.2", 53),
			flow(2, udp, "10.88.0.9", "10.96.0.10", 53, "10.88.0.3", 53),
			flow(3, udp, "10.88.0.9", "10.96.0.10", 53, "10.88.0.4", 53),
		},
	}
	deleted, err := clearUDPFlows(context.Background(), ct, []udpFlush{{key: newSvcKey([4]byte{10, 96, 0, 10}, UDP, 53)}})
	if !errors.Is(err, unix.EIO) {
		t.Errorf("error = %v, want the EIO of the failed delete", err)
	}
	if deleted != 1 || len(ct.flows) != 2 {
		t.Errorf("deleted %d, %d flows left; want 1 deleted and the failed and expired ones left", deleted, len(ct.flows))
	}
}
