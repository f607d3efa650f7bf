package nomad

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Variables are Nomad Variables: path → items.
type Variables map[string]map[string]string

// Node is the Nomad client an allocation is placed on.
type Node struct {
	Name       string            // node.unique.name
	ID         string            // node.unique.id; Name when empty
	Address    string            // attr.unique.network.ip-address
	Datacenter string            // node.datacenter; "dc1" when empty
	Region     string            // node.region; "global" when empty
	Class      string            // node.class
	Meta       map[string]string // meta.<key>
}

// Alloc is one allocation of a group.
type Alloc struct {
	ID    string // NOMAD_ALLOC_ID
	Index int    // NOMAD_ALLOC_INDEX
	// Dir is the allocation directory on the host. Task T works in Dir/T, with Dir/T/local
	// (NOMAD_TASK_DIR) and Dir/T/secrets (NOMAD_SECRETS_DIR); Dir/alloc is shared.
	Dir string
}

// Task is a task ready to run: what Nomad's client would execute.
type Task struct {
	Job, Group, Name string
	Driver           string
	// Argv is the command and its interpolated arguments. Relative paths in it are relative to
	// Dir.
	Argv []string
	// Env is the environment Nomad gives the task (NOMAD_* and the env block), without the
	// client's own environment, which raw_exec also passes on.
	Env map[string]string
	// Dir is the task directory, the process's working directory.
	Dir string
	// Files are what the template blocks write, sorted by Path.
	Files []File
	// Mounts are the host volumes an exec task mounts.
	Mounts []Mount
}

// File is one rendered template.
type File struct {
	Path    string // as the template's destination: relative to the task directory
	Mode    fs.FileMode
	Content string
}

// Mount mounts the client's host volume Source at Destination inside an exec task.
type Mount struct {
	Source      string // the host_volume name in the client's config
	Destination string
	ReadOnly    bool
}

// Render returns the tasks of every group of job as Nomad would start them for alloc on node,
// with the templates rendered from vars. A Variable or item a template reads that vars lacks is
// an error (Nomad would wait for it), as is a ${...} name Nomad would not know.
func Render(job *Job, vars Variables, node Node, alloc Alloc) ([]Task, error) {
	var out []Task
	for _, g := range job.Groups {
		for _, ts := range g.Tasks {
			t, err := renderTask(job, g, ts, vars, node, alloc)
			if err != nil {
				return nil, fmt.Errorf("%s: job %s, group %s, task %s: %w", job.File, job.Name, g.Name, ts.Name, err)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// WriteFiles creates the task's directories and writes its rendered files with their modes.
func (t Task) WriteFiles() error {
	for _, d := range []string{t.Env["NOMAD_ALLOC_DIR"], t.Env["NOMAD_TASK_DIR"], t.Env["NOMAD_SECRETS_DIR"]} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, f := range t.Files {
		p := filepath.Join(t.Dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.Content), f.Mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.Mode); err != nil { // WriteFile's mode goes through the umask
			return err
		}
	}
	return nil
}

func renderTask(job *Job, g *Group, ts *TaskSpec, vars Variables, node Node, alloc Alloc) (Task, error) {
	t := Task{Job: job.Name, Group: g.Name, Name: ts.Name, Driver: ts.Driver, Dir: filepath.Join(alloc.Dir, ts.Name)}
	env := taskEnv(job, g, ts, node, alloc)
	lookup := maps.Clone(env)
	maps.Copy(lookup, nodeAttrs(node))

	for k, v := range ts.Env {
		s, err := interpolate(v, lookup)
		if err != nil {
			return t, fmt.Errorf("env %s: %w", k, err)
		}
		env[k] = s
		lookup[k] = s
	}
	t.Env = env

	for i, a := range append([]string{ts.Command}, ts.Args...) {
		s, err := interpolate(a, lookup)
		if err != nil {
			return t, fmt.Errorf("argv[%d]: %w", i, err)
		}
		t.Argv = append(t.Argv, s)
	}

	for _, tpl := range ts.Templates {
		dest, err := interpolate(tpl.Destination, lookup)
		if err != nil {
			return t, fmt.Errorf("template destination: %w", err)
		}
		content, err := renderTemplate(dest, tpl.Data, vars, lookup)
		if err != nil {
			return t, fmt.Errorf("template %s: %w", dest, err)
		}
		mode, err := strconv.ParseUint(tpl.Perms, 8, 32)
		if err != nil {
			return t, fmt.Errorf("template %s: perms %q: %w", dest, tpl.Perms, err)
		}
		t.Files = append(t.Files, File{Path: filepath.Clean(dest), Mode: fs.FileMode(mode), Content: content})
	}
	sort.Slice(t.Files, func(i, j int) bool { return t.Files[i].Path < t.Files[j].Path })

	for _, vm := range ts.VolumeMounts {
		t.Mounts = append(t.Mounts, Mount{Source: g.Volumes[vm.Volume], Destination: vm.Destination, ReadOnly: vm.ReadOnly})
	}
	return t, nil
}

// taskEnv is the subset of Nomad's task environment these jobs can use.
func taskEnv(job *Job, g *Group, ts *TaskSpec, node Node, alloc Alloc) map[string]string {
	taskDir := filepath.Join(alloc.Dir, ts.Name)
	short := alloc.ID
	if len(short) > 8 {
		short = short[:8]
	}
	env := map[string]string{
		"NOMAD_ALLOC_DIR":      filepath.Join(alloc.Dir, "alloc"),
		"NOMAD_TASK_DIR":       filepath.Join(taskDir, "local"),
		"NOMAD_SECRETS_DIR":    filepath.Join(taskDir, "secrets"),
		"NOMAD_ALLOC_ID":       alloc.ID,
		"NOMAD_SHORT_ALLOC_ID": short,
		"NOMAD_ALLOC_INDEX":    strconv.Itoa(alloc.Index),
		"NOMAD_ALLOC_NAME":     fmt.Sprintf("%s.%s[%d]", job.Name, g.Name, alloc.Index),
		"NOMAD_JOB_ID":         job.Name,
		"NOMAD_JOB_NAME":       job.Name,
		"NOMAD_GROUP_NAME":     g.Name,
		"NOMAD_TASK_NAME":      ts.Name,
		"NOMAD_NAMESPACE":      "default",
		"NOMAD_DC":             orDefault(node.Datacenter, "dc1"),
		"NOMAD_REGION":         orDefault(node.Region, "global"),
	}
	if r := ts.Block.Child("resources"); r != nil {
		if v := r.Get("cpu"); v != "" {
			env["NOMAD_CPU_LIMIT"] = v
		}
		if v := r.Get("memory"); v != "" {
			env["NOMAD_MEMORY_LIMIT"] = v
		}
	}
	// Host networking: every port is on the node's address.
	for label, port := range g.Ports {
		if port == 0 {
			continue // dynamic ports are not simulated
		}
		p := strconv.Itoa(port)
		env["NOMAD_IP_"+label] = node.Address
		env["NOMAD_PORT_"+label] = p
		env["NOMAD_HOST_PORT_"+label] = p
		env["NOMAD_ADDR_"+label] = node.Address + ":" + p
	}
	return env
}

func nodeAttrs(node Node) map[string]string {
	m := map[string]string{
		"node.unique.name":               node.Name,
		"node.unique.id":                 orDefault(node.ID, node.Name),
		"node.datacenter":                orDefault(node.Datacenter, "dc1"),
		"node.region":                    orDefault(node.Region, "global"),
		"node.class":                     node.Class,
		"attr.unique.network.ip-address": node.Address,
	}
	for k, v := range node.Meta {
		m["meta."+k] = v
	}
	return m
}

var reference = regexp.MustCompile(`\$\{([^}]*)\}`)

// interpolate replaces Nomad's ${name} references, as the client does before starting a task.
func interpolate(s string, lookup map[string]string) (string, error) {
	var missing []string
	out := reference.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-1])
		v, ok := lookup[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%q: Nomad has no runtime variable %s", s, strings.Join(missing, ", "))
	}
	return out, nil
}

// renderTemplate renders a template block's data with the consul-template functions the
// jobspecs use.
func renderTemplate(name, data string, vars Variables, env map[string]string) (string, error) {
	funcs := template.FuncMap{
		"nomadVar": func(path string) (map[string]string, error) {
			items, ok := vars[path]
			if !ok {
				return nil, fmt.Errorf("no Variable %s (Nomad would wait for it: nomad var put %s ...)", path, path)
			}
			return items, nil
		},
		"env": func(key string) string { return env[key] },
	}
	tpl, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(data)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	if err := tpl.Execute(&sb, nil); err != nil {
		return "", err
	}
	return sb.String(), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
