package images

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                     "docker.io/library/nginx:latest",
		"nginx:1.27":                "docker.io/library/nginx:1.27",
		"user/app":                  "docker.io/user/app:latest",
		"skiff.dev/echo:v1":         "skiff.dev/echo:v1",
		"localhost:5000/app":        "localhost:5000/app:latest",
		"localhost/app:v2":          "localhost/app:v2",
		"ghcr.io/o/app@sha256:abcd": "ghcr.io/o/app@sha256:abcd",
		"docker.io/library/busybox": "docker.io/library/busybox:latest",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
