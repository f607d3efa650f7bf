package nomad_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/tests/nomad"
)

func loadJobs(t *testing.T) map[string]*nomad.Job {
	t.Helper()
	jobs, err := nomad.LoadDir(deployDir())
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string]*nomad.Job{}
	for _, j := range jobs {
		byFile[filepath.Base(j.File)] = j
	}
	return byFile
}

// TestJobspecsParse loads every deploy/nomad/*.nomad.hcl (syntax, schema, references) and
// checks the shape each job must have for a Skiff cluster to work.
func TestJobspecsParse(t *testing.T) {
	jobs := loadJobs(t)
	type task struct{ Name, Driver, Command string }
	type shape struct {
		Name, Type string
		Groups     map[string][]task
	}
	want := map[string]shape{
		"nats.nomad.hcl": {"skiff-nats", "service", map[string][]task{
			"nats": {{"nats-server", "exec", "/usr/local/bin/nats-server"}}}},
		"skiff-bootstrap.nomad.hcl": {"skiff-bootstrap", "batch", map[string][]task{
			"bootstrap": {{"bootstrap", "exec", "/usr/local/bin/skiff"}}}},
		"skiff-scheduler.nomad.hcl": {"skiff-scheduler", "service", map[string][]task{
			"scheduler": {{"scheduler", "exec", "/usr/local/bin/skiff-scheduler"}}}},
		"skiff-node.nomad.hcl": {"skiff-node", "system", map[string][]task{
			"node": {{"nodeagent", "raw_exec", "/usr/local/bin/skiff-nodeagent"}, {"netproxy", "raw_exec", "/usr/local/bin/skiff-netproxy"}}}},
	}
	got := map[string]shape{}
	for file, j := range jobs {
		s := shape{Name: j.Name, Type: j.Type, Groups: map[string][]task{}}
		for _, g := range j.Groups {
			for _, tk := range g.Tasks {
				s.Groups[g.Name] = append(s.Groups[g.Name], task{tk.Name, tk.Driver, tk.Command})
			}
		}
		got[file] = s
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}

	// What keeps the cluster whole, stated once so that an edit that loses it fails here.
	checks := []struct {
		name string
		file string
		ok   func(j *nomad.Job) bool
	}{
		{"nats: three servers", "nats.nomad.hcl", func(j *nomad.Job) bool { return j.Groups[0].Count == 3 }},
		{"nats: one server per VM", "nats.nomad.hcl", func(j *nomad.Job) bool { return hasConstraint(j.Groups[0].Block, "distinct_hosts") }},
		{"nats: only on VMs marked skiff_nats", "nats.nomad.hcl", func(j *nomad.Job) bool {
			c := j.Groups[0].Block.Child("constraint")
			return c != nil && c.Get("attribute") == "${meta.skiff_nats}" && c.Get("value") == "true"
		}},
		{"nats: rolling update one at a time, gated on checks", "nats.nomad.hcl", func(j *nomad.Job) bool {
			u := j.Block.Child("update")
			return u != nil && u.Get("max_parallel") == "1" && u.Get("health_check") == "checks"
		}},
		{"nats: JetStream store on a host volume", "nats.nomad.hcl", func(j *nomad.Job) bool {
			tk := j.Groups[0].Tasks[0]
			return len(tk.VolumeMounts) == 1 && tk.VolumeMounts[0].Destination == "/var/lib/nats" && j.Groups[0].Volumes["jetstream"] == "skiff-nats"
		}},
		{"nats: https health check on the monitoring port", "nats.nomad.hcl", func(j *nomad.Job) bool {
			c := j.Groups[0].Block.Child("service").Child("check")
			return c.Get("protocol") == "https" && c.Get("port") == "monitor" && c.Get("path") == "/healthz" && j.Groups[0].Ports["monitor"] == 8222
		}},
		{"nats: never rescheduled away from its store", "nats.nomad.hcl", func(j *nomad.Job) bool {
			r := j.Groups[0].Block.Child("reschedule")
			return r != nil && r.Get("attempts") == "0" && r.Get("unlimited") == "false"
		}},
		{"scheduler: two replicas on two VMs", "skiff-scheduler.nomad.hcl", func(j *nomad.Job) bool {
			return j.Groups[0].Count == 2 && hasConstraint(j.Groups[0].Block, "distinct_hosts")
		}},
		{"scheduler: update one at a time", "skiff-scheduler.nomad.hcl", func(j *nomad.Job) bool {
			return j.Block.Child("update").Get("max_parallel") == "1"
		}},
		{"node: update one node at a time", "skiff-node.nomad.hcl", func(j *nomad.Job) bool {
			return j.Block.Child("update").Get("max_parallel") == "1"
		}},
		{"every group has a restart policy", "", func(j *nomad.Job) bool {
			for _, g := range j.Groups {
				if g.Block.Child("restart") == nil {
					return false
				}
			}
			return true
		}},
		{"every job names its datacenters", "", func(j *nomad.Job) bool { return len(j.Block.Attrs["datacenters"].List) > 0 }},
		{"credentials and keys are written to secrets/ with mode 0600", "", func(j *nomad.Job) bool {
			for _, g := range j.Groups {
				for _, tk := range g.Tasks {
					for _, tpl := range tk.Templates {
						secret := strings.HasSuffix(tpl.Destination, ".creds") || strings.HasSuffix(tpl.Destination, "-key.pem") || strings.HasSuffix(tpl.Destination, ".conf")
						if secret && (!strings.HasPrefix(tpl.Destination, "secrets/") || tpl.Perms != "0600") {
							return false
						}
					}
				}
			}
			return true
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for file, j := range jobs {
				if c.file != "" && file != c.file {
					continue
				}
				if !c.ok(j) {
					t.Errorf("%s: does not hold", file)
				}
			}
		})
	}
}

func hasConstraint(b *nomad.Block, operator string) bool {
	for _, c := range b.Children("constraint") {
		if c.Get("operator") == operator && c.Get("value") == "true" {
			return true
		}
	}
	return false
}

// TestPoliciesParse checks the syntax of every other HCL file in deploy/nomad (ACL policies).
func TestPoliciesParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(deployDir(), "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".nomad.hcl") {
			continue
		}
		n++
		if err := nomad.ParseHCL(f); err != nil {
			t.Error(err)
		}
	}
	if n == 0 {
		t.Error("no ACL policy files in deploy/nomad")
	}
}

// TestLoadRejects shows that a broken jobspec fails with its file and line.
func TestLoadRejects(t *testing.T) {
	const ok = `job "j" {
  datacenters = ["*"]
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
        args    = ["--x", "${NOMAD_ALLOC_ID}"]
      }
    }
  }
}
`
	tests := []struct {
		name string
		edit func(string) string
		want string // in the error
	}{
		{"syntax", func(s string) string { return strings.Replace(s, `driver = "raw_exec"`, `driver = "raw_exec`, 1) }, "bad.nomad.hcl:5,"},
		{"unknown attribute", func(s string) string { return strings.Replace(s, `driver =`, `drivr =`, 1) }, `bad.nomad.hcl:5,7-25: unknown attribute "drivr"`},
		{"unknown block", func(s string) string { return strings.Replace(s, `config {`, `confg {`, 1) }, `bad.nomad.hcl:6,`},
		{"unknown driver", func(s string) string { return strings.Replace(s, `"raw_exec"`, `"docker"`, 1) }, `bad.nomad.hcl:5,7-24: driver = "docker"`},
		{"relative command", func(s string) string { return strings.Replace(s, `/bin/true`, `true`, 1) }, `bad.nomad.hcl:7,9-25: command "true"`},
		{"args not a list", func(s string) string { return strings.Replace(s, `["--x", "${NOMAD_ALLOC_ID}"]`, `"--x"`, 1) }, `bad.nomad.hcl:8,9-24: args must be a list`},
		{"count in a system job", func(s string) string {
			return strings.Replace(strings.Replace(s, `datacenters`, "type = \"system\"\n  datacenters", 1), `group "g" {`, "group \"g\" {\n    count = 2", 1)
		}, `bad.nomad.hcl:5,5-14: a system job runs one allocation per node`},
		{"bad constraint operator", func(s string) string {
			return strings.Replace(s, `group "g" {`, "group \"g\" {\n    constraint {\n      operator = \"distinct_host\"\n    }", 1)
		}, `bad.nomad.hcl:5,7-33: operator = "distinct_host"`},
		{"raw_exec with a volume", func(s string) string {
			return strings.Replace(s, `config {`, "volume_mount {\n  volume = \"v\"\n  destination = \"/v\"\n}\n      config {", 1)
		}, `raw_exec cannot mount volumes`},
		{"signal without a signal", func(s string) string {
			return strings.Replace(s, `config {`, "template {\n  destination = \"local/x\"\n  data = \"x\"\n  change_mode = \"signal\"\n}\n      config {", 1)
		}, `bad.nomad.hcl:6,7-15: change_mode signal needs change_signal`},
		{"script check with Nomad services", func(s string) string {
			return strings.Replace(s, `task "t" {`, "service {\n  provider = \"nomad\"\n  check {\n    type = \"script\"\n    interval = \"10s\"\n    timeout = \"2s\"\n  }\n}\n    task \"t\" {", 1)
		}, `Nomad's service provider runs only http and tcp checks`},
	}
	if _, err := nomad.Parse([]byte(ok), "ok.nomad.hcl"); err != nil {
		t.Fatalf("the unedited jobspec: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := nomad.Parse([]byte(tt.edit(ok)), "bad.nomad.hcl")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestTaskFlags runs each task's program with --help (for skiff, its subcommand's) and checks
// that it accepts every flag the jobspec passes.
func TestTaskFlags(t *testing.T) {
	bins := binaries(t)
	vars, nodes := fakeDatacenter()
	for file, j := range loadJobs(t) {
		tasks, err := nomad.Render(j, vars, nodes[0], nomad.Alloc{ID: "2f0e8b43-7c1d-4a55-9e0b-5d1f3c2a9b10", Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			t.Run(file+"/"+tk.Name, func(t *testing.T) {
				bin, ok := bins[filepath.Base(tk.Argv[0])]
				if !ok {
					t.Fatalf("%s: task %s runs %s, which no test builds", file, tk.Name, tk.Argv[0])
				}
				if err := nomad.CheckCommand(context.Background(), bin, tk.Argv); err != nil {
					t.Errorf("%s: task %s: %v", argsPos(j, tk.Name), tk.Name, err)
				}
			})
		}
	}
}

// argsPos is file:line of a task's args.
func argsPos(j *nomad.Job, task string) string {
	for _, g := range j.Groups {
		for _, tk := range g.Tasks {
			if tk.Name == task {
				r := tk.Block.Child("config").Attrs["args"].Range
				return fmt.Sprintf("%s:%d", filepath.Base(r.Filename), r.Start.Line)
			}
		}
	}
	return filepath.Base(j.File)
}

func TestParseHelp(t *testing.T) {
	tests := []struct {
		name string
		help string
		args []string
		want string // error substring, "" for none
	}{
		{"go flag", "Usage: x [flags]\n\nFlags:\n  -creds string\n    \tNATS credentials file\n  -v\tverbose\n  -lease-timeout duration\n    \tusage (default 40s)\n",
			[]string{"--creds", "a", "-lease-timeout=3s", "-v"}, ""},
		{"go flag unknown", "  -creds string\n    \tNATS credentials file\n", []string{"--config", "a"}, "flag --config is not accepted (the program lists: -creds)"},
		{"cobra", "Flags:\n  -h, --help               help\n      --replicas int   n\n\nGlobal Flags:\n      --config string   f\n",
			[]string{"--replicas", "3", "--config", "c"}, ""},
		{"cobra: long name with one dash", "Flags:\n      --replicas int   n\n", []string{"-replicas", "3"}, "flag -replicas is not accepted"},
		{"nats-server", "Server Options:\n    -a, --addr, --net <host>         Bind\n    -c, --config <file>              Configuration file\n    -DV                              Debug and trace\n",
			[]string{"-c", "f", "--net", "h", "-DV"}, ""},
		{"value missing", "  -creds string\n    \tx\n", []string{"--creds"}, "flag --creds needs a value"},
		{"prose with a dash", "Usage:\n  - not a flag\n  -creds string\n    \tx\n", []string{"-", "x"}, `argument "-" is not a flag`},
		{"positional", "  -creds string\n    \tx\n", []string{"--creds", "a", "b"}, `argument "b" is not a flag`},
		{"bad duration", "  -leader-ttl duration\n    \tx\n", []string{"--leader-ttl", "10"}, `flag --leader-ttl 10: time: missing unit`},
		{"every unknown flag", "  -creds string\n    \tx\n", []string{"--config", "a", "--creds", "c", "--tls-ca", "b"},
			"flag --config is not accepted (the program lists: -creds)\nflag --tls-ca is not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := nomad.ParseHelp(tt.help).Check(tt.args)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestCheckCommandSubcommand shows that an unknown skiff subcommand is caught although cobra
// answers its --help with the root's help and status 0.
func TestCheckCommandSubcommand(t *testing.T) {
	bins := binaries(t)
	err := nomad.CheckCommand(context.Background(), bins["skiff"], []string{"/usr/local/bin/skiff", "no-such", "command", "--replicas", "3"})
	if err == nil || !strings.Contains(err.Error(), `skiff has no command "no-such command"`) {
		t.Errorf("error %v, want skiff has no command", err)
	}
	if err := nomad.CheckCommand(context.Background(), bins["skiff"], []string{"/usr/local/bin/skiff", "up", "--data-dir", "x", "--server", "y"}); err != nil {
		t.Errorf("skiff up --data-dir x --server y: %v", err)
	}
	if !slices.Contains(nomad.ParseHelp("  -n, --namespace string   ns\n").Names(), "-n") {
		t.Error("shorthand not listed")
	}
}
