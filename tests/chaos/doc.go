// Package chaos injects faults into real Skiff clusters while a workload runs and checks,
// afterwards, from the log alone, that the cluster kept its promises (package checker).
//
// Each scenario is one test named for its fault, with its invariant in the test's comment and
// the time it took to recover in its output; docs/reliability.md has one row per scenario.
// `make test` runs each scenario in a short form; `make chaos` runs them at full length
// (SKIFF_CHAOS=full).
package chaos
