package client

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"skiff.dev/events"
)

// File is a client config file: which servers, which creds, which CA. Relative paths are
// relative to the file's directory, so a directory of config, creds and CA can be copied as is.
type File struct {
	Server string `json:"server,omitempty"`
	Creds  string `json:"creds,omitempty"`
	CA     string `json:"ca,omitempty"`
}

// ReadConfig reads a config file and makes its paths absolute. Errors: os.ErrNotExist (wrapped)
// when there is no file; events.ErrInvalidArgument when it does not parse or has unknown fields.
func ReadConfig(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("client config: %w", err)
	}
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return File{}, events.Errorf(events.ErrInvalidArgument, "client config %s: %v (want server:, creds: and ca:)", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&f.Creds, &f.CA} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return f, nil
}

// WriteConfig writes f to path (mode 0600, directories 0700), with a comment saying what it is.
// Paths in f are written as given: pass them relative to path's directory to keep the directory
// movable.
func WriteConfig(path string, f File) error {
	data, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("# Skiff client config: which NATS servers, which credentials, which CA.\n")
	b.WriteString("# Relative paths are relative to this file. Every skiff binary reads it (--config, SKIFF_CONFIG).\n")
	b.Write(data)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	return nil
}
