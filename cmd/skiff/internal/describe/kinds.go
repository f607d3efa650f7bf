package describe

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/table"
)

// Pod describes a pod.
func Pod(w io.Writer, p *events.Pod, evs Events, now time.Time) error {
	d := newDoc(w, now)
	m := &p.Metadata
	d.kv(0, "Name", m.Name)
	d.kv(0, "Namespace", m.Namespace)
	node := p.Spec.NodeName
	if node != "" && p.Status.HostIP != "" {
		node += "/" + p.Status.HostIP
	}
	d.kv(0, "Node", node)
	d.time(0, "Start Time", p.Status.StartTime)
	d.list(0, "Labels", labelLines(m.Labels))
	d.list(0, "Annotations", labelLines(m.Annotations))
	status := p.Status.Phase
	if m.DeletionTimestamp != nil {
		status = "Terminating (lasts " + table.Age(now.Sub(*m.DeletionTimestamp)) + ")"
	}
	d.kv(0, "Status", status)
	if m.DeletionTimestamp != nil {
		d.kv(0, "Termination Grace Period", strconv.FormatInt(p.Spec.GracePeriodSeconds(), 10)+"s")
	}
	if p.Status.Reason != "" {
		d.kv(0, "Reason", p.Status.Reason)
	}
	if p.Status.Message != "" {
		d.kv(0, "Message", oneLine(p.Status.Message))
	}
	d.kv(0, "IP", p.Status.PodIP)
	for _, o := range m.OwnerReferences {
		if o.Controller {
			d.kv(0, "Controlled By", o.Kind+"/"+o.Name)
		}
	}
	statuses := p.Status.ContainerStatuses
	if statuses == nil {
		statuses = []events.ContainerStatus{} // show "not reported" rather than nothing
	}
	if len(p.Spec.InitContainers) > 0 {
		inits := p.Status.InitContainerStatuses
		if inits == nil {
			inits = []events.ContainerStatus{}
		}
		containerList(d, 0, "Init Containers:", p.Spec.InitContainers, inits)
	}
	containers(d, 0, p.Spec.Containers, statuses)
	d.conditions(0, p.Status.Conditions)
	d.kv(0, "Restart Policy", orDefault(p.Spec.RestartPolicy, events.RestartAlways))
	d.list(0, "Node-Selectors", labelLines(p.Spec.NodeSelector))
	var tols []string
	for _, t := range p.Spec.Tolerations {
		tols = append(tols, toleration(t))
	}
	d.list(0, "Tolerations", tols)
	d.events(evs)
	return d.flush()
}

func toleration(t events.Toleration) string {
	s := t.Key
	if t.Operator == "Exists" {
		if s == "" {
			s = "op=Exists"
		} else {
			s += " op=Exists"
		}
	} else if t.Value != "" {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + t.Effect
	}
	if t.TolerationSeconds != nil {
		s += " for " + strconv.FormatInt(*t.TolerationSeconds, 10) + "s"
	}
	return s
}

// Deployment describes a Deployment and the pods its selector matches.
func Deployment(w io.Writer, dep *events.Deployment, pods Table, evs Events, now time.Time) error {
	d := newDoc(w, now)
	d.meta(&dep.Metadata, true)
	var sel map[string]string
	if dep.Spec.Selector != nil {
		sel = dep.Spec.Selector.MatchLabels
	}
	d.kv(0, "Selector", table.FormatLabels(sel))
	s := &dep.Status
	d.kv(0, "Replicas", fmt.Sprintf("%d desired | %d updated | %d total | %d available | %d unavailable",
		dep.Spec.DesiredReplicas(), s.UpdatedReplicas, s.Replicas, s.AvailableReplicas, s.UnavailableReplicas))
	d.kv(0, "Generation", fmt.Sprintf("%d (observed %d)", dep.Metadata.Generation, s.ObservedGeneration))
	strategy := orDefault(dep.Spec.Strategy.Type, "RollingUpdate")
	d.kv(0, "StrategyType", strategy)
	if strategy == "RollingUpdate" {
		unavail, surge := "25%", "25%"
		if ru := dep.Spec.Strategy.RollingUpdate; ru != nil {
			if ru.MaxUnavailable != nil {
				unavail = ru.MaxUnavailable.String()
			}
			if ru.MaxSurge != nil {
				surge = ru.MaxSurge.String()
			}
		}
		d.kv(0, "RollingUpdateStrategy", unavail+" max unavailable, "+surge+" max surge")
	}
	d.line(0, "Pod Template:")
	d.list(1, "Labels", labelLines(dep.Spec.Template.Metadata.Labels))
	containers(d, 1, dep.Spec.Template.Spec.Containers, nil)
	d.conditions(0, s.Conditions)
	d.table("Pods", pods, table.None)
	d.events(evs)
	return d.flush()
}

// Service describes a Service and its endpoints (nil if none were computed yet).
func Service(w io.Writer, svc *events.Service, ep *events.Endpoints, evs Events, now time.Time) error {
	d := newDoc(w, now)
	d.meta(&svc.Metadata, true)
	d.kv(0, "Selector", table.FormatLabels(svc.Spec.Selector))
	d.kv(0, "Type", orDefault(svc.Spec.Type, "ClusterIP"))
	d.kv(0, "IP", svc.Spec.ClusterIP)
	for _, p := range svc.Spec.Ports {
		name := p.Name
		if name == "" {
			name = "<unset>"
		}
		d.kv(0, "Port", name+"  "+strconv.Itoa(int(p.Port))+"/"+orTCP(p.Protocol))
		target := strconv.Itoa(int(p.Port))
		if p.TargetPort != nil {
			target = p.TargetPort.String()
		}
		d.kv(0, "TargetPort", target+"/"+orTCP(p.Protocol))
		d.kv(0, "Endpoints", portEndpoints(ep, p))
	}
	d.events(evs)
	return d.flush()
}

// portEndpoints lists ip:port of the endpoints of one service port.
func portEndpoints(ep *events.Endpoints, sp events.ServicePort) string {
	if ep == nil {
		return ""
	}
	var out []string
	for _, a := range ep.Addresses {
		for _, p := range a.Ports {
			if p.Name == sp.Name {
				out = append(out, a.IP+":"+strconv.Itoa(int(p.Port)))
			}
		}
	}
	const shown = 10
	if len(out) > shown {
		return strings.Join(out[:shown], ",") + fmt.Sprintf(" + %d more...", len(out)-shown)
	}
	return strings.Join(out, ",")
}

// Endpoints describes an Endpoints object.
func Endpoints(w io.Writer, ep *events.Endpoints, evs Events, now time.Time) error {
	d := newDoc(w, now)
	d.meta(&ep.Metadata, true)
	if len(ep.Addresses) == 0 {
		d.kv(0, "Addresses", "")
	} else {
		d.line(0, "Addresses:")
		d.line(1, "IP\tPod\tNode\tPorts")
		d.line(1, "--\t---\t----\t-----")
		for _, a := range ep.Addresses {
			var ports []string
			for _, p := range a.Ports {
				s := strconv.Itoa(int(p.Port)) + "/" + orTCP(p.Protocol)
				if p.Name != "" {
					s = p.Name + " " + s
				}
				ports = append(ports, s)
			}
			d.line(1, "%s\t%s\t%s\t%s", a.IP, a.PodName, orDefault(a.NodeName, table.None), strings.Join(ports, ", "))
		}
	}
	d.events(evs)
	return d.flush()
}

// NodeUsage is what is requested of a node against what it has, as "requested/capacity".
type NodeUsage struct {
	CPU, Memory, Pods string
}

// Node describes a node, what is requested of it and the pods on it.
func Node(w io.Writer, n *events.Node, usage *NodeUsage, pods Table, evs Events, now time.Time) error {
	d := newDoc(w, now)
	d.kv(0, "Name", n.Metadata.Name)
	d.list(0, "Labels", labelLines(n.Metadata.Labels))
	d.time(0, "CreationTimestamp", n.Metadata.CreationTimestamp)
	var taints []string
	for _, t := range n.Spec.Taints {
		taints = append(taints, t.String())
	}
	d.list(0, "Taints", taints)
	d.kv(0, "Unschedulable", strconv.FormatBool(n.Spec.Unschedulable))
	d.conditions(0, n.Status.Conditions)
	if len(n.Status.Addresses) == 0 {
		d.kv(0, "Addresses", "")
	} else {
		d.line(0, "Addresses:")
		for _, a := range n.Status.Addresses {
			d.line(1, "%s:\t%s", a.Type, a.Address)
		}
	}
	quantities(d, "Capacity", n.Status.Capacity)
	quantities(d, "Allocatable", n.Status.Allocatable)
	d.kv(0, "PodCIDR", n.Spec.PodCIDR)
	if usage != nil {
		d.line(0, "Allocated resources:")
		d.line(1, "Resource\tRequests/Allocatable")
		d.line(1, "--------\t--------------------")
		d.line(1, "cpu\t%s", usage.CPU)
		d.line(1, "memory\t%s", usage.Memory)
		d.line(1, "pods\t%s", usage.Pods)
	}
	d.table("Non-terminated Pods", pods, "(0 in total)")
	d.events(evs)
	return d.flush()
}

// quantities prints a node's resource list in Kubernetes units: the fold stores memory in bytes,
// which nobody reads comfortably.
func quantities(d *doc, key string, r events.ResourceList) {
	if len(r) == 0 {
		d.kv(0, key, "")
		return
	}
	d.line(0, "%s:", key)
	for _, k := range []string{"cpu", "memory", "pods"} {
		v, ok := r[k]
		if !ok {
			continue
		}
		switch k {
		case "cpu":
			if m, err := events.ParseCPU(v); err == nil {
				v = table.FormatCPU(m)
			}
		case "memory":
			if b, err := events.ParseMemory(v); err == nil {
				v = table.FormatMemory(b)
			}
		}
		d.line(1, "%s:\t%s", k, v)
	}
}

// Namespace describes a namespace.
func Namespace(w io.Writer, ns *events.Namespace, evs Events, now time.Time) error {
	d := newDoc(w, now)
	d.kv(0, "Name", ns.Metadata.Name)
	d.list(0, "Labels", labelLines(ns.Metadata.Labels))
	d.list(0, "Annotations", labelLines(ns.Metadata.Annotations))
	d.kv(0, "Status", orDefault(ns.Status.Phase, "Active"))
	d.events(evs)
	return d.flush()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
