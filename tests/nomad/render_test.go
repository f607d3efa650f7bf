package nomad_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"skiff.dev/events/eventstest"
	"skiff.dev/tests/nomad"
)

// fakeDatacenter is three VMs named as `skiff cluster init --server n1=10.0.0.1 ...` would
// name them, with the Variables README.md tells the operator to put.
func fakeDatacenter() (nomad.Variables, []nomad.Node) {
	const servers = "tls://10.0.0.1:4222,tls://10.0.0.2:4222,tls://10.0.0.3:4222"
	const ca = "-----BEGIN CERTIFICATE-----\nFAKE CLUSTER CA\n-----END CERTIFICATE-----\n"
	vars := nomad.Variables{
		"nomad/jobs/skiff-bootstrap": {"server": servers, "creds": "FAKE admin.creds\n", "ca": ca},
		"nomad/jobs/skiff-scheduler": {"server": servers, "creds": "FAKE scheduler.creds\n", "ca": ca},
	}
	var nodes []nomad.Node
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		addr := fmt.Sprintf("10.0.0.%d", i)
		vars["nomad/jobs/skiff-nats/"+name] = map[string]string{
			"conf": fmt.Sprintf("server_name: %s\nlisten: %s:4222\n# FAKE nats.conf\n", name, addr),
			"cert": fmt.Sprintf("-----BEGIN CERTIFICATE-----\nFAKE %s\n-----END CERTIFICATE-----\n", name),
			"key":  fmt.Sprintf("-----BEGIN EC PRIVATE KEY-----\nFAKE %s\n-----END EC PRIVATE KEY-----\n", name),
			"ca":   ca,
		}
		vars["nomad/jobs/skiff-node/"+name] = map[string]string{"server": servers, "creds": "FAKE node-" + name + ".creds\n", "ca": ca}
		nodes = append(nodes, nomad.Node{Name: name, ID: fmt.Sprintf("0000000%d-aaaa-bbbb-cccc-dddddddddddd", i), Address: addr, Meta: map[string]string{"skiff_nats": "true"}})
	}
	return vars, nodes
}

// TestRender renders every job for one allocation on n2 and compares with testdata/<job>.golden.
func TestRender(t *testing.T) {
	vars, nodes := fakeDatacenter()
	for file, j := range loadJobs(t) {
		t.Run(j.Name, func(t *testing.T) {
			tasks, err := nomad.Render(j, vars, nodes[1], nomad.Alloc{ID: "5b7c1e2a-0d3f-4c8e-9a61-7f2b4d6e8c01", Index: 1, Dir: "/var/lib/nomad/alloc/5b7c1e2a"})
			if err != nil {
				t.Fatal(err)
			}
			got := dump(tasks)
			eventstest.Golden(t, "testdata/"+strings.TrimSuffix(file, ".nomad.hcl")+".golden", got)
		})
	}
}

// dump prints tasks readably, for golden files.
func dump(tasks []nomad.Task) string {
	var sb strings.Builder
	for _, tk := range tasks {
		fmt.Fprintf(&sb, "=== task %s/%s/%s (%s) in %s\n", tk.Job, tk.Group, tk.Name, tk.Driver, tk.Dir)
		sb.WriteString("argv:\n")
		for _, a := range tk.Argv {
			fmt.Fprintf(&sb, "  %s\n", a)
		}
		sb.WriteString("env:\n")
		keys := make([]string, 0, len(tk.Env))
		for k := range tk.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&sb, "  %s=%s\n", k, tk.Env[k])
		}
		for _, m := range tk.Mounts {
			fmt.Fprintf(&sb, "mount: host volume %s at %s (read-only %v)\n", m.Source, m.Destination, m.ReadOnly)
		}
		for _, f := range tk.Files {
			fmt.Fprintf(&sb, "--- file %s (%04o)\n%s", f.Path, f.Mode, f.Content)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// TestRenderedPathsResolve checks what ties the files together: every relative path in argv
// that names a file is rendered, and the creds and ca of every client config, relative to the
// config file as Skiff reads them, are rendered files of the same task.
func TestRenderedPathsResolve(t *testing.T) {
	vars, nodes := fakeDatacenter()
	for file, j := range loadJobs(t) {
		for _, n := range nodes {
			tasks, err := nomad.Render(j, vars, n, nomad.Alloc{ID: "alloc-" + n.Name, Dir: "/alloc"})
			if err != nil {
				t.Fatal(err)
			}
			for _, tk := range tasks {
				files := map[string]string{}
				for _, f := range tk.Files {
					files[f.Path] = f.Content
				}
				for _, a := range tk.Argv[1:] {
					p := a
					if rel, err := filepath.Rel(tk.Dir, a); err == nil && filepath.IsAbs(a) && !strings.HasPrefix(rel, "..") {
						p = rel
					}
					if strings.HasPrefix(p, "local/") || strings.HasPrefix(p, "secrets/") {
						if _, ok := files[p]; !ok {
							t.Errorf("%s: task %s: argument %s names no rendered file (have %v)", file, tk.Name, a, slices.Sorted(mapsKeys(files)))
						}
					}
				}
				for p, content := range files {
					if !strings.HasSuffix(p, ".yaml") {
						continue
					}
					cfg := yamlFields(content)
					if cfg["server"] != vars["nomad/jobs/skiff-scheduler"]["server"] {
						t.Errorf("%s: task %s: %s: server %q", file, tk.Name, p, cfg["server"])
					}
					for _, key := range []string{"creds", "ca"} {
						ref := path.Join(path.Dir(p), cfg[key])
						if _, ok := files[ref]; !ok || cfg[key] == "" {
							t.Errorf("%s: task %s: %s: %s %q resolves to %s, not a rendered file", file, tk.Name, p, key, cfg[key], ref)
						}
					}
				}
			}
		}
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// yamlFields reads the flat key: value lines of a client config.
func yamlFields(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return m
}

func TestRenderErrors(t *testing.T) {
	vars, nodes := fakeDatacenter()
	jobs := loadJobs(t)
	tests := []struct {
		name string
		file string
		vars func(nomad.Variables)
		src  string // a jobspec to parse instead of file
		want string
	}{
		{name: "node without its Variable", file: "skiff-node.nomad.hcl",
			vars: func(v nomad.Variables) { delete(v, "nomad/jobs/skiff-node/n1") },
			want: "no Variable nomad/jobs/skiff-node/n1"},
		{name: "Variable without an item", file: "skiff-scheduler.nomad.hcl",
			vars: func(v nomad.Variables) { delete(v["nomad/jobs/skiff-scheduler"], "creds") },
			want: `map has no entry for key "creds"`},
		{name: "unknown runtime variable", src: `job "j" {
  datacenters = ["*"]
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
        args    = ["--name", "${node.unique.nam}"]
      }
    }
  }
}
`, want: "Nomad has no runtime variable node.unique.nam"},
		{name: "unknown template function", src: `job "j" {
  datacenters = ["*"]
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      template {
        destination = "local/x"
        data        = "{{ key \"a\" }}"
      }
    }
  }
}
`, want: `function "key" not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := nomad.Variables{}
			for p, items := range vars {
				v[p] = map[string]string{}
				for k, x := range items {
					v[p][k] = x
				}
			}
			if tt.vars != nil {
				tt.vars(v)
			}
			j := jobs[tt.file]
			if tt.src != "" {
				var err error
				if j, err = nomad.Parse([]byte(tt.src), "j.nomad.hcl"); err != nil {
					t.Fatal(err)
				}
			}
			_, err := nomad.Render(j, v, nodes[0], nomad.Alloc{ID: "a", Dir: "/alloc"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestWriteFiles writes a rendered task's files as the simulated datacenter will.
func TestWriteFiles(t *testing.T) {
	vars, nodes := fakeDatacenter()
	j := loadJobs(t)["skiff-node.nomad.hcl"]
	tasks, err := nomad.Render(j, vars, nodes[2], nomad.Alloc{ID: "a", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if err := tk.WriteFiles(); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(tk.Dir, "secrets", "node.creds"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: node.creds mode %v, want 0600", tk.Name, st.Mode().Perm())
		}
		b, err := os.ReadFile(filepath.Join(tk.Dir, "secrets", "node.creds"))
		if err != nil || string(b) != "FAKE node-n3.creds\n" {
			t.Errorf("%s: node.creds = %q, %v", tk.Name, b, err)
		}
	}
}
