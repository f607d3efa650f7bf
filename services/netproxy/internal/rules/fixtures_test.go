package rules

import (
	"fmt"
	"net/netip"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ep(s string, port uint16) Endpoint { return Endpoint{IP: ip(s), Port: port} }

func svc(name, vip string, proto Protocol, port uint16, eps ...Endpoint) ServicePort {
	return ServicePort{Namespace: "default", Name: name, VIP: ip(vip), Protocol: proto, Port: port, Endpoints: eps}
}

// manyServices returns n TCP Service ports with perService endpoints each, all distinct.
func manyServices(n, perService int) []ServicePort {
	out := make([]ServicePort, n)
	for i := range out {
		eps := make([]Endpoint, perService)
		for j := range eps {
			k := i*perService + j
			eps[j] = Endpoint{IP: netip.AddrFrom4([4]byte{10, 88, byte(k >> 8), byte(k)}), Port: 8080}
		}
		out[i] = ServicePort{
			Namespace: "bench", Name: fmt.Sprintf("svc-%d", i),
			VIP: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), Protocol: TCP, Port: uint16(80 + i>>16),
			Endpoints: eps,
		}
	}
	return out
}
