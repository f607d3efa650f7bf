package nomad

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Block is one block of a jobspec as written: attributes as strings, with Nomad's run-time
// interpolations (${NOMAD_ALLOC_ID}, ${node.unique.name}) kept as text, the way Nomad's own
// parser leaves them for the client to fill in.
type Block struct {
	Type   string
	Labels []string
	Attrs  map[string]Attr
	Blocks []*Block
	Range  hcl.Range
}

// Attr is an attribute's value: a string, or a list of strings when IsList.
type Attr struct {
	Value  string
	List   []string
	IsList bool
	Range  hcl.Range
}

// Child is the first child block of type typ, or nil.
func (b *Block) Child(typ string) *Block {
	for _, c := range b.Blocks {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

// Children are the child blocks of type typ, in file order.
func (b *Block) Children(typ string) []*Block {
	var out []*Block
	for _, c := range b.Blocks {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// Get is the string value of attribute name, "" if absent.
func (b *Block) Get(name string) string { return b.Attrs[name].Value }

// Label is the block's first label ("" if it has none).
func (b *Block) Label() string {
	if len(b.Labels) == 0 {
		return ""
	}
	return b.Labels[0]
}

// Job is one parsed and checked jobspec.
type Job struct {
	File   string // the path it was loaded from
	Name   string
	Type   string // service, batch, system or sysbatch
	Groups []*Group
	Block  *Block // the whole job block, for checks on anything else
}

// Group is a task group.
type Group struct {
	Name  string
	Count int // 1 when unset, as in Nomad; ignored by system jobs
	Tasks []*TaskSpec
	// Ports are the group network's ports by label, with their static numbers (0: dynamic).
	Ports map[string]int
	// Volumes are the group's host volumes: label → source (the client's host_volume name).
	Volumes map[string]string
	Block   *Block
}

// TaskSpec is a task as written, before interpolation.
type TaskSpec struct {
	Name         string
	Driver       string
	Command      string
	Args         []string
	Env          map[string]string
	Templates    []Template
	VolumeMounts []VolumeMount
	Block        *Block
}

// Template is a template block.
type Template struct {
	Destination  string // relative to the task directory
	Data         string
	Perms        string // octal, "0644" when unset
	ChangeMode   string
	ChangeSignal string
	Range        hcl.Range
}

// VolumeMount mounts a group volume into an exec task.
type VolumeMount struct {
	Volume      string // the group volume's label
	Destination string
	ReadOnly    bool
}

// LoadDir loads every *.nomad.hcl file in dir, sorted by name.
func LoadDir(dir string) ([]*Job, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.nomad.hcl"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.nomad.hcl files in %s", dir)
	}
	sort.Strings(files)
	var jobs []*Job
	for _, f := range files {
		j, err := Load(f)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// Load parses the jobspec at path and checks it. Errors name file:line,column.
func Load(path string) (*Job, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(src, path)
}

// Parse parses a jobspec's source; filename is used in error messages.
func Parse(src []byte, filename string) (*Job, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	root, diags := readBody(file.Body.(*hclsyntax.Body), "", nil, hcl.Range{Filename: filename})
	if diags.HasErrors() {
		return nil, diags
	}
	jobs := root.Children("job")
	if len(jobs) != 1 || len(root.Blocks) != 1 || len(root.Attrs) != 0 {
		return nil, errAt(root.Range, "a jobspec holds exactly one job block and nothing else")
	}
	if diags := checkBlock(jobs[0]); diags.HasErrors() {
		return nil, diags
	}
	j, err := newJob(jobs[0], filename)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// ParseHCL parses any HCL file (such as an ACL policy) for syntax only.
func ParseHCL(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if _, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos); diags.HasErrors() {
		return diags
	}
	return nil
}

func errAt(r hcl.Range, format string, args ...any) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf(format, args...), Subject: r.Ptr()}}
}

// readBody turns an HCL body into a Block, keeping interpolations as text.
func readBody(body *hclsyntax.Body, typ string, labels []string, r hcl.Range) (*Block, hcl.Diagnostics) {
	b := &Block{Type: typ, Labels: labels, Attrs: map[string]Attr{}, Range: r}
	var diags hcl.Diagnostics
	for name, a := range body.Attributes {
		v, d := literal(a.Expr)
		diags = append(diags, d...)
		v.Range = a.SrcRange
		b.Attrs[name] = v
	}
	for _, blk := range body.Blocks {
		c, d := readBody(blk.Body, blk.Type, blk.Labels, blk.DefRange())
		diags = append(diags, d...)
		b.Blocks = append(b.Blocks, c)
	}
	return b, diags
}

// literal reads an attribute the way Nomad's parser does for values known only at run time:
// a reference such as ${NOMAD_ALLOC_ID} stays as text. Lists of such strings are lists.
func literal(expr hclsyntax.Expression) (Attr, hcl.Diagnostics) {
	if tuple, ok := expr.(*hclsyntax.TupleConsExpr); ok {
		a := Attr{IsList: true, List: []string{}}
		for _, e := range tuple.Exprs {
			s, diags := literalString(e)
			if diags.HasErrors() {
				return a, diags
			}
			a.List = append(a.List, s)
		}
		return a, nil
	}
	s, diags := literalString(expr)
	return Attr{Value: s}, diags
}

func literalString(expr hclsyntax.Expression) (string, hcl.Diagnostics) {
	switch e := expr.(type) {
	case *hclsyntax.TemplateWrapExpr:
		return literalString(e.Wrapped)
	case *hclsyntax.TemplateExpr:
		var sb strings.Builder
		for _, p := range e.Parts {
			s, diags := literalString(p)
			if diags.HasErrors() {
				return "", diags
			}
			sb.WriteString(s)
		}
		return sb.String(), nil
	case *hclsyntax.ScopeTraversalExpr:
		return "${" + traversalName(e.Traversal) + "}", nil
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return "", errAt(expr.Range(), "unsupported expression: this checker reads strings, numbers, bools, lists of them and ${...} references")
	}
	switch {
	case v.IsNull():
		return "", nil
	case v.Type() == cty.String:
		return v.AsString(), nil
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('f', -1), nil
	case v.Type() == cty.Bool:
		if v.True() {
			return "true", nil
		}
		return "false", nil
	}
	return "", errAt(expr.Range(), "unsupported value of type %s", v.Type().FriendlyName())
}

func traversalName(t hcl.Traversal) string {
	var sb strings.Builder
	for i, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			sb.WriteString(s.Name)
		case hcl.TraverseAttr:
			if i > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(s.Name)
		case hcl.TraverseIndex:
			if s.Key.Type() == cty.String {
				fmt.Fprintf(&sb, "[%q]", s.Key.AsString())
			} else {
				fmt.Fprintf(&sb, "[%s]", s.Key.AsBigFloat().Text('f', -1))
			}
		}
	}
	return sb.String()
}

func newJob(b *Block, file string) (*Job, error) {
	j := &Job{File: file, Name: b.Label(), Type: b.Get("type"), Block: b}
	if j.Type == "" {
		j.Type = "service" // Nomad's default
	}
	var diags hcl.Diagnostics
	for _, gb := range b.Children("group") {
		g := &Group{Name: gb.Label(), Count: 1, Ports: map[string]int{}, Volumes: map[string]string{}, Block: gb}
		if c, ok := gb.Attrs["count"]; ok {
			if _, err := fmt.Sscan(c.Value, &g.Count); err != nil {
				diags = append(diags, errAt(c.Range, "count %q is not a number", c.Value)...)
			}
		}
		if nw := gb.Child("network"); nw != nil {
			for _, p := range nw.Children("port") {
				n := 0
				if s, ok := p.Attrs["static"]; ok {
					if _, err := fmt.Sscan(s.Value, &n); err != nil {
						diags = append(diags, errAt(s.Range, "static port %q is not a number", s.Value)...)
					}
				}
				g.Ports[p.Label()] = n
			}
		}
		for _, v := range gb.Children("volume") {
			g.Volumes[v.Label()] = v.Get("source")
		}
		for _, tb := range gb.Children("task") {
			t := &TaskSpec{Name: tb.Label(), Driver: tb.Get("driver"), Env: map[string]string{}, Block: tb}
			if cfg := tb.Child("config"); cfg != nil {
				t.Command = cfg.Get("command")
				t.Args = cfg.Attrs["args"].List
			}
			if env := tb.Child("env"); env != nil {
				for k, v := range env.Attrs {
					t.Env[k] = v.Value
				}
			}
			for _, tpl := range tb.Children("template") {
				perms := tpl.Get("perms")
				if perms == "" {
					perms = "0644"
				}
				t.Templates = append(t.Templates, Template{
					Destination: tpl.Get("destination"), Data: tpl.Get("data"), Perms: perms,
					ChangeMode: tpl.Get("change_mode"), ChangeSignal: tpl.Get("change_signal"), Range: tpl.Range,
				})
			}
			for _, vm := range tb.Children("volume_mount") {
				t.VolumeMounts = append(t.VolumeMounts, VolumeMount{
					Volume: vm.Get("volume"), Destination: vm.Get("destination"), ReadOnly: vm.Get("read_only") == "true",
				})
			}
			g.Tasks = append(g.Tasks, t)
		}
		j.Groups = append(j.Groups, g)
	}
	diags = append(diags, checkJob(j)...)
	if diags.HasErrors() {
		return nil, diags
	}
	return j, nil
}
