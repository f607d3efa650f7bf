module skiff.dev/services/netproxy

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/google/nftables v0.3.0
	github.com/mdlayher/netlink v1.7.3-0.20250113171957-fbb4dce95f42
	github.com/ti-mo/conntrack v0.6.0
	golang.org/x/sys v0.50.0
	skiff.dev/events v0.0.0
)

require (
	github.com/goccy/go-json v0.12.0 // indirect
	github.com/mdlayher/socket v0.5.1 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/ti-mo/netfilter v0.5.3 // indirect
	golang.org/x/net v0.39.0 // indirect
	golang.org/x/sync v0.14.0 // indirect
)

replace skiff.dev/events => ../../events
