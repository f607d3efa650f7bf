package nomad

import (
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// blockSchema says what a block may hold. It is the part of Nomad's jobspec language that
// deploy/nomad uses, plus the neighbours an operator is likely to add; a name outside it is an
// error, because Nomad rejects unknown names too and we cannot ask Nomad.
type blockSchema struct {
	labels   int
	attrs    []string // "*": any attribute (env, meta)
	blocks   []string
	required []string
	// enums restricts attribute values.
	enums map[string][]string
}

var jobSchema = map[string]blockSchema{
	"": {blocks: []string{"job"}},
	"job": {labels: 1,
		attrs:  []string{"datacenters", "node_pool", "type", "namespace", "region", "priority", "all_at_once"},
		blocks: []string{"group", "constraint", "affinity", "spread", "update", "reschedule", "migrate", "meta", "periodic", "parameterized"},
		enums:  map[string][]string{"type": {"service", "batch", "system", "sysbatch"}},
	},
	"group": {labels: 1,
		attrs:  []string{"count", "shutdown_delay", "stop_after_client_disconnect", "max_client_disconnect", "prevent_reschedule_on_lost"},
		blocks: []string{"task", "constraint", "affinity", "spread", "network", "volume", "restart", "reschedule", "update", "migrate", "service", "ephemeral_disk", "meta", "disconnect"},
	},
	"task": {labels: 1,
		attrs:    []string{"driver", "user", "kill_timeout", "kill_signal", "leader", "shutdown_delay", "kind"},
		blocks:   []string{"config", "env", "template", "resources", "constraint", "affinity", "service", "restart", "volume_mount", "logs", "artifact", "meta", "lifecycle", "identity"},
		required: []string{"driver"},
		enums:    map[string][]string{"driver": {"raw_exec", "exec"}},
	},
	// config is checked per driver in checkJob; these are the names both drivers know.
	"config": {attrs: []string{"command", "args", "pid_mode", "ipc_mode", "cap_add", "cap_drop", "cgroup_v1_override", "cgroup_v2_override", "oom_score_adj"},
		required: []string{"command"}},
	"env":  {attrs: []string{"*"}},
	"meta": {attrs: []string{"*"}},
	"constraint": {attrs: []string{"attribute", "operator", "value"},
		enums: map[string][]string{"operator": {"=", "==", "is", "!=", "not", ">", ">=", "<", "<=", "distinct_hosts", "distinct_property", "regexp", "set_contains", "set_contains_any", "version", "semver", "is_set", "is_not_set"}}},
	"affinity": {attrs: []string{"attribute", "operator", "value", "weight"}},
	"spread":   {attrs: []string{"attribute", "weight"}, blocks: []string{"target"}, required: []string{"attribute"}},
	"target":   {labels: 1, attrs: []string{"value", "percent"}},
	"update": {attrs: []string{"max_parallel", "health_check", "min_healthy_time", "healthy_deadline", "progress_deadline", "auto_revert", "auto_promote", "canary", "stagger"},
		enums: map[string][]string{"health_check": {"checks", "task_states", "manual"}}},
	"migrate": {attrs: []string{"max_parallel", "health_check", "min_healthy_time", "healthy_deadline"}},
	"restart": {attrs: []string{"attempts", "interval", "delay", "mode", "render_templates"},
		enums: map[string][]string{"mode": {"delay", "fail"}}},
	"reschedule": {attrs: []string{"attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"},
		enums: map[string][]string{"delay_function": {"constant", "exponential", "fibonacci"}}},
	"network": {attrs: []string{"mode", "hostname"}, blocks: []string{"port", "dns"}},
	"port":    {labels: 1, attrs: []string{"static", "to", "host_network"}},
	"volume": {labels: 1, attrs: []string{"type", "source", "read_only", "access_mode", "attachment_mode", "per_alloc"},
		required: []string{"type", "source"}, enums: map[string][]string{"type": {"host", "csi"}}},
	"volume_mount": {attrs: []string{"volume", "destination", "read_only", "propagation_mode"}, required: []string{"volume", "destination"}},
	"service": {attrs: []string{"name", "port", "tags", "provider", "address_mode", "task", "canary_tags"},
		blocks: []string{"check", "meta"}, enums: map[string][]string{"provider": {"nomad", "consul"}}},
	"check": {attrs: []string{"name", "type", "protocol", "port", "path", "method", "interval", "timeout", "tls_skip_verify", "tls_server_name", "command", "args", "task", "address_mode", "initial_status", "on_update", "success_before_passing", "failures_before_critical"},
		blocks: []string{"header", "check_restart"}, required: []string{"type", "interval", "timeout"},
		enums: map[string][]string{"type": {"http", "tcp", "grpc", "script"}, "protocol": {"http", "https"}}},
	"check_restart": {attrs: []string{"limit", "grace", "ignore_warnings"}},
	"template": {attrs: []string{"data", "source", "destination", "perms", "uid", "gid", "change_mode", "change_signal", "splay", "left_delimiter", "right_delimiter", "env", "error_on_missing_key"},
		blocks: []string{"wait", "change_script"}, required: []string{"destination"},
		enums: map[string][]string{"change_mode": {"noop", "restart", "signal", "script"}}},
	"resources": {attrs: []string{"cpu", "cores", "memory", "memory_max"}, blocks: []string{"device"}},
	"logs":      {attrs: []string{"max_files", "max_file_size", "disabled"}},
	"lifecycle": {attrs: []string{"hook", "sidecar"}},
}

// checkBlock checks b and its children against jobSchema.
func checkBlock(b *Block) hcl.Diagnostics {
	s, ok := jobSchema[b.Type]
	if !ok {
		return errAt(b.Range, "unknown block %q", b.Type)
	}
	var diags hcl.Diagnostics
	if len(b.Labels) != s.labels {
		diags = append(diags, errAt(b.Range, "block %q takes %d label(s), has %d", b.Type, s.labels, len(b.Labels))...)
	}
	for _, name := range sortedKeys(b.Attrs) {
		a := b.Attrs[name]
		if !slices.Contains(s.attrs, "*") && !slices.Contains(s.attrs, name) {
			diags = append(diags, errAt(a.Range, "unknown attribute %q in %s block (known: %s)", name, b.Type, strings.Join(s.attrs, ", "))...)
			continue
		}
		if allowed, ok := s.enums[name]; ok && !slices.Contains(allowed, a.Value) {
			diags = append(diags, errAt(a.Range, "%s = %q: must be one of %s", name, a.Value, strings.Join(allowed, ", "))...)
		}
	}
	for _, name := range s.required {
		if _, ok := b.Attrs[name]; !ok {
			diags = append(diags, errAt(b.Range, "%s block needs %q", b.Type, name)...)
		}
	}
	for _, c := range b.Blocks {
		if !slices.Contains(s.blocks, c.Type) {
			diags = append(diags, errAt(c.Range, "block %q is not allowed in %s (allowed: %s)", c.Type, b.Type, strings.Join(s.blocks, ", "))...)
			continue
		}
		diags = append(diags, checkBlock(c)...)
	}
	return diags
}

// driverConfig lists what each driver's config block accepts.
var driverConfig = map[string][]string{
	"raw_exec": {"command", "args", "cgroup_v1_override", "cgroup_v2_override", "oom_score_adj"},
	"exec":     {"command", "args", "pid_mode", "ipc_mode", "cap_add", "cap_drop"},
}

// checkJob checks what the schema cannot: references between blocks, and what each driver
// and provider supports.
func checkJob(j *Job) hcl.Diagnostics {
	var diags hcl.Diagnostics
	jb := j.Block
	if len(j.Groups) == 0 {
		diags = append(diags, errAt(jb.Range, "job %q has no group", j.Name)...)
	}
	if _, dc := jb.Attrs["datacenters"]; !dc {
		if _, pool := jb.Attrs["node_pool"]; !pool {
			diags = append(diags, errAt(jb.Range, "job %q names neither datacenters nor node_pool", j.Name)...)
		}
	}
	for _, g := range j.Groups {
		if len(g.Tasks) == 0 {
			diags = append(diags, errAt(g.Block.Range, "group %q has no task", g.Name)...)
		}
		if _, ok := g.Block.Attrs["count"]; ok && (j.Type == "system" || j.Type == "sysbatch") {
			diags = append(diags, errAt(g.Block.Attrs["count"].Range, "a %s job runs one allocation per node: count is not allowed", j.Type)...)
		}
		for _, svc := range append(g.Block.Children("service"), taskServices(g)...) {
			diags = append(diags, checkService(g, svc)...)
		}
		for _, t := range g.Tasks {
			tb := t.Block
			cfg := tb.Child("config")
			if cfg == nil {
				diags = append(diags, errAt(tb.Range, "task %q has no config block", t.Name)...)
				continue
			}
			for _, name := range sortedKeys(cfg.Attrs) {
				if !slices.Contains(driverConfig[t.Driver], name) {
					diags = append(diags, errAt(cfg.Attrs[name].Range, "driver %s does not take config %q", t.Driver, name)...)
				}
			}
			if a, ok := cfg.Attrs["args"]; ok && !a.IsList {
				diags = append(diags, errAt(a.Range, "args must be a list of strings")...)
			}
			// Both drivers run a binary from the host by absolute path.
			if !path.IsAbs(t.Command) {
				diags = append(diags, errAt(cfg.Attrs["command"].Range, "command %q: a binary on the host needs an absolute path", t.Command)...)
			}
			if len(t.VolumeMounts) > 0 && t.Driver == "raw_exec" {
				diags = append(diags, errAt(tb.Range, "task %q: raw_exec cannot mount volumes (no filesystem isolation); use exec", t.Name)...)
			}
			for _, vm := range t.VolumeMounts {
				if _, ok := g.Volumes[vm.Volume]; !ok {
					diags = append(diags, errAt(tb.Range, "task %q mounts volume %q, which group %q does not declare", t.Name, vm.Volume, g.Name)...)
				}
			}
			seen := map[string]bool{}
			for _, tpl := range t.Templates {
				if seen[tpl.Destination] {
					diags = append(diags, errAt(tpl.Range, "two templates write %s", tpl.Destination)...)
				}
				seen[tpl.Destination] = true
				if path.IsAbs(tpl.Destination) || strings.HasPrefix(path.Clean(tpl.Destination), "..") {
					diags = append(diags, errAt(tpl.Range, "template destination %q must be inside the task directory", tpl.Destination)...)
				}
				if tpl.ChangeMode == "signal" && tpl.ChangeSignal == "" {
					diags = append(diags, errAt(tpl.Range, "change_mode signal needs change_signal")...)
				}
				if tpl.Data == "" {
					diags = append(diags, errAt(tpl.Range, "template has no data (source files are not delivered by these jobs)")...)
				}
			}
		}
	}
	return diags
}

func taskServices(g *Group) []*Block {
	var out []*Block
	for _, t := range g.Tasks {
		out = append(out, t.Block.Children("service")...)
	}
	return out
}

func checkService(g *Group, svc *Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	provider := svc.Get("provider")
	if provider == "" {
		provider = "consul"
	}
	if p := svc.Get("port"); p != "" {
		if _, ok := g.Ports[p]; !ok {
			diags = append(diags, errAt(svc.Attrs["port"].Range, "service port %q is not a port of group %q's network", p, g.Name)...)
		}
	}
	for _, c := range svc.Children("check") {
		if provider == "nomad" && !slices.Contains([]string{"http", "tcp"}, c.Get("type")) {
			diags = append(diags, errAt(c.Range, "Nomad's service provider runs only http and tcp checks, not %q", c.Get("type"))...)
		}
		if p := c.Get("port"); p != "" {
			if _, ok := g.Ports[p]; !ok {
				diags = append(diags, errAt(c.Attrs["port"].Range, "check port %q is not a port of group %q's network", p, g.Name)...)
			}
		}
		if c.Get("type") == "http" && c.Get("path") == "" {
			diags = append(diags, errAt(c.Range, "an http check needs a path")...)
		}
	}
	return diags
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
