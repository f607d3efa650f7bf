// Package images keeps container images in a JetStream object store, so a cluster without a
// registry still gets its images onto every node: `skiff image import` puts a tarball there
// under each image name it holds, and an agent that lacks an image fetches it from there.
package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// Normalize returns the full reference of an image name as containerd stores it and Docker
// and Kubernetes resolve it (Parse): "nginx" and "docker.io/nginx" → "docker.io/library/nginx:latest",
// "skiff.dev/echo:v1" stays. A name Parse refuses is returned as it is: admission refuses it
// before it gets here.
func Normalize(ref string) string {
	n, err := Parse(ref)
	if err != nil {
		return ref
	}
	return n
}

// Parse normalises an image reference exactly as github.com/distribution/reference does (what
// Docker, containerd's CRI plugin and the kubelet use): the default registry docker.io and its
// library/ namespace for official images, and the tag latest when neither a tag nor a digest
// is given. An invalid reference (upper case in the repository, an empty name, a malformed
// digest) is an error that says why.
func Parse(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// DefaultPullPolicy is Kubernetes' default imagePullPolicy for an image: Always when it names no
// tag and no digest, or the tag latest; IfNotPresent otherwise.
func DefaultPullPolicy(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return events.PullIfNotPresent
	}
	if tagged, ok := named.(reference.Tagged); ok {
		if tagged.Tag() == "latest" {
			return events.PullAlways
		}
		return events.PullIfNotPresent
	}
	if _, ok := named.(reference.Digested); ok {
		return events.PullIfNotPresent
	}
	return events.PullAlways
}

// NamesInTarball returns the image names an OCI-layout or `docker save` tarball holds.
func NamesInTarball(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image tarball: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s is not a tar archive: %v: %w", path, err, events.ErrInvalidArgument)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "index.json":
			var idx struct {
				Manifests []struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"manifests"`
			}
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				return nil, fmt.Errorf("%s: index.json: %v: %w", path, err, events.ErrInvalidArgument)
			}
			for _, m := range idx.Manifests {
				if n := m.Annotations["io.containerd.image.name"]; n != "" {
					names = append(names, n)
				} else if n := m.Annotations["org.opencontainers.image.ref.name"]; n != "" && strings.ContainsAny(n, "/:") {
					names = append(names, n)
				}
			}
		case "manifest.json":
			var ms []struct {
				RepoTags []string `json:"RepoTags"`
			}
			if err := json.NewDecoder(tr).Decode(&ms); err != nil {
				return nil, fmt.Errorf("%s: manifest.json: %v: %w", path, err, events.ErrInvalidArgument)
			}
			for _, m := range ms {
				names = append(names, m.RepoTags...)
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s names no image: an OCI layout needs an org.opencontainers.image.ref.name annotation with a full name, a docker save tarball RepoTags: %w", path, events.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		n = Normalize(n)
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// OpenBucket opens the image object store; it never creates it (the bootstrap step does).
//
// Errors: events.ErrNotFound when it does not exist; events.ErrUnavailable when JetStream does
// not answer.
func OpenBucket(ctx context.Context, js jetstream.JetStream) (jetstream.ObjectStore, error) {
	obs, err := js.ObjectStore(ctx, api.ImageBucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, api.Missing("object store " + api.ImageBucket)
	case err != nil:
		return nil, fmt.Errorf("open object store %s: %w", api.ImageBucket, errors.Join(err, events.ErrUnavailable))
	}
	return obs, nil
}

// Put stores the tarball at path under every image name it holds and returns the names.
func Put(ctx context.Context, obs jetstream.ObjectStore, path string) ([]string, error) {
	names, err := NamesInTarball(path)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open image tarball: %w", err)
		}
		_, err = obs.Put(ctx, jetstream.ObjectMeta{Name: n, Description: "image tarball"}, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("store image %s: %w", n, err)
		}
	}
	return names, nil
}

// Get opens the tarball holding image ref. Errors: events.ErrNotFound when no tarball holds it.
func Get(ctx context.Context, obs jetstream.ObjectStore, ref string) (io.ReadCloser, error) {
	r, err := obs.Get(ctx, Normalize(ref))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("image %s was never imported (skiff image import FILE.tar): %w", ref, events.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch image %s: %w", ref, err)
	}
	return r, nil
}

// Digest is the digest of the tarball holding image ref (the object store's SHA-256 of it): what
// a node compares with the tarball it imported last, to re-import only a changed image.
// Errors: events.ErrNotFound when no tarball holds it.
func Digest(ctx context.Context, obs jetstream.ObjectStore, ref string) (string, error) {
	info, err := obs.GetInfo(ctx, Normalize(ref))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return "", fmt.Errorf("image %s was never imported (skiff image import FILE.tar): %w", ref, events.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("look up image %s: %w", ref, err)
	}
	return info.Digest, nil
}
