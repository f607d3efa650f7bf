package table

import (
	"strings"

	"skiff.dev/events"
)

// Plural names of the kinds, as api.GetRequest.Kind carries them.
const (
	Pods        = "pods"
	Deployments = "deployments"
	Services    = "services"
	Endpoints   = "endpoints"
	Nodes       = "nodes"
	Namespaces  = "namespaces"
)

// Resource describes one kind under every name people use for it.
type Resource struct {
	// Plural is the canonical name, used in queries and by Columns and Rows: "deployments".
	Plural string
	// Singular is "deployment".
	Singular string
	// Kind is the manifest kind: "Deployment".
	Kind string
	// Group is the API group, "" for the core group.
	Group string
	// ShortNames are kubectl's aliases: "deploy".
	ShortNames []string
	// Namespaced is false for nodes and namespaces.
	Namespaced bool
	// Subject is the subject kind of the resource's own events (events.KindDeployment).
	Subject string
}

// Resources lists every kind, in the order `skiff events replay` prints them: what runs where
// first, then what routes to it.
var Resources = []Resource{
	{Plural: Nodes, Singular: "node", Kind: "Node", ShortNames: []string{"no"}, Subject: events.KindNode},
	{Plural: Namespaces, Singular: "namespace", Kind: "Namespace", ShortNames: []string{"ns"}, Subject: events.KindNamespace},
	{Plural: Deployments, Singular: "deployment", Kind: "Deployment", Group: "apps", ShortNames: []string{"deploy"}, Namespaced: true, Subject: events.KindDeployment},
	{Plural: Pods, Singular: "pod", Kind: "Pod", ShortNames: []string{"po"}, Namespaced: true, Subject: events.KindPod},
	{Plural: Services, Singular: "service", Kind: "Service", ShortNames: []string{"svc"}, Namespaced: true, Subject: events.KindService},
	{Plural: Endpoints, Singular: "endpoints", Kind: "Endpoints", ShortNames: []string{"ep"}, Namespaced: true, Subject: events.KindEndpoints},
}

// Lookup finds the resource a user means by name: plural, singular, short name or manifest
// kind, in any case, optionally qualified by its group ("deployments.apps").
func Lookup(name string) (Resource, bool) {
	n := strings.ToLower(name)
	for _, r := range Resources {
		n := n
		if r.Group != "" {
			n = strings.TrimSuffix(n, "."+r.Group)
		}
		if n == r.Plural || n == r.Singular || n == strings.ToLower(r.Kind) {
			return r, true
		}
		for _, s := range r.ShortNames {
			if n == s {
				return r, true
			}
		}
	}
	return Resource{}, false
}

// Qualified is the plural with its group, as kubectl names a resource in errors:
// `deployments.apps "web" not found`.
func (r Resource) Qualified() string {
	if r.Group == "" {
		return r.Plural
	}
	return r.Plural + "." + r.Group
}

// Ref is the singular with its group, as kubectl names an object in results and with -o name:
// "deployment.apps/web".
func (r Resource) Ref(name string) string {
	if r.Group == "" {
		return r.Singular + "/" + name
	}
	return r.Singular + "." + r.Group + "/" + name
}
