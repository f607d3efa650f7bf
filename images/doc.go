// Package images holds the container images Skiff builds for itself and the
// tool that packs them, without docker and without a registry.
//
//   - echo: the demo image skiff.dev/echo:v1, an HTTP server on :8080 that
//     answers every request with its pod name ($HOSTNAME) and the path.
//   - testbox: skiff.dev/testbox:v1, a tiny program with the behaviours the
//     runtime tests need (exit with a code, trap or ignore SIGTERM, allocate
//     memory, print its arguments and environment).
//   - build: compiles those programs as static binaries and writes one OCI
//     image layout tarball per image (see package ocilayout).
//
// Build them with
//
//	cd images && GOWORK=off go run ./build -out ../bin/images
//
// which writes bin/images/echo.tar and bin/images/testbox.tar. Import one with
// `skiff image import bin/images/echo.tar` or `ctr -n skiff images import`.
// The output is byte-for-byte reproducible for a given Go toolchain and
// architecture: binaries are built with -trimpath and an empty build id, and
// every tar entry and gzip header carries a fixed time.
//
// This module depends on the standard library only, so GOWORK=off builds it
// offline from anywhere in the repository.
package images
