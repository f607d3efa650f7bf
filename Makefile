# Skiff: `make demo` sets up this machine and runs a demo cluster; `make test` runs every test.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
MODULES := events services/scheduler services/nodeagent services/netproxy cmd/skiff images tests
BIN := bin
DATA ?= .data
TEST_FLAGS ?= -count=1 -timeout 25m

.PHONY: all deps build images test test-short bench bench-apply fuzz chaos demo down purge clean vet jaeger

all: build

deps:
	@scripts/setup.sh

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/skiff ./cmd/skiff
	CGO_ENABLED=0 $(GO) build -o $(BIN)/skiff-scheduler ./services/scheduler/cmd/skiff-scheduler
	@# The stock server, the very version events/go.mod pins (the one skiff up embeds), for
	@# multi-machine setups and tests/cmd/applybench -topology split.
	cd events && CGO_ENABLED=0 $(GO) build -o ../$(BIN)/nats-server github.com/nats-io/nats-server/v2
	@if [ -d services/nodeagent/cmd/skiff-nodeagent ]; then CGO_ENABLED=0 $(GO) build -o $(BIN)/skiff-nodeagent ./services/nodeagent/cmd/skiff-nodeagent; fi
	@if [ -d services/netproxy/cmd/skiff-netproxy ]; then CGO_ENABLED=0 $(GO) build -o $(BIN)/skiff-netproxy ./services/netproxy/cmd/skiff-netproxy; fi
	cd images && GOWORK=off CGO_ENABLED=0 $(GO) run ./build -out ../$(BIN)/images
	@echo "built: $$(ls $(BIN) | tr '\n' ' ')"

# Jaeger all-in-one, built from its Go module (tools/go.mod, a module of its own outside go.work:
# its dependencies must not move the services' versions). About 6 minutes on 2 cores the first
# time, 120 MB. `skiff up --jaeger` runs it; `make demo JAEGER=1` builds and uses it.
jaeger: $(BIN)/jaeger
$(BIN)/jaeger: tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	cd tools && GOWORK=off CGO_ENABLED=0 $(GO) build -o ../$(BIN)/jaeger github.com/jaegertracing/jaeger/cmd/jaeger

vet:
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

# Every test of every module, against real JetStream, containerd, CNI and nftables (root needed
# for the last three; they run inside network namespaces the tests create).
# The unit packages (pure logic, real embedded NATS) run a second time under the race detector.
RACE_PKGS := events:./... services/scheduler:./... cmd/skiff:. services/netproxy:./internal/proxier/... services/nodeagent:./internal/agent/...
test: deps build
	@set -o pipefail; fail=0; for m in $(MODULES); do \
	  echo "=== $$m"; (cd $$m && $(GO) test $(TEST_FLAGS) ./...) || fail=1; \
	done; \
	for mp in $(RACE_PKGS); do m=$${mp%%:*}; p=$${mp#*:}; \
	  echo "=== $$m $$p (-race)"; (cd $$m && $(GO) test -race $(TEST_FLAGS) $$p) || fail=1; \
	done; exit $$fail

# Each fuzz test for FUZZTIME (the seeds also run in every `make test`).
FUZZTIME ?= 30s
fuzz:
	cd events && $(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) .
	cd events && $(GO) test -run '^$$' -fuzz '^FuzzParseQuantity$$' -fuzztime $(FUZZTIME) .
	cd cmd/skiff && $(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/manifest
	cd services/netproxy && $(GO) test -run '^$$' -fuzz '^FuzzPlan$$' -fuzztime $(FUZZTIME) ./internal/rules

# The fault scenarios of tests/chaos at full length (20 leader kills, 1,000 Services, 200
# concurrent clients, ...); `make test` runs each in its short form. docs/reliability.md.
chaos: deps build
	set -o pipefail; cd tests && SKIFF_CHAOS=full $(GO) test -count=1 -timeout 60m -p 1 -v ./chaos 2>&1 | tee ../chaos.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|RECOVERY|checker:'

bench: build
	cd events/state && $(GO) test -run '^$$' -bench Replay -benchtime 1x -count 5

# Issue 9: `skiff apply` of one Deployment of 30,000 replicas onto 1,000 simulated nodes until
# the last PodBound, with skiff up and the node agent as real processes; 3 runs and medians.
# Other sizes: make bench-apply APPLYBENCH_FLAGS='-nodes 100 -replicas 3000 -runs 1'
# The scheduler's own peak RSS, with nats-server and skiff-scheduler as separate processes:
# make bench-apply APPLYBENCH_FLAGS='-topology split'
APPLYBENCH_FLAGS ?=
bench-apply: build
	cd tests && $(GO) run ./cmd/applybench -bin ../$(BIN) $(APPLYBENCH_FLAGS)

# JAEGER=1: also run Jaeger and send every part's traces there (http://localhost:16686).
# METRICS_ADDR=127.0.0.1:9090: serve every part's Prometheus metrics there.
JAEGER ?=
METRICS_ADDR ?=
demo: deps build $(if $(JAEGER),jaeger)
	@JAEGER=$(JAEGER) METRICS_ADDR=$(METRICS_ADDR) scripts/demo.sh

down:
	@scripts/demo.sh down

# Stops the demo and removes everything it made on this machine (pods, bridge, tables, data).
purge:
	@scripts/demo.sh purge

clean:
	rm -rf $(BIN)
