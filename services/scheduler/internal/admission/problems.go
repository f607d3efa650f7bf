package admission

import (
	"errors"
	"fmt"
	"strings"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// problem is one reason an object cannot be applied, with the class of error it represents.
type problem struct {
	path   string
	reason string
	class  error // events.ErrInvalidArgument, ErrNotFound, ErrConflict, ErrFailedPrecondition
}

// problems collects what is wrong with one document. Paths that failed to decode are remembered,
// so validation does not pile "required value" on top of "expected a string" for the same field.
type problems struct {
	list []problem
	bad  map[string]bool
}

func (p *problems) add(path, format string, args ...any) {
	p.addClass(events.ErrInvalidArgument, path, format, args...)
}

func (p *problems) addClass(class error, path, format string, args ...any) {
	reason := format
	if len(args) > 0 {
		reason = fmt.Sprintf(format, args...)
	}
	if p.covered(path) {
		return
	}
	p.list = append(p.list, problem{path: path, reason: reason, class: class})
}

// addDecode records a decoding problem and marks the path so validation skips it.
func (p *problems) addDecode(path, format string, args ...any) {
	p.add(path, format, args...)
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[path] = true
}

// covered reports whether path or one of its parents failed to decode.
func (p *problems) covered(path string) bool {
	for q := path; q != ""; q = parentPath(q) {
		if p.bad[q] {
			return true
		}
	}
	return false
}

// inside reports whether a problem was already found at path or below it.
func (p *problems) inside(path string) bool {
	for q := range p.bad {
		if q == path || strings.HasPrefix(q, path+".") || strings.HasPrefix(q, path+"[") {
			return true
		}
	}
	return false
}

func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// join builds a field path: join("spec", "containers") = "spec.containers".
func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

func index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

// key is a path to a map entry whose key is user text (labels, selectors): metadata.labels[app].
func key(parent, k string) string { return parent + "[" + k + "]" }

// failure is a problem of one object of a request, ready for the wire.
type failure struct {
	label string // Deployment "web", or the document's origin when the kind is unknown
	doc   string
	problem
}

// requestError turns failures into the wire error: one summary line naming each failing object,
// and one cause per problem. The code is the class all problems share, or InvalidArgument when
// they differ (the request as a whole is not acceptable).
func requestError(fs []failure, suffix string) *api.Error {
	if len(fs) == 0 {
		return nil
	}
	class := fs[0].class
	for _, f := range fs[1:] {
		if !errors.Is(f.class, class) {
			class = events.ErrInvalidArgument
			break
		}
	}
	// Group by document too: two Services "web" in different namespaces are two objects.
	type object struct{ doc, label string }
	var order []object
	byObject := map[object][]failure{}
	for _, f := range fs {
		o := object{f.doc, f.label}
		if _, ok := byObject[o]; !ok {
			order = append(order, o)
		}
		byObject[o] = append(byObject[o], f)
	}
	var msg string
	if len(order) == 1 {
		msg = summary(order[0].label, byObject[order[0]])
	} else {
		// Several objects: name each with a count; the causes say the rest.
		parts := make([]string, len(order))
		for i, o := range order {
			n := len(byObject[o])
			parts[i] = fmt.Sprintf("%s (%d problem%s)", o.label, n, plural(n == 1, "", "s"))
		}
		msg = fmt.Sprintf("%d objects have problems: %s", len(order), strings.Join(parts, ", "))
	}
	if suffix != "" {
		msg += "; " + suffix
	}
	e := &api.Error{Code: events.Code(class), Message: msg}
	for _, f := range fs {
		e.Causes = append(e.Causes, api.Cause{Document: f.doc, Field: f.path, Reason: f.reason})
	}
	return e
}

// summary says what is wrong with one object in a few words: the whole problem when there is one,
// a count otherwise.
func summary(label string, fs []failure) string {
	first := fs[0]
	var s string
	if errors.Is(first.class, events.ErrInvalidArgument) || len(fs) > 1 {
		s = label + " is invalid"
		if len(fs) == 1 {
			s += ": " + fieldReason(first.problem)
		}
	} else if first.path == "" {
		s = first.reason // already names the object: pods "x" not found
	} else {
		s = label + ": " + fieldReason(first.problem)
	}
	if len(fs) > 1 {
		s += fmt.Sprintf(" (%d problems)", len(fs))
	}
	return s
}

func fieldReason(p problem) string {
	if p.path == "" {
		return p.reason
	}
	return p.path + ": " + p.reason
}

// objectLabel names an object for messages the way kubectl's errors do: Deployment "web".
func objectLabel(kind, name, where string) string {
	switch {
	case kind != "" && name != "":
		return fmt.Sprintf("%s %q", kind, name)
	case kind != "":
		return kind + " in " + where
	}
	return where
}
