package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"skiff.dev/cmd/skiff/internal/printer"
	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/images"
	"skiff.dev/events/table"
)

func init() { register(newImageCmd) }

func newImageCmd(a *app) *cobra.Command {
	imp := &cobra.Command{
		Use:   "import FILE.tar [FILE.tar...]",
		Short: "Put image tarballs into the cluster's image store",
		Long: "import puts OCI image layout or `docker save` tarballs into the cluster's image store, under\n" +
			"every image name each holds. A node that lacks an image a pod needs fetches it from there, so a\n" +
			"cluster runs images without a registry. Every file is checked before any is imported.",
		Example: "  skiff image import bin/images/echo.tar\n  docker save -o app.tar app:v2 && skiff image import app.tar",
		Args:    argsRange(1, math.MaxInt, "FILE.tar [FILE.tar...]"),
		RunE:    func(cmd *cobra.Command, args []string) error { return a.imageImport(cmd.Context(), args) },
	}
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images in the cluster's image store",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return a.imageList(cmd.Context()) },
	}
	return group("image", "Import and list the images of the cluster's image store", imp, ls)
}

func (a *app) imageImport(ctx context.Context, files []string) error {
	// Check every file first, so that a bad third file does not leave the first two imported.
	sizes := make([]int64, len(files))
	for i, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			return errorf(events.ErrInvalidArgument, "%s: %v", f, errors.Unwrap(err))
		}
		if info.IsDir() {
			return errorf(events.ErrInvalidArgument, "%s is a directory, not an image tarball", f)
		}
		if _, err := images.NamesInTarball(f); err != nil {
			return err
		}
		sizes[i] = info.Size()
	}
	obs, err := a.imageStore(ctx, true)
	if err != nil {
		return err
	}
	for i, f := range files {
		names, err := images.Put(ctx, obs, f)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errorf(events.ErrUnavailable, "import %s: %v", f, err)
		}
		for _, n := range names {
			fmt.Fprintf(a.Stdout, "image %s imported (%s)\n", n, humanSize(sizes[i]))
		}
	}
	return nil
}

func (a *app) imageList(ctx context.Context) error {
	obs, err := a.imageStore(ctx, false)
	if err != nil {
		return err
	}
	var infos []*jetstream.ObjectInfo
	if obs != nil {
		lctx, cancel := context.WithTimeout(ctx, a.timeout)
		infos, err = obs.List(lctx)
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
			return errorf(events.ErrUnavailable, "list the image store %s: %v", api.ImageBucket, err)
		}
	}
	if len(infos) == 0 {
		fmt.Fprintln(a.Stderr, "No images found: import some with skiff image import FILE.tar")
		return nil
	}
	slices.SortFunc(infos, func(x, y *jetstream.ObjectInfo) int { return strings.Compare(x.Name, y.Name) })
	header := []string{"NAME", "SIZE", "MODIFIED"}
	rows := make([][]string, 0, len(infos))
	now := a.Now()
	for _, info := range infos {
		rows = append(rows, []string{info.Name, humanSize(int64(info.Size)), table.Age(now.Sub(info.ModTime)) + " ago"})
	}
	return printer.NewTable(header, rows).Write(a.Stdout, header, rows)
}

// imageStore opens the cluster's image store. Without create, a missing store is nil: listing
// must not create anything.
func (a *app) imageStore(ctx context.Context, create bool) (jetstream.ObjectStore, error) {
	nc, err := a.conn()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var obs jetstream.ObjectStore
	if create {
		obs, err = images.OpenBucket(ctx, js)
		if errors.Is(err, events.ErrNotFound) {
			return nil, err
		}
	} else {
		obs, err = js.ObjectStore(ctx, api.ImageBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil
		}
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, errorf(events.ErrUnavailable, "the cluster at %s has no image store it can reach (JetStream): %v", a.server(), err)
		}
		return nil, errorf(events.ErrUnavailable, "open the image store %s: %v", api.ImageBucket, err)
	}
	return obs, nil
}

// humanSize formats a byte count with one decimal in binary units, as ls -h does: "2.4 MB".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		if f < unit || u == "TB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}
