// Package e2e holds Skiff's end-to-end tests: each starts a whole cluster of real processes
// (package skiff.dev/tests/cluster) and checks one behaviour a user would see, through the CLI,
// the event log, containerd (ctr) and real traffic between network namespaces. It also holds the
// pod start-up benchmark (docs/bench/e2e.md).
//
//	cd tests && go test ./e2e                 # as root; about 90 s once built
//	go test ./e2e -run '^$' -bench PodStartup -benchtime 1x -count 5
//
// SKIFF_BIN=bin uses the binaries of `make build` instead of building them;
// SKIFF_E2E_LOG_LEVEL=debug makes every process log at debug level.
//
// # Ordering and concurrency
//
// Tests run one after the other, each with its own cluster, torn down when it ends (even when it
// fails); nothing carries over from one test to the next. They are not marked parallel: timing
// assertions (grace periods, take-over within 15 s) and the benchmark want the machine's two CPUs.
// Tests that need root skip without it.
package e2e
