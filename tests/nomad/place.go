package nomad

import (
	"fmt"
	"strings"
)

// reasonConstraint starts the reason Place gives for a node it rejects.
const reasonConstraint = "constraint not met"

// Place chooses the nodes for each group of job, in the order nodes are given, for the
// constraints the jobspecs use: attribute equality and inequality (=, ==, is, !=, not) on
// node.*, attr.* and meta.*, and distinct_hosts. A system job gets every feasible node; others
// get Count nodes. Any other constraint operator is an error rather than a guess. Place is
// no scheduler (no resources, spread, affinity or rescheduling): it tells a simulated
// datacenter which node runs what.
//
// The result maps group name → nodes; one node may appear more than once for a group without
// distinct_hosts.
func Place(job *Job, nodes []Node) (map[string][]Node, error) {
	out := map[string][]Node{}
	for _, g := range job.Groups {
		constraints := append(job.Block.Children("constraint"), g.Block.Children("constraint")...)
		for _, t := range g.Tasks {
			constraints = append(constraints, t.Block.Children("constraint")...)
		}
		distinct := false
		var feasible []Node
		var rejected []string
		for _, n := range nodes {
			ok, why, err := satisfies(constraints, n, &distinct)
			if err != nil {
				return nil, fmt.Errorf("%s: group %s: %w", job.File, g.Name, err)
			}
			if ok {
				feasible = append(feasible, n)
			} else {
				rejected = append(rejected, n.Name+": "+why)
			}
		}
		if job.Type == "system" || job.Type == "sysbatch" {
			out[g.Name] = feasible
			continue
		}
		if len(feasible) == 0 || (distinct && len(feasible) < g.Count) {
			return nil, fmt.Errorf("%s: group %s needs %d node(s), %d feasible (%s)", job.File, g.Name, g.Count, len(feasible), strings.Join(rejected, "; "))
		}
		for i := 0; i < g.Count; i++ {
			out[g.Name] = append(out[g.Name], feasible[i%len(feasible)])
		}
	}
	return out, nil
}

// satisfies says whether node n meets the attribute constraints; it records a distinct_hosts
// constraint in *distinct, which the caller applies across nodes.
func satisfies(constraints []*Block, n Node, distinct *bool) (bool, string, error) {
	attrs := nodeAttrs(n)
	for _, c := range constraints {
		op := c.Get("operator")
		if op == "" {
			op = "="
		}
		if op == "distinct_hosts" {
			if c.Get("value") != "false" {
				*distinct = true
			}
			continue
		}
		attr := strings.TrimSuffix(strings.TrimPrefix(c.Get("attribute"), "${"), "}")
		got, known := attrs[attr]
		want := c.Get("value")
		switch op {
		case "=", "==", "is":
			if !known || got != want {
				return false, fmt.Sprintf("%s: %s %s %s (node has %q)", reasonConstraint, attr, op, want, got), nil
			}
		case "!=", "not":
			if known && got == want {
				return false, fmt.Sprintf("%s: %s %s %s", reasonConstraint, attr, op, want), nil
			}
		default:
			return false, "", fmt.Errorf("constraint operator %q is not simulated by Place", op)
		}
	}
	return true, "", nil
}
