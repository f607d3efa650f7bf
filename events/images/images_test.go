package images

import (
	"strings"
	"testing"
)

// Names normalise as github.com/distribution/reference does, which is how Docker and the
// kubelet resolve them: "docker.io/nginx" is the official image, as "nginx" is.
func TestParse(t *testing.T) {
	const digest = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
	for in, want := range map[string]string{
		"nginx":                            "docker.io/library/nginx:latest",
		"nginx:1.27":                       "docker.io/library/nginx:1.27",
		"docker.io/nginx":                  "docker.io/library/nginx:latest",
		"docker.io/nginx:1.27":             "docker.io/library/nginx:1.27",
		"index.docker.io/nginx":            "docker.io/library/nginx:latest",
		"library/nginx":                    "docker.io/library/nginx:latest",
		"user/app":                         "docker.io/user/app:latest",
		"skiff.dev/echo:v1":                "skiff.dev/echo:v1",
		"localhost:5000/app":               "localhost:5000/app:latest",
		"localhost/app:v2":                 "localhost/app:v2",
		"ghcr.io/o/app@" + digest:          "ghcr.io/o/app@" + digest,
		"ghcr.io/o/app:1.2@" + digest:      "ghcr.io/o/app:1.2@" + digest,
		"docker.io/library/busybox":        "docker.io/library/busybox:latest",
		"registry.k8s.io/pause:3.10":       "registry.k8s.io/pause:3.10",
		"quay.io/prometheus/node-exporter": "quay.io/prometheus/node-exporter:latest",
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
		if n := Normalize(in); n != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, n, want)
		}
	}
	for in, why := range map[string]string{
		"":                       "invalid reference format",
		"Nginx":                  "repository name (library/Nginx) must be lowercase",
		"nginx:":                 "invalid reference format",
		"ghcr.io/o/app@sha256:x": "invalid reference format",
		"a//b":                   "invalid reference format",
	} {
		if got, err := Parse(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Parse(%q) = %q, %v; want an error saying %q", in, got, err, why)
		}
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	const digest = "@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
	for in, want := range map[string]string{
		"nginx":                 "Always",
		"nginx:latest":          "Always",
		"docker.io/nginx":       "Always",
		"nginx:1.27":            "IfNotPresent",
		"skiff.dev/echo:v1":     "IfNotPresent",
		"nginx" + digest:        "IfNotPresent",
		"nginx:latest" + digest: "Always", // as the API server defaults it: the tag decides
	} {
		if got := DefaultPullPolicy(in); got != want {
			t.Errorf("DefaultPullPolicy(%q) = %s, want %s", in, got, want)
		}
	}
}
