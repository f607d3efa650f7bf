package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// PullImage fetches ref ("nginx", "127.0.0.1:5000/app:v1", ...; normalised
// as Docker does) from its registry, stores it under its normalised name and
// unpacks it into the runtime's snapshotter, so that HasImage then finds it.
// Registries on loopback addresses (localhost, 127.0.0.1, ::1) are spoken to
// in plain HTTP, every other one in HTTPS. Only anonymous access is
// supported (with the token handshake Docker Hub wants).
//
// ctx bounds the whole pull; the caller chooses how long an image may take.
//
// Errors: errdefs.ErrInvalidArgument for a ref that is not an image name;
// errdefs.ErrNotFound when the registry answers that it has no such image;
// errdefs.ErrUnavailable when the registry cannot be reached (no such host,
// connection refused, timeout, or ctx ended); other errors unclassified.
func (r *Runtime) PullImage(ctx context.Context, ref string) error {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return fmt.Errorf("pull image %q: not an image name: %w: %w", ref, errdefs.ErrInvalidArgument, err)
	}
	name := named.String()
	registry := reference.Domain(named)
	start := time.Now()
	img, err := r.client.Pull(r.ns(ctx), name,
		containerd.WithResolver(Resolver()),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(r.snapshotter))
	if err != nil {
		return classifyPullError(ctx, name, registry, err)
	}
	r.log.Info("image pulled", "image", name, "digest", img.Target().Digest.String(),
		"registry", registry, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Resolver is the registry resolver PullImage uses: plain HTTP for loopback
// registries, HTTPS otherwise, anonymous token authorisation. Tests use it
// to push to a local registry.
func Resolver() remotes.Resolver {
	// No overall http.Client timeout: it would cut off large layers. The
	// caller's context bounds the pull; these bound each step that could
	// hang on an unresponsive host.
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithPlainHTTP(docker.MatchLocalhost),
			docker.WithClient(client),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthClient(client))),
		),
	})
}

// classifyPullError gives a failed pull one of the errdefs classes callers
// act on and a message that names the image and the registry.
func classifyPullError(ctx context.Context, name, registry string, err error) error {
	switch {
	case errdefs.IsNotFound(err):
		return fmt.Errorf("pull image %s: registry %s has no such image (check the name and tag): %w", name, registry, err)
	case ctx.Err() != nil:
		return fmt.Errorf("pull image %s: registry %s did not deliver it in time: %w: %w", name, registry, errdefs.ErrUnavailable, err)
	case unreachable(err):
		return fmt.Errorf("pull image %s: registry %s is unreachable: %w: %w", name, registry, errdefs.ErrUnavailable, err)
	}
	return fmt.Errorf("pull image %s from %s: %w", name, registry, err)
}

// unreachable reports whether err is a failure to reach a host at all, as
// opposed to an answer from it.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var urlErr *url.Error
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNRESET):
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	case errors.As(err, &urlErr) && urlErr.Timeout():
		return true
	}
	return false
}
