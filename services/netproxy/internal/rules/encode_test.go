package rules

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The userdata nft 1.0.6 writes for these declarations, read back from the kernel after
//
//	map service-ips { typeof ip daddr . meta l4proto . th dport : verdict; }
//	map endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport; }
//	set no-endpoints { typeof ip daddr . meta l4proto . th dport; }
//
// (values in little-endian host order, as on amd64 and arm64).
var nftUserdata = map[string]string{
	mapServiceIPs: "000400000000010400000000034400040d000000013c0014000407000000010c00040c00000001040c000000010e0004090000" +
		"0001060004100000000214000407000000010c00040b00000001040200000004080004010000000100060400000000",
	mapEndpoints: "000400000000010400000000036000040d00000001580014000407000000010c00040c00000001040c000000010e000409000000" +
		"01060004100000000214000407000000010c00040b000000010402000000031a0004170000000112000401000000010401000000" +
		"020400000000043400040d000000012c0014000407000000010c00040c00000001040c0000000114000407000000010c00040b00" +
		"0000010402000000060400000000",
	setNoEndpoints: "000400000000034400040d000000013c0014000407000000010c00040c00000001040c000000010e000409000000010600041000" +
		"00000214000407000000010c00040b000000010402000000",
}

func TestSetUserdataMatchesNft(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Fatal("the recorded nft userdata is little-endian; record it again on this big-endian host")
	}
	for _, s := range tableSets {
		t.Run(s.name, func(t *testing.T) {
			want := nftUserdata[s.name]
			if got := hex.EncodeToString(s.userdata); got != want {
				t.Errorf("userdata of %s:\n got %s\nwant %s", s.name, got, want)
			}
		})
	}
}

func TestSetKeyTypesMatchNft(t *testing.T) {
	// NFTA_SET_KEY_TYPE / DATA_TYPE values nft 1.0.6 gives the same declarations.
	want := map[string][2]uint32{
		mapServiceIPs:  {0x730d, unix.NFT_DATA_VERDICT},
		mapEndpoints:   {0x1cc344, 0x1cd},
		setNoEndpoints: {0x730d, 0},
	}
	for _, s := range tableSets {
		if got := [2]uint32{s.keyType, s.dataType}; got != want[s.name] {
			t.Errorf("%s: key/data type = %#x, want %#x", s.name, got, want[s.name])
		}
	}
}

// attrs iterates over netlink attributes.
func attrs(b []byte) map[uint16][][]byte {
	out := map[uint16][][]byte{}
	for len(b) >= unix.NLA_HDRLEN {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED
		out[typ] = append(out[typ], b[unix.NLA_HDRLEN:l])
		next := (l + 3) &^ 3
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return out
}

type parsedMsg struct {
	typ      uint16
	flags    uint16
	seq      uint32
	set      string
	elements int
	elemSize int
}

func parseBatch(t *testing.T, buf []byte) []parsedMsg {
	t.Helper()
	var out []parsedMsg
	for len(buf) > 0 {
		m, rest, ok := nextMessage(buf)
		if !ok {
			t.Fatalf("truncated message in batch")
		}
		buf = rest
		pm := parsedMsg{typ: m.typ, flags: m.flags, seq: m.seq}
		if m.typ>>8 == unix.NFNL_SUBSYS_NFTABLES && len(m.data) > 4 {
			a := attrs(m.data[4:])
			if int(m.typ&0xff) == unix.NFT_MSG_NEWSETELEM || int(m.typ&0xff) == unix.NFT_MSG_DELSETELEM {
				pm.set = strings.TrimRight(string(a[unix.NFTA_SET_ELEM_LIST_SET][0]), "\x00")
				list := a[unix.NFTA_SET_ELEM_LIST_ELEMENTS][0]
				pm.elemSize = len(list)
				pm.elements = len(attrs(list)[unix.NFTA_LIST_ELEM])
			}
		}
		out = append(out, pm)
	}
	return out
}

func TestEncodeSplitsElementMessages(t *testing.T) {
	for _, max := range []int{1000, 7} {
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			var k kernelState
			p, err := k.plan(manyServices(2500, 2), true)
			if err != nil {
				t.Fatal(err)
			}
			b, err := encodePlan(100, "skiff", p, max)
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{}
			for _, m := range parseBatch(t, b.buf) {
				if m.set == "" {
					continue
				}
				if m.elements > max {
					t.Errorf("message %d adds %d elements to %s, more than %d", m.seq, m.elements, m.set, max)
				}
				if m.elemSize > 0xffff {
					t.Errorf("message %d: element list of %d bytes overflows a netlink attribute", m.seq, m.elemSize)
				}
				counts[m.set] += m.elements
			}
			want := map[string]int{mapServiceIPs: 2500, mapEndpoints: 5000}
			if diff := cmp.Diff(want, counts); diff != "" {
				t.Errorf("elements per set (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeBatchFraming(t *testing.T) {
	var k kernelState
	p, err := k.plan([]ServicePort{
		svc("web", "10.96.0.1", TCP, 80, ep("10.88.0.1", 80)),
		svc("none", "10.96.0.2", UDP, 53),
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := encodePlan(41, "skiff", p, 1000)
	if err != nil {
		t.Fatal(err)
	}
	msgs := parseBatch(t, b.buf)
	if first := msgs[0]; first.typ != unix.NFNL_MSG_BATCH_BEGIN || first.seq != 41 || b.begin != 41 {
		t.Errorf("first message = %+v, want NFNL_MSG_BATCH_BEGIN with seq 41", first)
	}
	if last := msgs[len(msgs)-1]; last.typ != unix.NFNL_MSG_BATCH_END {
		t.Errorf("last message = %+v, want NFNL_MSG_BATCH_END", last)
	}
	acked := map[uint32]bool{}
	for _, m := range b.msgs {
		acked[m.seq] = true
	}
	var names []string
	for i, m := range msgs {
		if m.seq != 41+uint32(i) {
			t.Errorf("message %d has seq %d, want %d", i, m.seq, 41+i)
		}
		inner := i > 0 && i < len(msgs)-1
		if inner != acked[m.seq] || inner != (m.flags&unix.NLM_F_ACK != 0) {
			t.Errorf("message %d (type %#x): acknowledged=%v, NLM_F_ACK=%v; want both %v",
				i, m.typ, acked[m.seq], m.flags&unix.NLM_F_ACK != 0, inner)
		}
		if inner {
			names = append(names, nftMsgName(m.typ))
		}
	}
	want := []string{
		"NEWTABLE", "DELTABLE", "NEWTABLE",
		"NEWSET", "NEWSET", "NEWSET",
		"NEWCHAIN", "NEWRULE", "NEWCHAIN", "NEWRULE", "NEWCHAIN", "NEWRULE", "NEWCHAIN", "NEWRULE", "NEWCHAIN", "NEWRULE",
		"NEWCHAIN", "NEWRULE", // lb-1
		"NEWSETELEM", "NEWSETELEM", "NEWSETELEM", // endpoints, no-endpoints, service-ips
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("message types (-want +got):\n%s", diff)
	}
	if b.nextSeq != 41+uint32(len(msgs)) {
		t.Errorf("nextSeq = %d, want %d", b.nextSeq, 41+len(msgs))
	}
}

func nftMsgName(typ uint16) string {
	switch int(typ & 0xff) {
	case unix.NFT_MSG_NEWTABLE:
		return "NEWTABLE"
	case unix.NFT_MSG_DELTABLE:
		return "DELTABLE"
	case unix.NFT_MSG_NEWSET:
		return "NEWSET"
	case unix.NFT_MSG_NEWCHAIN:
		return "NEWCHAIN"
	case unix.NFT_MSG_NEWRULE:
		return "NEWRULE"
	case unix.NFT_MSG_NEWSETELEM:
		return "NEWSETELEM"
	case unix.NFT_MSG_DELSETELEM:
		return "DELSETELEM"
	}
	return fmt.Sprintf("%#x", typ)
}
