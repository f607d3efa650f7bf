module skiff.dev/cmd/skiff

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/nats-io/nats-server/v2 v2.15.2
	github.com/nats-io/nats.go v1.55.0
	github.com/spf13/cobra v1.10.2
	sigs.k8s.io/yaml v1.6.0
	skiff.dev/events v0.0.0
)

require github.com/pmezard/go-difflib v1.0.0 // indirect

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	skiff.dev/services/netproxy v0.0.0
	skiff.dev/services/nodeagent v0.0.0
	skiff.dev/services/scheduler v0.0.0
)

replace skiff.dev/events => ../../events

replace skiff.dev/services/scheduler => ../../services/scheduler

replace skiff.dev/services/nodeagent => ../../services/nodeagent

replace skiff.dev/services/netproxy => ../../services/netproxy
