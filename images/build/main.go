// Command build compiles Skiff's image programs as static binaries and packs
// each into an OCI image layout tarball, without docker or a registry:
//
//	cd images && GOWORK=off go run ./build -out ../bin/images
//
// writes echo.tar (skiff.dev/echo:v1) and testbox.tar (skiff.dev/testbox:v1)
// into -out. -arch picks the GOARCH (default: this machine's) and -only
// builds a subset ("-only echo"). The same sources and toolchain give the
// same bytes: see package ocilayout.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"skiff.dev/images/ocilayout"
)

// spec is one image this tool knows how to build.
type spec struct {
	file  string // output file name in -out
	pkg   string // Go package of the single binary, relative to the module
	image ocilayout.Image
}

func specs(arch string) []spec {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return []spec{
		{
			file: "echo.tar",
			pkg:  "./echo",
			image: ocilayout.Image{
				Name: "skiff.dev/echo:v1", OS: "linux", Architecture: arch,
				Entrypoint: []string{"/echo"}, Env: env, WorkingDir: "/",
				ExposedPorts: []string{"8080/tcp"}, StopSignal: "SIGTERM",
			},
		},
		{
			file: "testbox.tar",
			pkg:  "./testbox",
			image: ocilayout.Image{
				Name: "skiff.dev/testbox:v1", OS: "linux", Architecture: arch,
				Entrypoint: []string{"/testbox"}, Cmd: []string{"sleep"},
				Env: append(env, "TESTBOX=1"), WorkingDir: "/",
			},
		},
	}
}

func main() {
	out := flag.String("out", "bin/images", "directory to write the image tarballs to")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH of the images")
	only := flag.String("only", "", "comma-separated image files to build without .tar (default: all)")
	flag.Parse()
	log.SetFlags(0)

	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatalf("build: %v", err)
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n+".tar"] = true
		}
	}
	for _, s := range specs(*arch) {
		if len(want) > 0 && !want[s.file] {
			continue
		}
		if err := build(s, *arch, *out); err != nil {
			log.Fatalf("build %s: %v", s.image.Name, err)
		}
	}
}

func build(s spec, arch, out string) error {
	tmp, err := os.MkdirTemp("", "skiff-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", bin, s.pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOWORK=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", s.pkg, err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	img := s.image
	img.Files = []ocilayout.File{{Path: img.Entrypoint[0], Mode: 0o755, Data: data}}

	var buf bytes.Buffer
	desc, err := ocilayout.Write(&buf, img)
	if err != nil {
		return err
	}
	// Write then rename, so a reader (or a concurrent build into the same
	// directory) never sees half a tarball.
	dst := filepath.Join(out, s.file)
	tmpFile, err := os.CreateTemp(out, s.file+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmpFile.Name())
	if _, err := tmpFile.Write(buf.Bytes()); err != nil {
		tmpFile.Close()
		return err
	}
	if err := tmpFile.Chmod(0o644); err != nil {
		tmpFile.Close()
		return err
	}
	if err := tmpFile.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpFile.Name(), dst); err != nil {
		return err
	}
	fmt.Printf("%s\t%s\t%s\t%d bytes\n", dst, img.Name, desc.Digest, buf.Len())
	return nil
}
