package deployments

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"skiff.dev/events"
	"skiff.dev/events/live"
	"skiff.dev/events/state"
	"skiff.dev/services/scheduler/internal/controllers/reconcile"
)

// Config configures the controller. Log and Projection are required.
type Config struct {
	Log        reconcile.Log
	Projection *live.Projection
	// Clock stamps events and conditions; default time.Now.
	Clock func() time.Time
	// Actor is written into every event; default "scheduler/controllers".
	Actor  string
	Logger *slog.Logger
	// Tracer traces each pass (reconcile.Batch.Trace); nil traces nothing.
	Tracer trace.Tracer
}

// DefaultActor is Config.Actor's default.
const DefaultActor = "scheduler/controllers"

// CreateBurst is the most pods one pass creates for one Deployment.
const CreateBurst = 5000

// Controller keeps every Deployment's pods as its spec says.
type Controller struct {
	cfg  Config
	loop *reconcile.Loop

	mu sync.Mutex
	// changes, while Run runs, is what the fold applied since the last pass: a pass looks only
	// at what it touches. Nothing watched (Sync called alone): a pass looks at everything.
	changes reconcile.Changes
	// hashes remembers each Deployment's template hash between passes: hashing encodes the
	// template, the dearest part of a pass. An entry is for the state's object it was computed
	// from, which the fold replaces on every DeploymentApplied (and only that changes a
	// template), so it can never be stale; the object is never dereferenced outside View.
	hashes map[state.Key]hashed
	// synced counts the Deployments synced, for tests that check a pass touches only what
	// changed.
	synced int
	// due are Deployments to sync again at a time even if nothing changes: a pod that becomes
	// available once it has been ready for minReadySeconds, a progress deadline that runs out.
	due map[state.Key]time.Time
}

type hashed struct {
	d    *state.Deployment
	hash string
}

// New returns a controller; Run starts it.
func New(cfg Config) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Actor == "" {
		cfg.Actor = DefaultActor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("controller", "deployments")
	c := &Controller{cfg: cfg, hashes: map[state.Key]hashed{}, due: map[state.Key]time.Time{}}
	c.loop = reconcile.NewLoop(reconcile.Config{
		Name: "deployments", Projection: cfg.Projection, Clock: cfg.Clock, Logger: cfg.Logger,
	}, c.Sync)
	return c
}

// Run waits for the projection to catch up, then reconciles until ctx ends; it returns nil then.
// Each pass after the first looks only at what changed.
func (c *Controller) Run(ctx context.Context) error {
	defer c.Watch()()
	return c.loop.Run(ctx)
}

// Watch makes passes look only at what changed from now on (the first one at everything), as
// under Run; the returned function stops that. For tests and benchmarks that take the passes
// one at a time.
func (c *Controller) Watch() (stop func()) { return c.changes.Watch(c.cfg.Projection) }

// Sync is one pass: it decides from one view of the state and appends the decisions. Under Run
// it looks at the Deployments that changed since the last pass, or whose pods did, and at pods
// whose owner is gone; otherwise (and on Run's first pass) at every Deployment and pod. Tests
// call it directly to take one step at a time.
func (c *Controller) Sync(ctx context.Context) (reconcile.Result, error) {
	now := c.cfg.Clock()
	b := reconcile.NewBatch(now, events.Meta{Actor: c.cfg.Actor}).Trace(c.cfg.Tracer, "deployments")
	c.mu.Lock()
	changes, all := c.changes.Take()
	c.cfg.Projection.View(func(s *state.State) {
		if all {
			c.syncAll(s, now, b)
			return
		}
		c.syncChanged(s, changes, now, b)
	})
	var next time.Time
	for _, at := range c.due {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	c.mu.Unlock()
	res, err := b.Flush(ctx, c.cfg.Log)
	c.changes.Done(res, err)
	if !next.IsZero() {
		res.Requeue(next)
	}
	return res, err
}

// syncAll syncs every Deployment and collects the pods of every Deployment that is gone.
func (c *Controller) syncAll(s *state.State, now time.Time, b *reconcile.Batch) {
	owners := make(map[string]bool, len(s.Deployments))
	for key, d := range s.Deployments {
		owners[d.Metadata.UID] = true
		c.syncDeployment(s, key, d, c.hash(key, d), now, b)
	}
	for key := range c.hashes {
		if _, ok := s.Deployments[key]; !ok {
			delete(c.hashes, key)
		}
	}
	for key := range c.due {
		if _, ok := s.Deployments[key]; !ok {
			delete(c.due, key)
		}
	}
	collectGarbage(s, owners, b)
}

// syncChanged syncs the Deployments the changes touch: those applied or deleted, the owners of
// pods that changed, every Deployment of a namespace that changed; and it collects the pods of
// Deployments that are gone.
func (c *Controller) syncChanged(s *state.State, changes []live.Change, now time.Time, b *reconcile.Batch) {
	dirty := map[state.Key]bool{}
	gcAll := false
	for _, ch := range changes {
		switch ch.Object.Kind {
		case events.KindDeployment:
			key := state.Key{Namespace: ch.Object.Namespace, Name: ch.Object.Name}
			dirty[key] = true
			if ch.Type == (events.DeploymentDeleted{}).EventType() {
				delete(c.hashes, key)
				delete(c.due, key)
				if ch.Object.UID == "" {
					gcAll = true // an event written without the UID: look at every pod
				}
				for _, p := range s.PodsOwnedBy(ch.Object.UID) {
					collect(s, p, b)
				}
			}
		case events.KindPod:
			p := ch.Pod
			if p == nil || !ownedByDeployment(p) {
				continue
			}
			key := state.Key{Namespace: p.Metadata.Namespace, Name: ownerName(p)}
			if d := s.Deployments[key]; d != nil && d.Metadata.UID == p.OwnerUID {
				dirty[key] = true
			} else if now := s.Pods[p.Key()]; now != nil {
				// Its Deployment is gone (or was replaced by one of the same name).
				collect(s, now, b)
			}
		case events.KindNamespace:
			for key := range s.Deployments {
				if key.Namespace == ch.Object.Name {
					dirty[key] = true
				}
			}
		}
	}
	for key, at := range c.due {
		if !at.After(now) {
			dirty[key] = true
		}
	}
	for key := range dirty {
		if d := s.Deployments[key]; d != nil {
			c.syncDeployment(s, key, d, c.hash(key, d), now, b)
		}
	}
	if gcAll {
		owners := make(map[string]bool, len(s.Deployments))
		for _, d := range s.Deployments {
			owners[d.Metadata.UID] = true
		}
		collectGarbage(s, owners, b)
	}
}

// hash is d's template hash, computed once per version of d.
func (c *Controller) hash(key state.Key, d *state.Deployment) string {
	if h, ok := c.hashes[key]; ok && h.d == d {
		return h.hash
	}
	h := TemplateHash(d.Spec.Template)
	c.hashes[key] = hashed{d: d, hash: h}
	return h
}

// collectGarbage asks to delete the pods of Deployments that are gone (DeploymentDeleted), as
// Kubernetes' garbage collector does for dependents of a deleted owner.
func collectGarbage(s *state.State, owners map[string]bool, b *reconcile.Batch) {
	for _, p := range s.Pods {
		if p.OwnerUID == "" || owners[p.OwnerUID] || !ownedByDeployment(p) {
			continue
		}
		collect(s, p, b)
	}
}

// collect asks to delete a pod whose Deployment is gone, unless that is asked already.
func collect(s *state.State, p *state.Pod, b *reconcile.Batch) {
	if !p.Deleting() {
		requestDeletion(s, p, p.Cause, b)
	}
}

// ownerName is the name of the pod's controlling owner.
func ownerName(p *state.Pod) string {
	for _, o := range p.Metadata.OwnerReferences {
		if o.Controller {
			return o.Name
		}
	}
	return ""
}

func ownedByDeployment(p *state.Pod) bool {
	for _, o := range p.Metadata.OwnerReferences {
		if o.Controller && o.Kind == "Deployment" {
			return true
		}
	}
	return false
}

func requestDeletion(s *state.State, p *state.Pod, cause events.Cause, b *reconcile.Batch) {
	ref := events.ObjectRef{Kind: events.KindPod, Namespace: p.Metadata.Namespace, Name: p.Metadata.Name, UID: p.Metadata.UID}
	subject := events.ObjectSubject(events.KindPod, ref.Namespace, ref.Name)
	b.AddCaused(cause, ref, "", &events.PodDeletionRequested{UID: p.Metadata.UID, GracePeriodSeconds: p.Spec.GracePeriodSeconds()}, s.SubjectSeq(subject))
}

// pods groups a Deployment's pods for one pass.
type pods struct {
	newReady, newUnready []*state.Pod
	oldReady, oldUnready []*state.Pod
	// readyNotAvailable counts ready pods not yet ready for minReadySeconds (among the
	// unready ones above); nextAvailable is when the first of them will be.
	readyNotAvailable int
	nextAvailable     time.Time
	// oldLeft counts old-template pods of any kind, terminating ones too (for Recreate).
	oldLeft int
	// finished are pods that will not run again (Failed, Succeeded, or stopped by their node)
	// and are not being deleted yet.
	finished []*state.Pod
}

// classify sorts a Deployment's pods by template and availability: a pod is available once it
// has been ready for minReady (Kubernetes' minReadySeconds); ready pods that are not yet are
// counted apart (readyNotAvailable), and the earliest time one becomes available is
// nextAvailable.
func classify(owned map[state.Key]*state.Pod, hash string, now time.Time, minReady time.Duration) pods {
	var ps pods
	for _, p := range owned {
		isNew := p.Metadata.Labels[TemplateHashLabel] == hash
		if !isNew {
			ps.oldLeft++
		}
		available, availableAt := p.Ready(), time.Time{}
		if available && minReady > 0 {
			if at := readySince(p).Add(minReady); at.After(now) {
				available, availableAt = false, at
			}
		}
		switch {
		case p.Deleting():
			// Terminating pods are not counted, as in Kubernetes: their replacements start at once.
			continue
		case p.Status.Phase == events.PodFailed || p.Status.Phase == events.PodSucceeded || p.Terminated:
			ps.finished = append(ps.finished, p)
			continue
		}
		if !availableAt.IsZero() {
			ps.readyNotAvailable++
			if ps.nextAvailable.IsZero() || availableAt.Before(ps.nextAvailable) {
				ps.nextAvailable = availableAt
			}
		}
		switch {
		case isNew && available:
			ps.newReady = append(ps.newReady, p)
		case isNew:
			ps.newUnready = append(ps.newUnready, p)
		case available:
			ps.oldReady = append(ps.oldReady, p)
		default:
			ps.oldUnready = append(ps.oldUnready, p)
		}
	}
	return ps
}

// readySince is when a ready pod became ready: when its last container started (a container
// is ready while it runs; readiness probes are not there yet).
func readySince(p *state.Pod) time.Time {
	var t time.Time
	for _, c := range p.Status.ContainerStatuses {
		if r := c.State.Running; r != nil && r.StartedAt != nil && r.StartedAt.After(t) {
			t = *r.StartedAt
		}
	}
	return t
}

// firstToDelete returns the n pods of ps that a scale-down deletes first. It sorts only when it
// has to choose: most passes delete nothing.
func firstToDelete(ps []*state.Pod, n int) []*state.Pod {
	if n <= 0 {
		return nil
	}
	if n < len(ps) {
		slices.SortFunc(ps, deleteFirst)
	}
	return ps[:n]
}

// deleteFirst orders pods the way a scale-down picks them, as Kubernetes' ReplicaSet controller
// does: not yet scheduled, then pending before running, not ready before ready, more restarts
// before fewer, newer before older.
func deleteFirst(a, b *state.Pod) int {
	return cmp.Or(
		-cmp.Compare(boolInt(a.Spec.NodeName == ""), boolInt(b.Spec.NodeName == "")),
		cmp.Compare(phaseRank(a.Status.Phase), phaseRank(b.Status.Phase)),
		cmp.Compare(boolInt(a.Ready()), boolInt(b.Ready())),
		-cmp.Compare(restarts(a), restarts(b)),
		-cmp.Compare(a.Created, b.Created),
		cmp.Compare(a.Metadata.Name, b.Metadata.Name),
	)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func phaseRank(phase string) int {
	switch phase {
	case events.PodPending, "":
		return 0
	case events.PodUnknown:
		return 1
	}
	return 2
}

func restarts(p *state.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

func (c *Controller) syncDeployment(s *state.State, key state.Key, d *state.Deployment, hash string, now time.Time, b *reconcile.Batch) {
	c.synced++
	if d.Metadata.UID == "" {
		c.cfg.Logger.Warn("deployment has no uid; cannot own pods", "deployment", key)
		return
	}
	if _, ok := s.Namespaces[key.Namespace]; !ok {
		// The namespace is being torn down (pod lifecycle deletes its pods): creating pods
		// there would fight it.
		return
	}
	minReady := time.Duration(d.Spec.MinReadySeconds) * time.Second
	ps := classify(s.PodsOwnedBy(d.Metadata.UID), hash, now, minReady)
	replicas := int(d.Spec.DesiredReplicas())
	surge, unavailable := Bounds(d.Spec.Strategy, replicas)
	counts := Counts{
		Replicas: replicas, MaxSurge: surge, MaxUnavailable: unavailable,
		New: len(ps.newReady) + len(ps.newUnready), NewReady: len(ps.newReady),
		Old: len(ps.oldReady) + len(ps.oldUnready), OldReady: len(ps.oldReady),
	}
	var plan Plan
	switch {
	case d.Spec.Paused && counts.Old > 0:
		// Paused in the middle of a rollout (or with a template changed since it paused): no
		// step of the rollout; a scale is still honoured, with the newest template the pods
		// have (pausedScale).
	case d.Spec.Strategy.Type == "Recreate":
		plan = RecreatePlan(counts, ps.oldLeft)
	default:
		plan = RollingPlan(counts)
	}

	// Finished pods are replaced: they no longer count, and their deletion is requested.
	b.About(d.Cause, events.ObjectRef{Kind: events.KindDeployment, Namespace: key.Namespace, Name: key.Name, UID: d.Metadata.UID})
	// What the pass does about a Deployment reacts to its last command (applied, scaled): the
	// pods it creates or deletes are that command's consequences. A finished pod's replacement
	// reacts to the pod's end.
	for _, p := range ps.finished {
		requestDeletion(s, p, p.Cause, b)
	}
	newPods := append(slices.Clip(ps.newUnready), ps.newReady...)
	for _, p := range firstToDelete(newPods, plan.DeleteNew) {
		requestDeletion(s, p, d.Cause, b)
	}
	for _, p := range firstToDelete(ps.oldUnready, plan.DeleteOldUnready) {
		requestDeletion(s, p, d.Cause, b)
	}
	for _, p := range firstToDelete(ps.oldReady, plan.DeleteOldReady) {
		requestDeletion(s, p, d.Cause, b)
	}
	// At most CreateBurst new pods a pass: a pass holds its writes, encoded, until they land
	// (150,000 at once cost the scheduler about a gigabyte), and the scheduler can place the
	// first ones while the next pass creates more. A pass that wrote runs again at once.
	template, templateHash := d.Spec.Template, hash
	if d.Spec.Paused && counts.Old > 0 {
		var deleteOld []*state.Pod
		plan.Create, deleteOld, template, templateHash = pausedScale(ps, replicas, d.Spec.Template, hash)
		for _, p := range deleteOld {
			requestDeletion(s, p, d.Cause, b)
		}
	}
	for range min(plan.Create, CreateBurst) {
		pod := newPod(d, template, templateHash)
		// A random suffix repeats one of this pass or one the log has seen about once in 14
		// million pairs: some 30 times among 30,000 pods. Such a pod would wait for a later
		// pass (the batch takes one write per subject, the log refuses a used one), so it
		// draws again, as Kubernetes' generateName does after a name conflict.
		for range 10 {
			subject := events.ObjectSubject(events.KindPod, key.Namespace, pod.Metadata.Name)
			if !b.Has(subject) && s.SubjectSeq(subject) == 0 {
				break
			}
			pod.Metadata.Name = PodName(d.Metadata.Name, templateHash)
		}
		ref := events.ObjectRef{Kind: events.KindPod, Namespace: key.Namespace, Name: pod.Metadata.Name, UID: pod.Metadata.UID}
		// A fresh name: the subject must be empty.
		b.AddCaused(d.Cause, ref, "", &events.PodCreated{Pod: pod}, 0)
	}

	status, recheck := computeStatus(d, counts, ps.readyNotAvailable, hash, now)
	if !ps.nextAvailable.IsZero() && (recheck.IsZero() || ps.nextAvailable.Before(recheck)) {
		recheck = ps.nextAvailable
	}
	if recheck.IsZero() {
		delete(c.due, key)
	} else {
		c.due[key] = recheck
	}
	if !statusEqual(d.Status, status) {
		ref := events.ObjectRef{Kind: events.KindDeployment, Namespace: key.Namespace, Name: key.Name, UID: d.Metadata.UID}
		subject := events.ObjectSubject(events.KindDeployment, key.Namespace, key.Name)
		// Progress reacts to the latest change among the Deployment and its pods.
		cause := d.Cause
		for _, p := range s.PodsOwnedBy(d.Metadata.UID) {
			if p.Cause.Seq > cause.Seq {
				cause = p.Cause
			}
		}
		b.AddCaused(cause, ref, "", &events.DeploymentRolloutProgressed{Status: status}, s.SubjectSeq(subject))
	}
}

// pausedScale is what a paused Deployment with pods of more than one template does: nothing of
// the rollout, only its replica count, as Kubernetes scales a paused Deployment's ReplicaSets
// without rolling them. Missing pods are made from the template of the newest pod there is
// (recovered from the pod itself: its spec, and its labels and annotations without the hash
// label), surplus ones deleted, scale-down order as usual.
func pausedScale(ps pods, replicas int, current events.PodTemplateSpec, hash string) (create int, del []*state.Pod, t events.PodTemplateSpec, h string) {
	active := slices.Concat(ps.newReady, ps.newUnready, ps.oldReady, ps.oldUnready)
	if n := len(active); n > replicas {
		return 0, firstToDelete(active, n-replicas), current, hash
	}
	var newest *state.Pod
	for _, p := range active {
		if newest == nil || p.Created > newest.Created {
			newest = p
		}
	}
	if newest == nil || newest.Metadata.Labels[TemplateHashLabel] == hash {
		return replicas - len(active), nil, current, hash
	}
	labels := maps.Clone(newest.Metadata.Labels)
	h = labels[TemplateHashLabel]
	delete(labels, TemplateHashLabel)
	t = events.PodTemplateSpec{Metadata: events.ObjectMeta{Labels: labels, Annotations: maps.Clone(newest.Metadata.Annotations)}, Spec: newest.Spec}
	t.Spec.NodeName = ""
	return replicas - len(active), nil, t, h
}

// newPod stamps a pod out of template t, whose hash is hash, for d.
func newPod(d *state.Deployment, t events.PodTemplateSpec, hash string) events.Pod {
	labels := make(map[string]string, len(t.Metadata.Labels)+1)
	maps.Copy(labels, t.Metadata.Labels)
	labels[TemplateHashLabel] = hash
	return events.Pod{
		TypeMeta: events.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: events.ObjectMeta{
			Name:        PodName(d.Metadata.Name, hash),
			Namespace:   d.Metadata.Namespace,
			UID:         newUID(),
			Labels:      labels,
			Annotations: maps.Clone(t.Metadata.Annotations),
			OwnerReferences: []events.OwnerReference{{
				APIVersion: "apps/v1", Kind: "Deployment", Name: d.Metadata.Name, UID: d.Metadata.UID, Controller: true,
			}},
		},
		Spec: t.Spec,
	}
}

// Condition reasons and messages, as Kubernetes writes them (`kubectl rollout status` and
// `skiff rollout status` read them).
const (
	ConditionAvailable   = "Available"
	ConditionProgressing = "Progressing"

	ReasonMinimumReplicasAvailable   = "MinimumReplicasAvailable"
	ReasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
	ReasonNewReplicaSetAvailable     = "NewReplicaSetAvailable"
	ReasonReplicaSetUpdated          = "ReplicaSetUpdated"
	ReasonProgressDeadlineExceeded   = "ProgressDeadlineExceeded"
	ReasonDeploymentPaused           = "DeploymentPaused"
)

// computeStatus is the Deployment's status for the counts of this pass (c's ready counts are
// the available pods; readyExtra are ready but not yet available). Conditions keep their last
// transition time while their status holds. Progressing, as in Kubernetes: True while the
// rollout moves (its lastUpdateTime is the last move: a count or the generation changed), False
// with ProgressDeadlineExceeded when it has not moved for the progress deadline, Unknown while
// paused, and True NewReplicaSetAvailable once complete. recheck is when the deadline runs out
// (zero when no deadline runs).
func computeStatus(d *state.Deployment, c Counts, readyExtra int, hash string, now time.Time) (st events.DeploymentStatus, recheck time.Time) {
	available := c.NewReady + c.OldReady
	st = events.DeploymentStatus{
		ObservedGeneration:  d.Metadata.Generation,
		Replicas:            int32(c.New + c.Old),
		UpdatedReplicas:     int32(c.New),
		ReadyReplicas:       int32(available + readyExtra),
		AvailableReplicas:   int32(available),
		UnavailableReplicas: int32(max(0, c.Replicas-available)),
	}
	rs := fmt.Sprintf("%s-%s", d.Metadata.Name, hash)
	avail := events.Condition{Type: ConditionAvailable, Status: "True", Reason: ReasonMinimumReplicasAvailable,
		Message: "Deployment has minimum availability."}
	if available < c.Replicas-c.MaxUnavailable {
		avail = events.Condition{Type: ConditionAvailable, Status: "False", Reason: ReasonMinimumReplicasUnavailable,
			Message: "Deployment does not have minimum availability."}
	}
	var old *events.Condition
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == ConditionProgressing {
			old = &d.Status.Conditions[i]
		}
	}
	moved := d.Status.ObservedGeneration != st.ObservedGeneration || d.Status.Replicas != st.Replicas ||
		d.Status.UpdatedReplicas != st.UpdatedReplicas || d.Status.ReadyReplicas != st.ReadyReplicas ||
		d.Status.AvailableReplicas != st.AvailableReplicas || old == nil || old.Status == "Unknown"
	lastUpdate := now
	if !moved && old.LastUpdateTime != nil {
		lastUpdate = *old.LastUpdateTime
	}
	prog := events.Condition{Type: ConditionProgressing, Status: "True", Reason: ReasonReplicaSetUpdated,
		Message: fmt.Sprintf("ReplicaSet %q is progressing.", rs), LastUpdateTime: &lastUpdate}
	switch deadline := d.Spec.ProgressDeadline(); {
	case d.Spec.Paused:
		prog = events.Condition{Type: ConditionProgressing, Status: "Unknown", Reason: ReasonDeploymentPaused,
			Message: "Deployment is paused", LastUpdateTime: &lastUpdate}
	case c.New == c.Replicas && c.Old == 0 && c.NewReady == c.Replicas:
		prog.Reason = ReasonNewReplicaSetAvailable
		prog.Message = fmt.Sprintf("ReplicaSet %q has successfully progressed.", rs)
	case !now.Before(lastUpdate.Add(deadline)):
		prog = events.Condition{Type: ConditionProgressing, Status: "False", Reason: ReasonProgressDeadlineExceeded,
			Message: fmt.Sprintf("ReplicaSet %q has timed out progressing.", rs), LastUpdateTime: &lastUpdate}
	default:
		recheck = lastUpdate.Add(deadline)
	}
	for _, cond := range []events.Condition{avail, prog} {
		cond.LastTransitionTime = &now
		for _, old := range d.Status.Conditions {
			if old.Type == cond.Type && old.Status == cond.Status && old.LastTransitionTime != nil {
				cond.LastTransitionTime = old.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, cond)
	}
	return st, recheck
}

// statusEqual compares statuses without the conditions' times: a status is rewritten only when
// something a reader acts on changed.
func statusEqual(a, b events.DeploymentStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || a.Replicas != b.Replicas || a.UpdatedReplicas != b.UpdatedReplicas ||
		a.ReadyReplicas != b.ReadyReplicas || a.AvailableReplicas != b.AvailableReplicas ||
		a.UnavailableReplicas != b.UnavailableReplicas || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message {
			return false
		}
	}
	return true
}
