package main

import (
	"strings"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/table"
)

// argsRange rejects a command line with fewer than lo or more than hi arguments, with a usage
// hint naming what the command takes.
func argsRange(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usage(cmd, "%s takes %s, got %d argument%s", cmd.CommandPath(), what, len(args), plural(len(args)))
		}
		return nil
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// resource resolves a kind the way kubectl does: any alias, singular or plural.
func resource(cmd *cobra.Command, kind string) (table.Resource, error) {
	res, ok := table.Lookup(kind)
	if !ok {
		var known []string
		for _, r := range table.Resources {
			known = append(known, r.Plural)
		}
		return res, usage(cmd, "the server doesn't have a resource type %q (known: %s)", kind, strings.Join(known, ", "))
	}
	return res, nil
}

// kindAndName reads "KIND NAME", "KIND/NAME" or, when the name is optional, "KIND".
func kindAndName(cmd *cobra.Command, args []string, nameRequired bool) (table.Resource, string, error) {
	kind, name := args[0], ""
	if k, n, ok := strings.Cut(kind, "/"); ok {
		if len(args) > 1 {
			return table.Resource{}, "", usage(cmd, "there is a name in %q already; give either KIND/NAME or KIND NAME", kind)
		}
		kind, name = k, n
	} else if len(args) > 1 {
		name = args[1]
	}
	res, err := resource(cmd, kind)
	if err != nil {
		return res, "", err
	}
	if nameRequired && name == "" {
		return res, "", usage(cmd, "%s needs the name of the %s", cmd.CommandPath(), res.Singular)
	}
	return res, name, nil
}

// parseSelector reads a label selector of the only form Skiff supports: k=v[,k=v...] (also k==v).
func parseSelector(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		k, v, ok := strings.Cut(term, "=")
		v = strings.TrimPrefix(v, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.HasSuffix(k, "!") || strings.ContainsAny(k+v, " ()!") {
			return nil, errorf(events.ErrInvalidArgument, "label selector %q: %q is not of the form key=value (only equality selectors are supported)", s, term)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// namespaceOf is the namespace a resource's objects live in: ns for namespaced kinds, none for
// nodes and namespaces.
func namespaceOf(res table.Resource, ns string) string {
	if !res.Namespaced {
		return ""
	}
	return ns
}

// subjectNamespace is the namespace token of a resource's subjects.
func subjectNamespace(res table.Resource, ns string) string {
	if !res.Namespaced {
		return events.ClusterScope
	}
	return ns
}
