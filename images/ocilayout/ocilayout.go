// Package ocilayout writes container images as OCI image layout tarballs
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md),
// the format `containerd import`, `ctr images import` and `docker load`
// read. It knows just enough of the image spec for images made of a few
// files: one gzip-compressed layer, a config, a manifest and an index.
//
// Output is deterministic: the same Image gives the same bytes, because
// every tar header and the gzip header carry a fixed time, files are written
// in a fixed order, and JSON is encoded from structs (fixed field order) and
// sorted maps.
package ocilayout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// Media types and annotations of the OCI image spec v1.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	// AnnotationRefName names the image in index.json.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// annotationContainerdName is what containerd's importer reads first;
	// setting it too keeps the full name even where a reader takes the
	// OCI annotation to be a tag only.
	annotationContainerdName = "io.containerd.image.name"
)

// File is one regular file of the image's single layer.
type File struct {
	Path string // absolute path inside the image, e.g. "/echo"
	Mode int64  // permission bits, e.g. 0o755
	Data []byte
}

// Image describes an image to write.
type Image struct {
	Name         string // full reference, e.g. "skiff.dev/echo:v1"
	OS           string // "linux"
	Architecture string // GOARCH spelling: "amd64", "arm64"
	Entrypoint   []string
	Cmd          []string
	Env          []string
	WorkingDir   string
	ExposedPorts []string // "8080/tcp"
	StopSignal   string   // e.g. "SIGTERM"; empty means the runtime's default
	Labels       map[string]string
	Files        []File
	// Created is written into the config and every tar header. The zero
	// value means the Unix epoch, keeping output reproducible.
	Created time.Time
}

// Descriptor points at a blob.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

// Platform is the platform an image manifest runs on.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type imageConfig struct {
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type configFile struct {
	Created      string      `json:"created"`
	Architecture string      `json:"architecture"`
	OS           string      `json:"os"`
	Config       imageConfig `json:"config"`
	RootFS       rootFS      `json:"rootfs"`
	History      []history   `json:"history"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

type blob struct {
	digest string
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), data: data}
}

// Write writes img as an OCI image layout tarball to w and returns the
// descriptor of its manifest.
func Write(w io.Writer, img Image) (Descriptor, error) {
	if img.Name == "" {
		return Descriptor{}, fmt.Errorf("write image: a name is required")
	}
	if img.OS == "" || img.Architecture == "" {
		return Descriptor{}, fmt.Errorf("write image %s: OS and Architecture are required", img.Name)
	}
	created := img.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()

	layerTar, err := layerTar(img.Files, created)
	if err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: %w", img.Name, err)
	}
	diffID := newBlob(layerTar).digest
	layerGz, err := gzipBytes(layerTar)
	if err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: compress layer: %w", img.Name, err)
	}
	layer := newBlob(layerGz)

	cfg := configFile{
		Created:      created.Format(time.RFC3339),
		Architecture: img.Architecture,
		OS:           img.OS,
		Config: imageConfig{
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			Env:        img.Env,
			WorkingDir: img.WorkingDir,
			StopSignal: img.StopSignal,
			Labels:     img.Labels,
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{diffID}},
		History: []history{{Created: created.Format(time.RFC3339), CreatedBy: "skiff.dev/images/build"}},
	}
	if len(img.ExposedPorts) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range img.ExposedPorts {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	cfgJSON, err := json.Marshal(cfg) // maps are encoded with sorted keys
	if err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: encode config: %w", img.Name, err)
	}
	config := newBlob(cfgJSON)

	man := manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        Descriptor{MediaType: MediaTypeConfig, Digest: config.digest, Size: int64(len(config.data))},
		Layers:        []Descriptor{{MediaType: MediaTypeLayer, Digest: layer.digest, Size: int64(len(layer.data))}},
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: encode manifest: %w", img.Name, err)
	}
	manBlob := newBlob(manJSON)
	manDesc := Descriptor{
		MediaType: MediaTypeManifest,
		Digest:    manBlob.digest,
		Size:      int64(len(manJSON)),
		Annotations: map[string]string{
			AnnotationRefName:        img.Name,
			annotationContainerdName: img.Name,
		},
		Platform: &Platform{Architecture: img.Architecture, OS: img.OS},
	}
	idxJSON, err := json.Marshal(index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{manDesc}})
	if err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: encode index: %w", img.Name, err)
	}

	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
	}
	for _, b := range []blob{layer, config, manBlob} {
		entries = append(entries, struct {
			name string
			data []byte
		}{blobPath(b.digest), b.data})
	}
	if err := writeDir(tw, "blobs/", created); err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: %w", img.Name, err)
	}
	if err := writeDir(tw, "blobs/sha256/", created); err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: %w", img.Name, err)
	}
	for _, e := range entries {
		if err := writeFile(tw, e.name, 0o644, e.data, created); err != nil {
			return Descriptor{}, fmt.Errorf("write image %s: %w", img.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Descriptor{}, fmt.Errorf("write image %s: %w", img.Name, err)
	}
	return manDesc, nil
}

func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// layerTar builds the uncompressed layer: every parent directory once, then
// the files, all in lexical order and owned by root.
func layerTar(files []File, mtime time.Time) ([]byte, error) {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range sorted {
		p := path.Clean("/" + f.Path)
		if p == "/" {
			return nil, fmt.Errorf("layer file %q: not a file path", f.Path)
		}
		var parents []string
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := writeDir(tw, strings.TrimPrefix(d, "/")+"/", mtime); err != nil {
				return nil, err
			}
		}
		if err := writeFile(tw, strings.TrimPrefix(p, "/"), f.Mode, f.Data, mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeDir(tw *tar.Writer, name string, mtime time.Time) error {
	return tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime,
	})
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte, mtime time.Time) error {
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime,
	}); err != nil {
		return fmt.Errorf("tar header %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	return nil
}

func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	// The gzip header's ModTime and Name stay empty: reproducible output.
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
