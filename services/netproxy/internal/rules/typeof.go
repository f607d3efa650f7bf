package rules

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Set userdata: the typeof metadata nft keeps with a set so it can print the keys and values as
// the expressions they came from ("typeof ip daddr . meta l4proto . th dport . numgen random mod
// 1"). The kernel stores it without looking at it. Without it nft 1.0.6 has no way to print the
// numgen slot (an "integer" has no size) and refuses to list the table.
//
// The format is libnftnl's udata TLVs: one byte type, one byte length, then the value; integers
// are 32-bit host order; nests are TLVs whose value is more TLVs. The numbers below are nft's own
// (libnftnl include/libnftnl/udata.h and nftables' expression/payload/meta/numgen udata), and the
// bytes they make are checked in TestSetUserdataMatchesNft against what nft 1.0.6 writes for the
// same typeof declarations. nft must keep reading udata written by older versions, so these
// values do not move.
const (
	udataSetKeyByteorder  = 0 // NFTNL_UDATA_SET_KEYBYTEORDER
	udataSetDataByteorder = 1 // NFTNL_UDATA_SET_DATABYTEORDER
	udataSetKeyTypeof     = 3 // NFTNL_UDATA_SET_KEY_TYPEOF
	udataSetDataTypeof    = 4 // NFTNL_UDATA_SET_DATA_TYPEOF
	udataSetDataInterval  = 6 // NFTNL_UDATA_SET_DATA_INTERVAL

	udataTypeofExpr = 0 // NFTNL_UDATA_SET_TYPEOF_EXPR: which kind of expression
	udataTypeofData = 1 // NFTNL_UDATA_SET_TYPEOF_DATA: that expression's own udata

	// A concatenation holds one nest per field, numbered from 0, each with the field's kind and
	// data under these types.
	udataConcatSubType = 0
	udataConcatSubData = 1

	byteorderInvalid = 0 // what nft records for a concatenation

	// nftables' enum expr_types.
	exprVerdict = 1
	exprPayload = 7
	exprMeta    = 9
	exprConcat  = 13
	exprNumgen  = 23

	// Payload udata: protocol description and the template (field) within it.
	udataPayloadDesc = 0
	udataPayloadType = 1
	protoDescTH      = 11 // "th": any transport header
	protoDescIP      = 12
	thTemplateDport  = 2
	ipTemplateDaddr  = 12

	udataMetaKey = 0

	udataNumgenType   = 0
	udataNumgenMod    = 1
	udataNumgenOffset = 2
)

type udata []byte

func (u udata) u32(typ byte, v uint32) udata {
	u = append(u, typ, 4)
	return binary.NativeEndian.AppendUint32(u, v)
}

func (u udata) nest(typ byte, inner udata) udata {
	u = append(u, typ, byte(len(inner)))
	return append(u, inner...)
}

// typeofExpr is one expression of a typeof declaration.
type typeofExpr struct {
	kind uint32
	data udata
}

func (u udata) typeof(typ byte, e typeofExpr) udata {
	return u.nest(typ, udata(nil).u32(udataTypeofExpr, e.kind).nest(udataTypeofData, e.data))
}

func concatTypeof(fields ...typeofExpr) typeofExpr {
	var data udata
	for i, f := range fields {
		data = data.nest(byte(i), udata(nil).u32(udataConcatSubType, f.kind).nest(udataConcatSubData, f.data))
	}
	return typeofExpr{kind: exprConcat, data: data}
}

var (
	typeofIPDaddr  = typeofExpr{exprPayload, udata(nil).u32(udataPayloadDesc, protoDescIP).u32(udataPayloadType, ipTemplateDaddr)}
	typeofL4Proto  = typeofExpr{exprMeta, udata(nil).u32(udataMetaKey, unix.NFT_META_L4PROTO)}
	typeofThDport  = typeofExpr{exprPayload, udata(nil).u32(udataPayloadDesc, protoDescTH).u32(udataPayloadType, thTemplateDport)}
	typeofNumgen   = typeofExpr{exprNumgen, udata(nil).u32(udataNumgenType, unix.NFT_NG_RANDOM).u32(udataNumgenMod, 1).u32(udataNumgenOffset, 0)}
	typeofVerdict  = typeofExpr{kind: exprVerdict}
	typeofSvcKey   = concatTypeof(typeofIPDaddr, typeofL4Proto, typeofThDport)
	typeofSlotKey  = concatTypeof(typeofIPDaddr, typeofL4Proto, typeofThDport, typeofNumgen)
	typeofEndpoint = concatTypeof(typeofIPDaddr, typeofThDport)
)

// typeof ip daddr . meta l4proto . th dport : verdict
func serviceIPsUserdata() []byte {
	return udata(nil).
		u32(udataSetKeyByteorder, byteorderInvalid).
		u32(udataSetDataByteorder, byteorderInvalid).
		typeof(udataSetKeyTypeof, typeofSvcKey).
		typeof(udataSetDataTypeof, typeofVerdict).
		u32(udataSetDataInterval, 0)
}

// typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
func endpointsUserdata() []byte {
	return udata(nil).
		u32(udataSetKeyByteorder, byteorderInvalid).
		u32(udataSetDataByteorder, byteorderInvalid).
		typeof(udataSetKeyTypeof, typeofSlotKey).
		typeof(udataSetDataTypeof, typeofEndpoint).
		u32(udataSetDataInterval, 0)
}

// typeof ip daddr . meta l4proto . th dport
func noEndpointsUserdata() []byte {
	return udata(nil).
		u32(udataSetKeyByteorder, byteorderInvalid).
		typeof(udataSetKeyTypeof, typeofSvcKey)
}
