package runtime

import (
	"context"
	"fmt"
	"sync"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// image is what creating a container needs to know of its image: its name, its config and
// the snapshot its root filesystem starts from.
type image struct {
	name    string
	target  digest.Digest // of the manifest (or index) the name pointed at
	config  ocispec.ImageConfig
	chainID string // the unpacked top layer's snapshot, the container snapshot's parent
}

// imageCache keeps what imageFacts found per image name and target. Every pod of a
// Deployment uses the same image: reading its manifest and config and checking its layers
// are unpacked took a dozen calls into containerd for each container, and an image's
// content never changes under one target digest.
type imageCache struct {
	mu     sync.Mutex
	byName map[string]image
}

// imageFacts looks the image up (one call) and, when its name points at a target seen
// before, answers from the cache; otherwise it makes sure the image is unpacked into the
// runtime's snapshotter and reads its config. Errors: errdefs.ErrNotFound when the image is
// not on the node.
func (r *Runtime) imageFacts(ctx context.Context, name string) (image, error) {
	img, err := r.findImage(ctx, name)
	if err != nil {
		return image{}, err
	}
	target := img.Target().Digest
	r.images.mu.Lock()
	cached, ok := r.images.byName[img.Name()]
	r.images.mu.Unlock()
	if ok && cached.target == target {
		return cached, nil
	}
	if err := r.unpack(ctx, img); err != nil {
		return image{}, err
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return image{}, fmt.Errorf("read config of image %s: %w", name, err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return image{}, fmt.Errorf("read layers of image %s: %w", name, err)
	}
	facts := image{name: img.Name(), target: target, config: spec.Config, chainID: identity.ChainID(diffIDs).String()}
	r.images.mu.Lock()
	if r.images.byName == nil {
		r.images.byName = map[string]image{}
	}
	r.images.byName[facts.name] = facts
	r.images.mu.Unlock()
	return facts, nil
}

// forgetImage drops what the cache knows of the image, so that the next container of it
// checks again that it is unpacked.
func (r *Runtime) forgetImage(name string) {
	r.images.mu.Lock()
	delete(r.images.byName, name)
	r.images.mu.Unlock()
}

// withNewSnapshot prepares the container's root filesystem snapshot, id, on the image's
// unpacked layers, as containerd.WithNewSnapshot does but without reading the image again.
// A snapshot id left by a crash between preparing it and creating the container belongs to
// nobody and is replaced; one whose container exists means the container does
// (errdefs.ErrAlreadyExists).
func (r *Runtime) withNewSnapshot(id string, img image) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		snapshots := client.SnapshotService(r.snapshotter)
		_, err := snapshots.Prepare(ctx, id, img.chainID)
		if errdefs.IsAlreadyExists(err) {
			if _, lerr := client.LoadContainer(ctx, id); lerr == nil {
				return fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
			} else if !errdefs.IsNotFound(lerr) {
				return lerr
			}
			if rerr := snapshots.Remove(ctx, id); rerr != nil && !errdefs.IsNotFound(rerr) {
				return fmt.Errorf("remove orphaned snapshot %s: %w", id, rerr)
			}
			r.log.Warn("removed orphaned container snapshot", "id", id)
			_, err = snapshots.Prepare(ctx, id, img.chainID)
		}
		if err != nil {
			return fmt.Errorf("prepare snapshot of image %s: %w", img.name, err)
		}
		c.SnapshotKey = id
		c.Image = img.name
		return nil
	}
}
