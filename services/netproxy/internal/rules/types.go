package rules

import (
	"fmt"
	"log/slog"
	"net/netip"
)

// Protocol is the transport protocol of a Service port, numbered as in the IP header so the value
// can be written straight into an nftables key.
type Protocol uint8

// The protocols a Service port can use.
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

// Endpoint is one ready backend of a Service port: a pod address and the target port on it.
type Endpoint struct {
	IP   netip.Addr
	Port uint16
}

func (e Endpoint) String() string { return netip.AddrPortFrom(e.IP, e.Port).String() }

// ServicePort is one port of one Service with the endpoints behind it. The triple (VIP, Protocol,
// Port) identifies it; Namespace, Name and PortName are only used in logs and errors.
type ServicePort struct {
	Namespace, Name, PortName string

	VIP      netip.Addr
	Protocol Protocol
	Port     uint16

	// Endpoints may come in any order and may repeat; the rules use them sorted and without
	// duplicates, so the same set of endpoints always gives the same slots. An empty list makes
	// the port reject new connections with ICMP port-unreachable.
	Endpoints []Endpoint
}

func (sp ServicePort) String() string {
	name := sp.Namespace + "/" + sp.Name
	if sp.PortName != "" {
		name += ":" + sp.PortName
	}
	return fmt.Sprintf("%s (%s %s)", name, sp.Protocol, netip.AddrPortFrom(sp.VIP, sp.Port))
}

// Config configures a Syncer. The zero value works.
type Config struct {
	// Table is the name of the nftables table (family ip) the Syncer owns. Default "skiff".
	Table string

	// Logger receives one line per sync. Default: discard.
	Logger *slog.Logger

	// MaxElementsPerMessage caps the set elements in one netlink message of a transaction.
	// Default 1000, which keeps a message of the largest elements (about 56 bytes each) under the
	// 64 KiB limit of a netlink attribute. Tests lower it to exercise the splitting.
	MaxElementsPerMessage int

	// Metrics records every sync; default instruments registered nowhere.
	Metrics *Metrics
}

// DefaultTable is the table name used when Config.Table is empty.
const DefaultTable = "skiff"

// MasqueradeMark is the packet mark bit that the lb-N chains set on the first packet of every
// connection they DNAT, and that nat-postrouting masquerades and clears. Other software on the
// node must not use this bit (it is the one kube-proxy uses for the same purpose).
const MasqueradeMark uint32 = 0x4000

const defaultMaxElementsPerMessage = 1000

func (c Config) withDefaults() Config {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxElementsPerMessage <= 0 {
		c.MaxElementsPerMessage = defaultMaxElementsPerMessage
	}
	if c.Metrics == nil {
		c.Metrics, _ = NewMetrics(nil)
	}
	return c
}
