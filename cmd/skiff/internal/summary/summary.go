package summary

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"skiff.dev/events"
	"skiff.dev/events/table"
)

// maxLen bounds a summary so one event stays one line on a terminal even when it carries a long
// message or hundreds of endpoints.
const maxLen = 160

// Of returns ev's one-line summary; "" when there is nothing to add to the event's type. An
// event whose payload was not decoded summarises as "".
func Of(ev *events.Event) string {
	s := of(ev)
	s = strings.Join(strings.Fields(s), " ") // one line, whatever a message held
	if r := []rune(s); len(r) > maxLen {
		s = string(r[:maxLen-3]) + "..."
	}
	return s
}

func of(ev *events.Event) string {
	node := nodeOf(ev.Subject)
	switch p := ev.Data.(type) {
	case *events.NamespaceApplied:
		return kv("labels", table.FormatLabels(p.Namespace.Metadata.Labels))
	case *events.NodeRegistered:
		return join(kv("address", p.Address), "cpu="+table.FormatCPU(p.MilliCPU), "memory="+table.FormatMemory(p.Memory),
			"pods="+strconv.Itoa(int(p.MaxPods)), kv("labels", table.FormatLabels(p.Labels)), taints(p.Taints))
	case *events.NodePodCIDRAssigned:
		return "podCIDR=" + p.PodCIDR
	case *events.NodeReady:
		return kv("reason", p.Reason)
	case *events.NodeNotReady:
		return join(kv("reason", p.Reason), p.Message)
	case *events.PodCreated:
		return join(owner(p.Pod.Metadata.OwnerReferences), images(p.Pod.Spec.Containers))
	case *events.PodScheduled:
		s := join("node="+p.Node, "score="+strconv.FormatInt(p.Score, 10))
		if p.Nodes > 0 {
			s += fmt.Sprintf(" feasible=%d/%d", p.Feasible, p.Nodes)
		}
		return s
	case *events.PodUnschedulable:
		return p.Message
	case *events.PodDeletionRequested:
		return fmt.Sprintf("grace=%ds", p.GracePeriodSeconds)
	case *events.PodBound:
		return "node=" + node
	case *events.PodStopRequested:
		return fmt.Sprintf("node=%s grace=%ds", node, p.GracePeriodSeconds)
	case *events.PodStatusReported:
		return podStatus(node, &p.Status)
	case *events.PodTerminated:
		return "node=" + node
	case *events.DeploymentApplied:
		d := &p.Deployment
		return join(fmt.Sprintf("generation=%d replicas=%d", d.Metadata.Generation, d.Spec.DesiredReplicas()), images(d.Spec.Template.Spec.Containers))
	case *events.DeploymentScaled:
		return fmt.Sprintf("replicas=%d generation=%d", p.Replicas, p.Generation)
	case *events.DeploymentRolloutProgressed:
		s := &p.Status
		out := fmt.Sprintf("replicas=%d updated=%d ready=%d available=%d observedGeneration=%d",
			s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas, s.ObservedGeneration)
		for _, c := range s.Conditions {
			if c.Status != "True" && c.Reason != "" {
				out += " " + c.Type + "=" + c.Reason
			}
		}
		return out
	case *events.ServiceApplied:
		return join(kv("clusterIP", p.Service.Spec.ClusterIP), servicePorts(p.Service.Spec.Ports), kv("selector", table.FormatLabels(p.Service.Spec.Selector)))
	case *events.EndpointsUpdated:
		return endpoints(p.Addresses)
	case *events.LeaderElected:
		return fmt.Sprintf("term=%d replica=%s", p.Term, p.Replica)
	case *events.LeaderWrote:
		return fmt.Sprintf("term=%d events=%d", p.Term, p.Events)
	}
	return ""
}

// nodeOf is the node of a bind or status subject: where the event happened.
func nodeOf(subject string) string {
	s, err := events.ParseSubject(subject)
	if err != nil {
		return ""
	}
	return s.Node
}

func podStatus(node string, st *events.PodStatus) string {
	ready, restarts := 0, int32(0)
	var reasons []string
	for _, c := range st.ContainerStatuses {
		restarts += c.RestartCount
		if c.Ready {
			ready++
		}
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "":
			reasons = append(reasons, c.Name+":"+c.State.Waiting.Reason)
		case c.State.Terminated != nil:
			r := c.State.Terminated.Reason
			if r == "" {
				r = "exit " + strconv.Itoa(int(c.State.Terminated.ExitCode))
			}
			reasons = append(reasons, c.Name+":"+r)
		}
	}
	s := join("node="+node, "phase="+st.Phase, kv("ip", st.PodIP),
		fmt.Sprintf("ready=%d/%d", ready, len(st.ContainerStatuses)))
	if restarts > 0 {
		s += " restarts=" + strconv.Itoa(int(restarts))
	}
	return join(s, strings.Join(reasons, ","), kv("reason", st.Reason), st.Message)
}

func owner(refs []events.OwnerReference) string {
	for _, o := range refs {
		if o.Controller {
			return "owner=" + o.Kind + "/" + o.Name
		}
	}
	return ""
}

func images(cs []events.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Image)
	}
	return kv("image", strings.Join(out, ","))
}

func taints(ts []events.Taint) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.String())
	}
	return kv("taints", strings.Join(out, ","))
}

func servicePorts(ps []events.ServicePort) string {
	var out []string
	for _, p := range ps {
		s := strconv.Itoa(int(p.Port)) + "/" + cmp.Or(p.Protocol, "TCP")
		if p.TargetPort != nil && p.TargetPort.String() != strconv.Itoa(int(p.Port)) {
			s += "->" + p.TargetPort.String()
		}
		out = append(out, s)
	}
	return kv("ports", strings.Join(out, ","))
}

// endpoints lists the addresses, sorted so that two updates can be compared by eye.
func endpoints(as []events.EndpointAddress) string {
	if len(as) == 0 {
		return "no ready addresses"
	}
	ips := make([]string, 0, len(as))
	for _, a := range as {
		ips = append(ips, a.IP)
	}
	slices.Sort(ips)
	n := "addresses"
	if len(ips) == 1 {
		n = "address"
	}
	return fmt.Sprintf("%d %s: %s", len(ips), n, strings.Join(ips, ","))
}

func kv(k, v string) string {
	if v == "" {
		return ""
	}
	return k + "=" + v
}

func join(parts ...string) string {
	out := parts[:0:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
