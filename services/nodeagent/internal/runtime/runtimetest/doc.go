// Package runtimetest runs the real things the runtime package's tests
// need: a private containerd daemon per test ([StartContainerd]) and the
// project's test images ([Images]).
//
// A private containerd has its own root, state, socket and cgroup parent in
// a fresh temporary directory, so tests never touch the node's containerd
// and can run side by side. Cleanup is registered with t.Cleanup and runs
// even when the test fails: it removes every task and container, stops the
// daemon by its PID, kills any shim (and its container's init) that still
// serves this daemon's socket, unmounts whatever is left under the
// directory, removes the test's cgroups, and deletes the directory. A test
// process that is killed cannot clean up; the next StartContainerd finds
// its directory (its owner process is gone) and does it then.
//
// Everything here needs root; the helpers fail the test otherwise (never skip: a skip would hide a broken suite).
package runtimetest
