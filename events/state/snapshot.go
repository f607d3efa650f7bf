package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unsafe"

	"skiff.dev/events"
)

// SnapshotLayout is the version of the layout MarshalSnapshot writes. Any change to what the
// fold keeps (a field of Pod, Node, events.PodSpec, ...) changes the layout: the snapshot
// package refuses a snapshot of another layout and replays the log instead. The field inventory
// in testdata/snapshot-fields.golden makes a changed type fail the tests until the layout
// follows it and this number goes up.
const SnapshotLayout = 1

// ErrSnapshotCorrupt is what UnmarshalSnapshot returns, wrapped with where, for a body it
// cannot read: it never panics and never returns a half-read state.
var ErrSnapshotCorrupt = errors.New("corrupt snapshot body")

// The body is one pass over the state (all integers varints, strings length-prefixed):
//
//	seq, leader, namespaces, nodes, deployments, services, endpoints, templates, pods,
//	subject sequences, cluster IPs, pod CIDRs, endpoints deletions, end mark
//
// Three kinds of references keep the sharing the fold has (share.go): string maps (labels,
// annotations, selectors, resource lists), owner reference lists and pod specs without their
// node name are written once, the first time they are met, and referred to by number after
// that; the encoder knows them by identity (the same backing array or map), so what the live
// state shares is shared again after decoding, and nothing else is. 0 is nil. Low-variety
// strings (phases, images, node names, condition types) are symbols, written once too. Slices
// and maps keep nil apart from empty (their length is written plus one). Indexes that are a
// function of the objects (pending pods, pods by node and by owner) are rebuilt on load;
// those that carry history (cluster IPs, pod CIDRs, endpoints deletions) are written.

const snapshotEnd = 0x5e1f

// Frozen is a copy of what a snapshot holds of a state at one moment, for MarshalSnapshot to
// write after the lock that Freeze ran under is gone.
type Frozen struct {
	s    *State // its Pods are in pods
	pods []keyedPod
}

type keyedPod struct {
	k Key
	p *Pod
}

// Freeze copies what of s a snapshot holds and Apply changes in place: each pod (its conditions
// too), node, Deployment and template, the subject sequences and the small indexes. Everything
// Apply only ever replaces whole (specs, labels, Services, Endpoints, namespaces, statuses'
// slices) is shared, so the copy costs a few hundred bytes a pod and keeps the sharing that
// MarshalSnapshot writes. At 150,000 pods it takes a tenth of the time of MarshalSnapshot
// itself, which is what a writer needs under the projection's lock.
//
// It reads s only: call it under a read lock.
func (s *State) Freeze() *Frozen {
	f := &State{Seq: s.Seq, Leader: s.Leader,
		Namespaces: maps.Clone(s.Namespaces), Services: maps.Clone(s.Services), Endpoints: maps.Clone(s.Endpoints),
		subjectSeq: maps.Clone(s.subjectSeq), clusterIPs: maps.Clone(s.clusterIPs), podCIDRs: maps.Clone(s.podCIDRs),
		endpointsDeleted: maps.Clone(s.endpointsDeleted)}
	// In a slice, not a map: building a map of 150,000 pods took longer than copying them.
	pods := make([]Pod, len(s.Pods))
	keyed := make([]keyedPod, 0, len(s.Pods))
	for k, p := range s.Pods {
		c := &pods[len(keyed)]
		*c = *p
		// setCondition writes a condition in place.
		c.Status.Conditions = slices.Clone(p.Status.Conditions)
		keyed = append(keyed, keyedPod{k, c})
	}
	f.Nodes = make(map[string]*Node, len(s.Nodes))
	for name, n := range s.Nodes {
		c := *n
		f.Nodes[name] = &c
	}
	f.Deployments = make(map[Key]*Deployment, len(s.Deployments))
	for k, d := range s.Deployments {
		c := *d
		f.Deployments[k] = &c
	}
	f.templates = make(map[string]*template, len(s.templates))
	for uid, t := range s.templates {
		c := *t
		f.templates[uid] = &c
	}
	return &Frozen{s: f, pods: keyed}
}

// MarshalSnapshot is State.MarshalSnapshot of the state frozen. Several may run at once.
func (f *Frozen) MarshalSnapshot(buf []byte, kinds []string) ([]byte, error) {
	return f.s.marshal(buf, kinds, len(f.pods), func(yield func(Key, *Pod) bool) {
		for _, kp := range f.pods {
			if !yield(kp.k, kp.p) {
				return
			}
		}
	})
}

// MarshalSnapshot appends the state's snapshot body to buf and returns it. kinds limits it to
// the objects and subjects of those kinds (see Restrict; nil is everything).
//
// It reads the state only: several may run at once under a read lock, none beside Apply. A
// writer that must not hold the lock that long freezes the state under it (Freeze) and writes
// the copy after.
func (s *State) MarshalSnapshot(buf []byte, kinds []string) ([]byte, error) {
	return s.marshal(buf, kinds, len(s.Pods), maps.All(s.Pods))
}

// marshal writes s with the pods that pods yields (npods of them) instead of s.Pods.
func (s *State) marshal(buf []byte, kinds []string, npods int, pods iter.Seq2[Key, *Pod]) ([]byte, error) {
	keep, err := kindSet(kinds)
	if err != nil {
		return buf, err
	}
	// Room for all of it at once: growing by doubling under the caller's lock copied the body
	// over and over (half the time at 15,000 pods).
	if keep.all {
		buf = slices.Grow(buf, 300*npods+64*len(s.subjectSeq)+400*len(s.Nodes)+4096)
	}
	e := &snapEnc{b: buf, syms: map[string]uint64{}, maps: map[uintptr]uint64{},
		owners: map[ownersKey]uint64{}, specs: map[specKey]uint64{}}
	e.uvarint(s.Seq)
	leader := s.Leader
	if !keep.has(events.KindLeader) {
		leader = Leader{}
	}
	e.str(leader.Replica)
	e.uvarint(leader.Term)
	e.uvarint(leader.Seq)
	e.time(leader.Since)

	namespaces := s.Namespaces
	if !keep.has(events.KindNamespace) {
		namespaces = New().Namespaces
	}
	e.uvarint(uint64(len(namespaces)))
	for name, ns := range namespaces {
		e.typeMeta(ns.TypeMeta)
		e.meta(&ns.Metadata)
		e.sym(ns.Status.Phase)
		e.keyOf(Key{Name: name}, Key{Name: ns.Metadata.Name})
	}

	e.count(keep.has(events.KindNode), len(s.Nodes))
	if keep.has(events.KindNode) {
		// Without pods, a node has nothing requested: a projection of the node subjects alone
		// never adds anything up.
		pods := keep.pods()
		for name, n := range s.Nodes {
			e.node(n, pods)
			e.keyOf(Key{Name: name}, Key{Name: n.Metadata.Name})
		}
	}
	e.count(keep.has(events.KindDeployment), len(s.Deployments))
	if keep.has(events.KindDeployment) {
		for k, d := range s.Deployments {
			e.deployment(d)
			e.keyOf(k, Key{d.Metadata.Namespace, d.Metadata.Name})
		}
	}
	e.count(keep.has(events.KindService), len(s.Services))
	if keep.has(events.KindService) {
		for k, sv := range s.Services {
			e.service(sv)
			e.keyOf(k, Key{sv.Metadata.Namespace, sv.Metadata.Name})
		}
	}
	e.count(keep.has(events.KindEndpoints), len(s.Endpoints))
	if keep.has(events.KindEndpoints) {
		for k, ep := range s.Endpoints {
			e.endpoints(ep)
			e.keyOf(k, Key{ep.Metadata.Namespace, ep.Metadata.Name})
		}
	}
	e.count(keep.pods(), len(s.templates))
	if keep.pods() {
		for uid, t := range s.templates {
			e.sym(uid)
			e.spec(&t.spec)
			e.strMap(t.labels)
			e.strMap(t.annotations)
			e.ownerRefs(t.owners)
		}
	}
	e.count(keep.pods(), npods)
	if keep.pods() {
		for k, p := range pods {
			e.pod(p)
			e.keyOf(k, p.Key())
		}
	}

	n := 0
	for subject := range s.subjectSeq {
		if keep.subject(subject) {
			n++
		}
	}
	e.uvarint(uint64(n))
	for subject, seq := range s.subjectSeq {
		if keep.subject(subject) {
			e.str(subject)
			e.uvarint(seq)
		}
	}
	e.count(keep.has(events.KindService), len(s.clusterIPs))
	if keep.has(events.KindService) {
		for ip, k := range s.clusterIPs {
			e.str(ip)
			e.key(k)
		}
	}
	e.count(keep.has(events.KindNode), len(s.podCIDRs))
	if keep.has(events.KindNode) {
		for cidr, node := range s.podCIDRs {
			e.str(cidr)
			e.sym(node)
		}
	}
	e.count(keep.has(events.KindService), len(s.endpointsDeleted))
	if keep.has(events.KindService) {
		for k, seq := range s.endpointsDeleted {
			e.key(k)
			e.uvarint(seq)
		}
	}
	e.uvarint(snapshotEnd)
	return e.b, nil
}

// Restrict drops from s whatever a projection that follows only kinds' subjects would never
// have folded: the objects and subject sequences of other kinds, and the node requests that
// only pod events add up. What is left equals such a projection's state at s.Seq. kinds may not
// name some pod kinds without the others (pod, bind and status fold into the same pods).
func (s *State) Restrict(kinds []string) error {
	keep, err := kindSet(kinds)
	if err != nil || keep.all {
		return err
	}
	fresh := New()
	if !keep.has(events.KindNamespace) {
		s.Namespaces = fresh.Namespaces
	}
	if !keep.has(events.KindNode) {
		s.Nodes, s.podCIDRs = fresh.Nodes, fresh.podCIDRs
	} else if !keep.pods() {
		for _, n := range s.Nodes {
			n.RequestedCPU, n.RequestedMemory, n.PodCount = 0, 0, 0
			n.RequestedEphemeralStorage, n.RequestedExtended = 0, nil
		}
	}
	if !keep.pods() {
		s.Pods, s.pending, s.podsByNode, s.podsByOwner, s.templates = fresh.Pods, fresh.pending, fresh.podsByNode, fresh.podsByOwner, fresh.templates
	}
	if !keep.has(events.KindDeployment) {
		s.Deployments = fresh.Deployments
	}
	if !keep.has(events.KindService) {
		s.Services, s.clusterIPs, s.endpointsDeleted = fresh.Services, fresh.clusterIPs, fresh.endpointsDeleted
	}
	if !keep.has(events.KindEndpoints) {
		s.Endpoints = fresh.Endpoints
	}
	if !keep.has(events.KindLeader) {
		s.Leader = Leader{}
	}
	for subject := range s.subjectSeq {
		if !keep.subject(subject) {
			delete(s.subjectSeq, subject)
		}
	}
	return nil
}

// allKinds are the subject kinds the fold knows.
var allKinds = []string{events.KindPod, events.KindBind, events.KindStatus, events.KindDeployment, events.KindService,
	events.KindEndpoints, events.KindNamespace, events.KindNode, events.KindLeader}

// kinds is a set of subject kinds; all when made from nil.
type kinds struct {
	all bool
	set map[string]bool
}

func kindSet(list []string) (kinds, error) {
	if list == nil {
		return kinds{all: true}, nil
	}
	k := kinds{set: map[string]bool{}}
	for _, kind := range list {
		if !slices.Contains(allKinds, kind) {
			return k, fmt.Errorf("snapshot of kind %q: no such kind: %w", kind, events.ErrInvalidArgument)
		}
		k.set[kind] = true
	}
	if p, b, st := k.set[events.KindPod], k.set[events.KindBind], k.set[events.KindStatus]; (p || b || st) && !(p && b && st) {
		return k, fmt.Errorf("a snapshot holds pod, bind and status subjects together or none of them: %w", events.ErrInvalidArgument)
	}
	return k, nil
}

func (k kinds) has(kind string) bool { return k.all || k.set[kind] }
func (k kinds) pods() bool           { return k.has(events.KindPod) }

// subject reports whether subject is of a kept kind; unreadable subjects (skipped events) go
// with the whole state only.
func (k kinds) subject(subject string) bool {
	if k.all {
		return true
	}
	rest, ok := strings.CutPrefix(subject, events.SubjectRoot+".")
	if !ok {
		return false
	}
	kind, _, _ := strings.Cut(rest, ".")
	return k.set[kind]
}

// snapEnc writes a snapshot body.
type snapEnc struct {
	b      []byte
	syms   map[string]uint64
	maps   map[uintptr]uint64
	owners map[ownersKey]uint64
	specs  map[specKey]uint64
}

type ownersKey struct {
	p *events.OwnerReference
	n int
}

// specKey is a spec's identity without its node name: the fold copies the template's spec
// struct into each pod (sharing its slices and maps) and sets only the node name afterwards.
type specKey struct {
	containers   *events.Container
	nContainers  int
	inits        *events.Container
	nInits       int
	restart      string
	grace        *int64
	nodeSelector uintptr
	host, sub    string
	tolerations  *events.Toleration
	nTolerations int
}

func (e *snapEnc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *snapEnc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *snapEnc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *snapEnc) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// sym writes a string that recurs: its number, followed by the string the first time.
func (e *snapEnc) sym(s string) {
	if s == "" {
		e.b = append(e.b, 0)
		return
	}
	if id, ok := e.syms[s]; ok {
		e.uvarint(id)
		return
	}
	id := uint64(len(e.syms) + 1)
	e.syms[s] = id
	e.uvarint(id)
	e.str(s)
}

// count writes n, or 0 for a section left out.
func (e *snapEnc) count(kept bool, n int) {
	if !kept {
		n = 0
	}
	e.uvarint(uint64(n))
}

// length writes a slice's length plus one, 0 for nil.
func length[T any](e *snapEnc, s []T) {
	if s == nil {
		e.b = append(e.b, 0)
		return
	}
	e.uvarint(uint64(len(s)) + 1)
}

// ref writes a shared value's number, and the value the first time (0 for nil).
func ref[K comparable](e *snapEnc, table map[K]uint64, k K, write func()) {
	if id, ok := table[k]; ok {
		e.uvarint(id)
		return
	}
	id := uint64(len(table) + 1)
	table[k] = id
	e.uvarint(id)
	write()
}

// Time tags: a time is nil (pointers only), UTC, or at a fixed offset from it.
const (
	timeNil = iota
	timeUTC
	timeOffset
)

func (e *snapEnc) time(t time.Time) {
	_, off := t.Zone()
	if off == 0 {
		e.b = append(e.b, timeUTC)
	} else {
		e.b = append(e.b, timeOffset)
		e.varint(int64(off))
	}
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

func (e *snapEnc) timePtr(t *time.Time) {
	if t == nil {
		e.b = append(e.b, timeNil)
		return
	}
	e.time(*t)
}

func (e *snapEnc) int32Ptr(v *int32) {
	if v == nil {
		e.int64Ptr(nil)
		return
	}
	w := int64(*v)
	e.int64Ptr(&w)
}

func (e *snapEnc) int64Ptr(v *int64) {
	if v == nil {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.varint(*v)
}

func (e *snapEnc) strMap(m map[string]string) {
	if m == nil {
		e.b = append(e.b, 0)
		return
	}
	ref(e, e.maps, reflect.ValueOf(m).Pointer(), func() {
		e.uvarint(uint64(len(m)))
		// In key order, so that equal maps encode alike.
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			e.sym(k)
			e.str(m[k])
		}
	})
}

func (e *snapEnc) strs(s []string) {
	length(e, s)
	for _, v := range s {
		e.str(v)
	}
}

// keyOf writes the key an object is kept under: nothing more than a 0 when it is the one its
// metadata names, as the fold makes it (a payload could name another).
func (e *snapEnc) keyOf(k, meta Key) {
	if k == meta {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.key(k)
}

func (e *snapEnc) key(k Key) {
	e.sym(k.Namespace)
	e.str(k.Name)
}

func (e *snapEnc) typeMeta(t events.TypeMeta) {
	e.sym(t.APIVersion)
	e.sym(t.Kind)
}

func (e *snapEnc) meta(m *events.ObjectMeta) {
	e.str(m.Name)
	e.sym(m.Namespace)
	e.str(m.UID)
	e.varint(m.Generation)
	e.strMap(m.Labels)
	e.strMap(m.Annotations)
	e.timePtr(m.CreationTimestamp)
	e.timePtr(m.DeletionTimestamp)
	e.ownerRefs(m.OwnerReferences)
}

func (e *snapEnc) ownerRefs(o []events.OwnerReference) {
	if o == nil {
		e.b = append(e.b, 0)
		return
	}
	ref(e, e.owners, ownersKey{unsafe.SliceData(o), len(o)}, func() {
		e.uvarint(uint64(len(o)))
		for _, r := range o {
			e.sym(r.APIVersion)
			e.sym(r.Kind)
			e.str(r.Name)
			e.sym(r.UID)
			e.bool(r.Controller)
		}
	})
}

func (e *snapEnc) cause(c events.Cause) {
	e.str(c.ID)
	e.str(c.CorrelationID)
	e.str(c.Traceparent)
	e.uvarint(c.Seq)
}

func (e *snapEnc) conditions(cs []events.Condition) {
	length(e, cs)
	for i := range cs {
		c := &cs[i]
		e.sym(c.Type)
		e.sym(c.Status)
		e.sym(c.Reason)
		e.str(c.Message)
		e.timePtr(c.LastTransitionTime)
		e.timePtr(c.LastUpdateTime)
	}
}

// spec writes a pod spec but its node name, shared by identity.
func (e *snapEnc) spec(s *events.PodSpec) {
	k := specKey{unsafe.SliceData(s.Containers), len(s.Containers), unsafe.SliceData(s.InitContainers), len(s.InitContainers),
		s.RestartPolicy, s.TerminationGracePeriodSeconds, 0, s.Hostname, s.Subdomain, unsafe.SliceData(s.Tolerations), len(s.Tolerations)}
	if s.NodeSelector != nil {
		k.nodeSelector = reflect.ValueOf(s.NodeSelector).Pointer()
	}
	// A nil spec key would still be found again; the zero spec is just written once.
	ref(e, e.specs, k, func() {
		length(e, s.Containers)
		for i := range s.Containers {
			e.container(&s.Containers[i])
		}
		length(e, s.InitContainers)
		for i := range s.InitContainers {
			e.container(&s.InitContainers[i])
		}
		e.sym(s.RestartPolicy)
		e.str(s.Hostname)
		e.str(s.Subdomain)
		e.int64Ptr(s.TerminationGracePeriodSeconds)
		e.strMap(s.NodeSelector)
		length(e, s.Tolerations)
		for _, t := range s.Tolerations {
			e.sym(t.Key)
			e.sym(t.Operator)
			e.str(t.Value)
			e.sym(t.Effect)
			e.int64Ptr(t.TolerationSeconds)
		}
	})
}

func (e *snapEnc) container(c *events.Container) {
	e.sym(c.Name)
	e.sym(c.Image)
	e.strs(c.Command)
	e.strs(c.Args)
	length(e, c.Env)
	for _, v := range c.Env {
		e.sym(v.Name)
		e.str(v.Value)
		e.json(v.ValueFrom)
	}
	e.sym(c.ImagePullPolicy)
	e.str(c.WorkingDir)
	length(e, c.Ports)
	for _, p := range c.Ports {
		e.sym(p.Name)
		e.varint(int64(p.ContainerPort))
		e.sym(p.Protocol)
	}
	e.strMap(c.Resources.Requests)
	e.strMap(c.Resources.Limits)
}

func (e *snapEnc) containerState(s *events.ContainerState) {
	var flags byte
	if s.Waiting != nil {
		flags |= 1
	}
	if s.Running != nil {
		flags |= 2
	}
	if s.Terminated != nil {
		flags |= 4
	}
	e.b = append(e.b, flags)
	if w := s.Waiting; w != nil {
		e.sym(w.Reason)
		e.str(w.Message)
	}
	if r := s.Running; r != nil {
		e.timePtr(r.StartedAt)
	}
	if t := s.Terminated; t != nil {
		e.varint(int64(t.ExitCode))
		e.varint(int64(t.Signal))
		e.sym(t.Reason)
		e.str(t.Message)
		e.timePtr(t.StartedAt)
		e.timePtr(t.FinishedAt)
	}
}

func (e *snapEnc) pod(p *Pod) {
	e.typeMeta(p.TypeMeta)
	e.meta(&p.Metadata)
	e.spec(&p.Spec)
	e.sym(p.Spec.NodeName)
	st := &p.Status
	e.sym(st.Phase)
	e.sym(st.Reason)
	e.str(st.Message)
	e.sym(st.HostIP)
	e.str(st.PodIP)
	e.timePtr(st.StartTime)
	e.conditions(st.Conditions)
	e.containerStatuses(st.ContainerStatuses)
	e.containerStatuses(st.InitContainerStatuses)
	e.varint(p.MilliCPU)
	e.varint(p.Memory)
	e.json(p.Extra)
	var flags byte
	if p.Bound {
		flags |= 1
	}
	if p.StopRequested {
		flags |= 2
	}
	if p.Terminated {
		flags |= 4
	}
	e.b = append(e.b, flags)
	e.varint(p.GracePeriodSeconds)
	e.sym(p.OwnerUID)
	e.uvarint(p.Created)
	e.cause(p.Cause)
}

func (e *snapEnc) containerStatuses(cs []events.ContainerStatus) {
	length(e, cs)
	for i := range cs {
		c := &cs[i]
		e.sym(c.Name)
		e.sym(c.Image)
		e.bool(c.Ready)
		e.varint(int64(c.RestartCount))
		e.str(c.ContainerID)
		e.containerState(&c.State)
		e.containerState(&c.LastTerminationState)
	}
}

// json writes a rarely set value of a later field as JSON ("" for nil): extension fields that
// almost no object has cost one byte, and need no code of their own.
func (e *snapEnc) json(v any) {
	if reflect.ValueOf(v).IsNil() {
		e.str("")
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("snapshot: encode %T: %v", v, err)) // plain data: cannot happen
	}
	e.str(string(b))
}

func (e *snapEnc) node(n *Node, requests bool) {
	e.typeMeta(n.TypeMeta)
	e.meta(&n.Metadata)
	e.str(n.Spec.PodCIDR)
	e.bool(n.Spec.Unschedulable)
	length(e, n.Spec.Taints)
	for _, t := range n.Spec.Taints {
		e.sym(t.Key)
		e.str(t.Value)
		e.sym(t.Effect)
	}
	e.strMap(n.Status.Capacity)
	e.strMap(n.Status.Allocatable)
	length(e, n.Status.Addresses)
	for _, a := range n.Status.Addresses {
		e.sym(a.Type)
		e.str(a.Address)
	}
	e.conditions(n.Status.Conditions)
	e.varint(n.MilliCPU)
	e.varint(n.Memory)
	e.varint(int64(n.MaxPods))
	e.bool(n.Ready)
	e.cause(n.Cause)
	e.varint(n.EphemeralStorage)
	e.json(n.Extended)
	if requests {
		e.varint(n.RequestedCPU)
		e.varint(n.RequestedMemory)
		e.varint(int64(n.PodCount))
		e.varint(n.RequestedEphemeralStorage)
		e.json(n.RequestedExtended)
	} else {
		e.b = append(e.b, 0, 0, 0, 0, 0)
	}
}

func (e *snapEnc) intOrString(v *events.IntOrString) {
	if v == nil {
		e.b = append(e.b, 0)
		return
	}
	if v.IsString {
		e.b = append(e.b, 2)
	} else {
		e.b = append(e.b, 1)
	}
	e.varint(int64(v.IntVal))
	e.str(v.StrVal)
}

func (e *snapEnc) deployment(d *Deployment) {
	e.typeMeta(d.TypeMeta)
	e.meta(&d.Metadata)
	sp := &d.Spec
	if sp.Replicas == nil {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, 1)
		e.varint(int64(*sp.Replicas))
	}
	if sp.Selector == nil {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, 1)
		e.strMap(sp.Selector.MatchLabels)
	}
	e.meta(&sp.Template.Metadata)
	e.spec(&sp.Template.Spec)
	e.sym(sp.Template.Spec.NodeName)
	e.sym(sp.Strategy.Type)
	if ru := sp.Strategy.RollingUpdate; ru == nil {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, 1)
		e.intOrString(ru.MaxUnavailable)
		e.intOrString(ru.MaxSurge)
	}
	e.varint(int64(sp.MinReadySeconds))
	e.int32Ptr(sp.RevisionHistoryLimit)
	e.int32Ptr(sp.ProgressDeadlineSeconds)
	e.bool(sp.Paused)
	st := &d.Status
	e.varint(st.ObservedGeneration)
	for _, v := range []int32{st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.UnavailableReplicas} {
		e.varint(int64(v))
	}
	e.conditions(st.Conditions)
	e.cause(d.Cause)
}

func (e *snapEnc) service(sv *Service) {
	e.typeMeta(sv.TypeMeta)
	e.meta(&sv.Metadata)
	e.sym(sv.Spec.Type)
	e.strMap(sv.Spec.Selector)
	length(e, sv.Spec.Ports)
	for i := range sv.Spec.Ports {
		p := &sv.Spec.Ports[i]
		e.sym(p.Name)
		e.sym(p.Protocol)
		e.varint(int64(p.Port))
		e.intOrString(p.TargetPort)
	}
	e.str(sv.Spec.ClusterIP)
	e.cause(sv.Cause)
}

func (e *snapEnc) endpoints(ep *events.Endpoints) {
	e.typeMeta(ep.TypeMeta)
	e.meta(&ep.Metadata)
	length(e, ep.Addresses)
	for i := range ep.Addresses {
		a := &ep.Addresses[i]
		e.str(a.IP)
		e.sym(a.NodeName)
		e.str(a.PodName)
		length(e, a.Ports)
		for _, p := range a.Ports {
			e.sym(p.Name)
			e.varint(int64(p.Port))
			e.sym(p.Protocol)
		}
	}
}

// UnmarshalSnapshot reads a body MarshalSnapshot wrote. Errors: ErrSnapshotCorrupt, with what
// was wrong and where.
func UnmarshalSnapshot(body []byte) (*State, error) {
	d := &snapDec{b: body}
	s := d.state()
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v at byte %d of %d", ErrSnapshotCorrupt, d.err, d.off, len(body))
	}
	return s, nil
}

// snapDec reads a snapshot body. The first error sticks: every read after it returns zero
// values, and every count is checked against the bytes left, so garbage ends the loops at
// once rather than allocating what it claims.
type snapDec struct {
	b      []byte
	off    int
	err    error
	syms   []string
	maps   []map[string]string
	owners [][]events.OwnerReference
	specs  []events.PodSpec
	times  []time.Time
	arena  []byte
}

func (d *snapDec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *snapDec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad or cut varint")
		return 0
	}
	d.off += n
	return v
}

func (d *snapDec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad or cut varint")
		return 0
	}
	d.off += n
	return v
}

func (d *snapDec) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("%d does not fit 32 bits", v)
		return 0
	}
	return int32(v)
}

func (d *snapDec) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("cut short")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *snapDec) bool() bool {
	switch c := d.byte(); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bool %d", c)
		return false
	}
}

// count reads a number of items, each taking at least one byte.
func (d *snapDec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)-d.off) {
		d.fail("%d items claimed, %d bytes left", n, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

// length reads a slice's length plus one: -1 for nil.
func (d *snapDec) length() int {
	n := d.uvarint()
	if n == 0 {
		return -1
	}
	if n-1 > uint64(len(d.b)-d.off) {
		d.fail("%d items claimed, %d bytes left", n-1, len(d.b)-d.off)
		return -1
	}
	return int(n - 1)
}

// makeSlice is a slice of the length read: nil for nil.
func makeSlice[T any](d *snapDec) []T {
	n := d.length()
	if n < 0 {
		return nil
	}
	return make([]T, n)
}

func (d *snapDec) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)-d.off) {
		d.fail("string of %d bytes, %d left", n, len(d.b)-d.off)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

// arenaStr reads a string into a block of them rather than an allocation of its own: for the
// subjects, hundreds of thousands of strings that live as long as the state (the fold never
// forgets a subject).
func (d *snapDec) arenaStr() string {
	n := d.uvarint()
	if n > uint64(len(d.b)-d.off) {
		d.fail("string of %d bytes, %d left", n, len(d.b)-d.off)
		return ""
	}
	if n == 0 {
		return ""
	}
	if int(n) > cap(d.arena)-len(d.arena) {
		d.arena = make([]byte, 0, max(int(n), 256<<10))
	}
	start := len(d.arena)
	d.arena = append(d.arena, d.b[d.off:d.off+int(n)]...)
	d.off += int(n)
	// The block is written once and never again: its bytes may back strings.
	return unsafe.String(&d.arena[start], int(n))
}

func (d *snapDec) sym() string {
	id := d.uvarint()
	switch {
	case id == 0:
		return ""
	case id <= uint64(len(d.syms)):
		return d.syms[id-1]
	case id == uint64(len(d.syms))+1:
		s := d.str()
		d.syms = append(d.syms, s)
		return s
	}
	d.fail("symbol %d of %d", id, len(d.syms))
	return ""
}

// deref reads a reference into table: nil, a value read before, or a new one that read reads.
func deref[T any](d *snapDec, table *[]T, read func() T) (T, bool) {
	var zero T
	id := d.uvarint()
	switch {
	case id == 0:
		return zero, false
	case id <= uint64(len(*table)):
		return (*table)[id-1], true
	case id == uint64(len(*table))+1:
		v := read()
		*table = append(*table, v)
		return v, true
	}
	d.fail("reference %d of %d", id, len(*table))
	return zero, false
}

func (d *snapDec) time() time.Time {
	tag := d.byte()
	return d.timeOf(tag)
}

func (d *snapDec) timeOf(tag byte) time.Time {
	off := int64(0)
	switch tag {
	case timeUTC:
	case timeOffset:
		if off = d.varint(); off <= -86400 || off >= 86400 {
			d.fail("zone offset %d s", off)
		}
	default:
		d.fail("time tag %d", tag)
		return time.Time{}
	}
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail("%d nanoseconds", nsec)
	}
	if d.err != nil {
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec)).UTC()
	if tag == timeOffset {
		t = t.In(time.FixedZone("", int(off)))
	}
	return t
}

func (d *snapDec) timePtr() *time.Time {
	tag := d.byte()
	if tag == timeNil || d.err != nil {
		return nil
	}
	// Times come from a block of them: a pod holds five or so, one allocation each was a
	// good part of decoding 150,000 pods. A block lives as long as one of its times does.
	if len(d.times) == 0 {
		d.times = make([]time.Time, 1024)
	}
	p := &d.times[0]
	d.times = d.times[1:]
	*p = d.timeOf(tag)
	return p
}

func (d *snapDec) int64Ptr() *int64 {
	if !d.bool() {
		return nil
	}
	v := d.varint()
	return &v
}

func (d *snapDec) strMap() map[string]string {
	m, _ := deref(d, &d.maps, func() map[string]string {
		n := d.count()
		m := make(map[string]string, n)
		for range n {
			k := d.sym()
			m[k] = d.str()
		}
		return m
	})
	return m
}

func (d *snapDec) strs() []string {
	s := makeSlice[string](d)
	for i := range s {
		s[i] = d.str()
	}
	return s
}

func (d *snapDec) keyOf(meta Key) Key {
	if d.bool() {
		return d.key()
	}
	return meta
}

func (d *snapDec) key() Key {
	ns := d.sym()
	return Key{ns, d.str()}
}

func (d *snapDec) typeMeta() events.TypeMeta {
	v := d.sym()
	return events.TypeMeta{APIVersion: v, Kind: d.sym()}
}

func (d *snapDec) meta(m *events.ObjectMeta) {
	m.Name = d.str()
	m.Namespace = d.sym()
	m.UID = d.str()
	m.Generation = d.varint()
	m.Labels = d.strMap()
	m.Annotations = d.strMap()
	m.CreationTimestamp = d.timePtr()
	m.DeletionTimestamp = d.timePtr()
	m.OwnerReferences = d.ownerRefs()
}

func (d *snapDec) ownerRefs() []events.OwnerReference {
	o, _ := deref(d, &d.owners, func() []events.OwnerReference {
		o := make([]events.OwnerReference, d.count())
		for i := range o {
			r := &o[i]
			r.APIVersion = d.sym()
			r.Kind = d.sym()
			r.Name = d.str()
			r.UID = d.sym()
			r.Controller = d.bool()
		}
		return o
	})
	return o
}

func (d *snapDec) cause() events.Cause {
	var c events.Cause
	c.ID = d.str()
	c.CorrelationID = d.str()
	c.Traceparent = d.str()
	c.Seq = d.uvarint()
	return c
}

func (d *snapDec) conditions() []events.Condition {
	cs := makeSlice[events.Condition](d)
	for i := range cs {
		c := &cs[i]
		c.Type = d.sym()
		c.Status = d.sym()
		c.Reason = d.sym()
		c.Message = d.str()
		c.LastTransitionTime = d.timePtr()
		c.LastUpdateTime = d.timePtr()
	}
	return cs
}

func (d *snapDec) spec() events.PodSpec {
	s, _ := deref(d, &d.specs, func() events.PodSpec {
		var s events.PodSpec
		s.Containers = makeSlice[events.Container](d)
		for i := range s.Containers {
			d.container(&s.Containers[i])
		}
		s.InitContainers = makeSlice[events.Container](d)
		for i := range s.InitContainers {
			d.container(&s.InitContainers[i])
		}
		s.RestartPolicy = d.sym()
		s.Hostname = d.str()
		s.Subdomain = d.str()
		s.TerminationGracePeriodSeconds = d.int64Ptr()
		s.NodeSelector = d.strMap()
		s.Tolerations = makeSlice[events.Toleration](d)
		for i := range s.Tolerations {
			t := &s.Tolerations[i]
			t.Key = d.sym()
			t.Operator = d.sym()
			t.Value = d.str()
			t.Effect = d.sym()
			t.TolerationSeconds = d.int64Ptr()
		}
		return s
	})
	return s
}

func (d *snapDec) container(c *events.Container) {
	c.Name = d.sym()
	c.Image = d.sym()
	c.Command = d.strs()
	c.Args = d.strs()
	c.Env = makeSlice[events.EnvVar](d)
	for i := range c.Env {
		c.Env[i].Name = d.sym()
		c.Env[i].Value = d.str()
		d.json(&c.Env[i].ValueFrom)
	}
	c.ImagePullPolicy = d.sym()
	c.WorkingDir = d.str()
	c.Ports = makeSlice[events.ContainerPort](d)
	for i := range c.Ports {
		p := &c.Ports[i]
		p.Name = d.sym()
		p.ContainerPort = d.int32()
		p.Protocol = d.sym()
	}
	c.Resources.Requests = d.strMap()
	c.Resources.Limits = d.strMap()
}

func (d *snapDec) containerState(s *events.ContainerState) {
	flags := d.byte()
	if flags&^7 != 0 {
		d.fail("container state flags %#x", flags)
		return
	}
	if flags&1 != 0 {
		s.Waiting = &events.ContainerStateWaiting{Reason: d.sym(), Message: d.str()}
	}
	if flags&2 != 0 {
		s.Running = &events.ContainerStateRunning{StartedAt: d.timePtr()}
	}
	if flags&4 != 0 {
		t := &events.ContainerStateTerminated{}
		t.ExitCode = d.int32()
		t.Signal = d.int32()
		t.Reason = d.sym()
		t.Message = d.str()
		t.StartedAt = d.timePtr()
		t.FinishedAt = d.timePtr()
		s.Terminated = t
	}
}

func (d *snapDec) pod() *Pod {
	p := &Pod{}
	p.TypeMeta = d.typeMeta()
	d.meta(&p.Metadata)
	p.Spec = d.spec()
	p.Spec.NodeName = d.sym()
	st := &p.Status
	st.Phase = d.sym()
	st.Reason = d.sym()
	st.Message = d.str()
	st.HostIP = d.sym()
	st.PodIP = d.str()
	st.StartTime = d.timePtr()
	st.Conditions = d.conditions()
	st.ContainerStatuses = d.containerStatuses()
	st.InitContainerStatuses = d.containerStatuses()
	p.MilliCPU = d.varint()
	p.Memory = d.varint()
	d.json(&p.Extra)
	flags := d.byte()
	if flags&^7 != 0 {
		d.fail("pod flags %#x", flags)
	}
	p.Bound, p.StopRequested, p.Terminated = flags&1 != 0, flags&2 != 0, flags&4 != 0
	p.GracePeriodSeconds = d.varint()
	p.OwnerUID = d.sym()
	p.Created = d.uvarint()
	p.Cause = d.cause()
	return p
}

func (d *snapDec) containerStatuses() []events.ContainerStatus {
	cs := makeSlice[events.ContainerStatus](d)
	for i := range cs {
		c := &cs[i]
		c.Name = d.sym()
		c.Image = d.sym()
		c.Ready = d.bool()
		c.RestartCount = d.int32()
		c.ContainerID = d.str()
		d.containerState(&c.State)
		d.containerState(&c.LastTerminationState)
	}
	return cs
}

// json reads what snapEnc.json wrote into *v (left nil for "").
func (d *snapDec) json(v any) {
	s := d.str()
	if s == "" || d.err != nil {
		return
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		d.fail("extension field: %v", err)
	}
}

func (d *snapDec) int32Ptr() *int32 {
	v := d.int64Ptr()
	if v == nil {
		return nil
	}
	w := int32(*v)
	return &w
}

func (d *snapDec) node() *Node {
	n := &Node{}
	n.TypeMeta = d.typeMeta()
	d.meta(&n.Metadata)
	n.Spec.PodCIDR = d.str()
	n.Spec.Unschedulable = d.bool()
	n.Spec.Taints = makeSlice[events.Taint](d)
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		t.Key = d.sym()
		t.Value = d.str()
		t.Effect = d.sym()
	}
	n.Status.Capacity = d.strMap()
	n.Status.Allocatable = d.strMap()
	n.Status.Addresses = makeSlice[events.NodeAddress](d)
	for i := range n.Status.Addresses {
		a := &n.Status.Addresses[i]
		a.Type = d.sym()
		a.Address = d.str()
	}
	n.Status.Conditions = d.conditions()
	n.MilliCPU = d.varint()
	n.Memory = d.varint()
	n.MaxPods = d.int32()
	n.Ready = d.bool()
	n.Cause = d.cause()
	n.EphemeralStorage = d.varint()
	d.json(&n.Extended)
	n.RequestedCPU = d.varint()
	n.RequestedMemory = d.varint()
	n.PodCount = int(d.varint())
	n.RequestedEphemeralStorage = d.varint()
	d.json(&n.RequestedExtended)
	return n
}

func (d *snapDec) intOrString() *events.IntOrString {
	tag := d.byte()
	if tag == 0 || d.err != nil {
		return nil
	}
	if tag > 2 {
		d.fail("int-or-string tag %d", tag)
		return nil
	}
	v := &events.IntOrString{IsString: tag == 2}
	v.IntVal = d.int32()
	v.StrVal = d.str()
	return v
}

func (d *snapDec) deployment() *Deployment {
	dp := &Deployment{}
	dp.TypeMeta = d.typeMeta()
	d.meta(&dp.Metadata)
	sp := &dp.Spec
	if d.bool() {
		r := d.int32()
		sp.Replicas = &r
	}
	if d.bool() {
		sp.Selector = &events.LabelSelector{MatchLabels: d.strMap()}
	}
	d.meta(&sp.Template.Metadata)
	sp.Template.Spec = d.spec()
	sp.Template.Spec.NodeName = d.sym()
	sp.Strategy.Type = d.sym()
	if d.bool() {
		ru := &events.RollingUpdateDeployment{}
		ru.MaxUnavailable = d.intOrString()
		ru.MaxSurge = d.intOrString()
		sp.Strategy.RollingUpdate = ru
	}
	sp.MinReadySeconds = d.int32()
	sp.RevisionHistoryLimit = d.int32Ptr()
	sp.ProgressDeadlineSeconds = d.int32Ptr()
	sp.Paused = d.bool()
	st := &dp.Status
	st.ObservedGeneration = d.varint()
	for _, v := range []*int32{&st.Replicas, &st.UpdatedReplicas, &st.ReadyReplicas, &st.AvailableReplicas, &st.UnavailableReplicas} {
		*v = d.int32()
	}
	st.Conditions = d.conditions()
	dp.Cause = d.cause()
	return dp
}

func (d *snapDec) service() *Service {
	sv := &Service{}
	sv.TypeMeta = d.typeMeta()
	d.meta(&sv.Metadata)
	sv.Spec.Type = d.sym()
	sv.Spec.Selector = d.strMap()
	sv.Spec.Ports = makeSlice[events.ServicePort](d)
	for i := range sv.Spec.Ports {
		p := &sv.Spec.Ports[i]
		p.Name = d.sym()
		p.Protocol = d.sym()
		p.Port = d.int32()
		p.TargetPort = d.intOrString()
	}
	sv.Spec.ClusterIP = d.str()
	sv.Cause = d.cause()
	return sv
}

func (d *snapDec) endpoints() *events.Endpoints {
	ep := &events.Endpoints{}
	ep.TypeMeta = d.typeMeta()
	d.meta(&ep.Metadata)
	ep.Addresses = makeSlice[events.EndpointAddress](d)
	for i := range ep.Addresses {
		a := &ep.Addresses[i]
		a.IP = d.str()
		a.NodeName = d.sym()
		a.PodName = d.str()
		a.Ports = makeSlice[events.EndpointPort](d)
		for j := range a.Ports {
			p := &a.Ports[j]
			p.Name = d.sym()
			p.Port = d.int32()
			p.Protocol = d.sym()
		}
	}
	return ep
}

// state reads a whole body. Objects are kept under the key written (mostly: their metadata's);
// one key twice is corrupt.
func (d *snapDec) state() *State {
	s := New()
	s.Seq = d.uvarint()
	s.Leader.Replica = d.str()
	s.Leader.Term = d.uvarint()
	s.Leader.Seq = d.uvarint()
	s.Leader.Since = d.time()

	s.Namespaces = map[string]*events.Namespace{}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		ns := &events.Namespace{TypeMeta: d.typeMeta()}
		d.meta(&ns.Metadata)
		ns.Status.Phase = d.sym()
		name := d.keyOf(Key{Name: ns.Metadata.Name}).Name
		if _, dup := s.Namespaces[name]; dup {
			d.fail("namespace %s twice", name)
		}
		s.Namespaces[name] = ns
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		node := d.node()
		name := d.keyOf(Key{Name: node.Metadata.Name}).Name
		if _, dup := s.Nodes[name]; dup {
			d.fail("node %s twice", name)
		}
		s.Nodes[name] = node
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		dp := d.deployment()
		k := d.keyOf(Key{dp.Metadata.Namespace, dp.Metadata.Name})
		if _, dup := s.Deployments[k]; dup {
			d.fail("deployment %s twice", k)
		}
		s.Deployments[k] = dp
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		sv := d.service()
		k := d.keyOf(Key{sv.Metadata.Namespace, sv.Metadata.Name})
		if _, dup := s.Services[k]; dup {
			d.fail("service %s twice", k)
		}
		s.Services[k] = sv
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		ep := d.endpoints()
		k := d.keyOf(Key{ep.Metadata.Namespace, ep.Metadata.Name})
		if _, dup := s.Endpoints[k]; dup {
			d.fail("endpoints %s twice", k)
		}
		s.Endpoints[k] = ep
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		uid := d.sym()
		t := &template{}
		t.spec = d.spec()
		t.spec.NodeName = ""
		t.labels = d.strMap()
		t.annotations = d.strMap()
		t.owners = d.ownerRefs()
		if _, dup := s.templates[uid]; dup {
			d.fail("template of %s twice", uid)
		}
		s.templates[uid] = t
	}
	npods := d.count()
	// Sized for what the bytes left can hold, not what a count claims.
	s.Pods = make(map[Key]*Pod, min(npods, (len(d.b)-d.off)/32))
	for n := npods; n > 0 && d.err == nil; n-- {
		p := d.pod()
		k := d.keyOf(p.Key())
		if _, dup := s.Pods[k]; dup {
			d.fail("pod %s twice", k)
		}
		s.Pods[k] = p
		if p.Spec.NodeName == "" {
			s.pending[k] = p
		} else {
			index(s.podsByNode, p.Spec.NodeName, k, p)
		}
		if p.OwnerUID != "" {
			index(s.podsByOwner, p.OwnerUID, k, p)
		}
	}
	nsubjects := d.count()
	s.subjectSeq = make(map[string]uint64, min(nsubjects, (len(d.b)-d.off)/4))
	for n := nsubjects; n > 0 && d.err == nil; n-- {
		subject := d.arenaStr()
		s.subjectSeq[subject] = d.uvarint()
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		ip := d.str()
		s.clusterIPs[ip] = d.key()
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		cidr := d.str()
		s.podCIDRs[cidr] = d.sym()
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		k := d.key()
		s.endpointsDeleted[k] = d.uvarint()
	}
	if end := d.uvarint(); end != snapshotEnd && d.err == nil {
		d.fail("no end mark")
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes after the end mark", len(d.b)-d.off)
	}
	return s
}
