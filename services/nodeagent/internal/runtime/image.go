package runtime

import (
	"context"
	"fmt"
	"io"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
)

// ImportImage reads an OCI image layout tarball or a `docker save` tarball,
// stores every image in it under its name and unpacks it for this node's
// platform, so that containers start without unpacking. It returns the names
// of the imported images. Importing an image that exists replaces its name's
// target; containers already made from the old one keep their snapshots.
func (r *Runtime) ImportImage(ctx context.Context, tarball io.Reader) ([]string, error) {
	ctx = r.ns(ctx)
	imgs, err := r.client.Import(ctx, tarball,
		containerd.WithImportPlatform(platforms.Default()),
		containerd.WithAllPlatforms(false))
	if err != nil {
		return nil, fmt.Errorf("import image tarball: %w", err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import image tarball: it names no image (index.json needs an org.opencontainers.image.ref.name annotation): %w", errdefs.ErrInvalidArgument)
	}
	names := make([]string, 0, len(imgs))
	for _, img := range imgs {
		image := containerd.NewImageWithPlatform(r.client, img, platforms.Default())
		if err := image.Unpack(ctx, r.snapshotter); err != nil {
			return names, fmt.Errorf("unpack image %s into %s: %w", img.Name, r.snapshotter, err)
		}
		names = append(names, img.Name)
		r.log.Info("image imported", "image", img.Name, "digest", img.Target.Digest.String())
	}
	return names, nil
}

// HasImage reports whether the image is stored, by its exact name or by its
// normalised Docker name ("nginx" → "docker.io/library/nginx:latest").
func (r *Runtime) HasImage(ctx context.Context, name string) (bool, error) {
	_, err := r.findImage(r.ns(ctx), name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// unpack makes sure the image is unpacked into the runtime's snapshotter
// (images imported with other tools may not be).
func (r *Runtime) unpack(ctx context.Context, img containerd.Image) error {
	unpacked, err := img.IsUnpacked(ctx, r.snapshotter)
	if err != nil {
		return fmt.Errorf("check image %s is unpacked: %w", img.Name(), err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.snapshotter); err != nil {
			return fmt.Errorf("unpack image %s into %s: %w", img.Name(), r.snapshotter, err)
		}
	}
	return nil
}

func (r *Runtime) findImage(ctx context.Context, name string) (containerd.Image, error) {
	img, err := r.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		if named, perr := reference.ParseDockerRef(name); perr == nil && named.String() != name {
			img, err = r.client.GetImage(ctx, named.String())
		}
	}
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("image %s is not on this node (import it first): %w", name, err)
		}
		return nil, fmt.Errorf("look up image %s: %w", name, err)
	}
	return img, nil
}

// ImageLabel returns the value of an image's label ("" when it has none), by the image's exact
// or normalised name. errdefs.ErrNotFound when the image is not stored.
func (r *Runtime) ImageLabel(ctx context.Context, name, key string) (string, error) {
	img, err := r.findImage(r.ns(ctx), name)
	if err != nil {
		return "", err
	}
	return img.Labels()[key], nil
}

// SetImageLabel sets one label of a stored image.
func (r *Runtime) SetImageLabel(ctx context.Context, name, key, value string) error {
	ctx = r.ns(ctx)
	img, err := r.findImage(ctx, name)
	if err != nil {
		return err
	}
	meta := img.Metadata()
	meta.Labels = map[string]string{key: value}
	if _, err := r.client.ImageService().Update(ctx, meta, "labels."+key); err != nil {
		return fmt.Errorf("label image %s: %w", name, err)
	}
	return nil
}
