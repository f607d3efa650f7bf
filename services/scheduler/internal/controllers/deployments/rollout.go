package deployments

import (
	"skiff.dev/events"
)

// Counts are a Deployment's active pods (not terminating, not finished) by template and
// readiness, with its resolved rollout bounds.
type Counts struct {
	Replicas       int
	MaxSurge       int
	MaxUnavailable int
	New, NewReady  int
	Old, OldReady  int
}

// Plan is one pass's worth of changes to a Deployment's pods.
type Plan struct {
	// Create is the number of pods of the current template to create.
	Create int
	// DeleteNew is the number of current-template pods to delete (scaled down).
	DeleteNew int
	// DeleteOldUnready and DeleteOldReady are the numbers of old-template pods to delete, not
	// ready ones first: they cost no availability.
	DeleteOldUnready int
	DeleteOldReady   int
}

// RollingPlan is the next step of a RollingUpdate. It never takes the Deployment above
// Replicas+MaxSurge active pods, and never below Replicas−MaxUnavailable ready pods by deleting
// (pods that stop being ready by themselves are another matter).
//
// As in Kubernetes' deployment controller: new pods are added while the total is under
// Replicas+MaxSurge; old pods that are not ready go first, as far as the total stays above what
// the new pods still owe; then ready old pods go while more than Replicas−MaxUnavailable are
// ready. Pods being created are counted, not yet ready, so the plan waits for them.
func RollingPlan(c Counts) Plan {
	var p Plan
	r := c.Replicas
	if c.Old == 0 {
		// Nothing to roll: keep the count.
		p.Create = max(0, r-c.New)
		p.DeleteNew = max(0, c.New-r)
		return p
	}
	total := c.New + c.Old
	p.Create = max(0, min(r+c.MaxSurge-total, r-c.New))
	p.DeleteNew = max(0, c.New-r)
	// Deleting surplus new pods takes the unready ones first; count the ready ones it takes.
	newReadyDeleted := max(0, p.DeleteNew-(c.New-c.NewReady))

	minAvailable := max(0, r-c.MaxUnavailable)
	newUnavailable := c.New - c.NewReady
	maxScaledDown := total - minAvailable - newUnavailable
	p.DeleteOldUnready = max(0, min(c.Old-c.OldReady, maxScaledDown))

	available := c.NewReady - newReadyDeleted + c.OldReady
	p.DeleteOldReady = max(0, min(c.OldReady, available-minAvailable))
	return p
}

// RecreatePlan is the next step of a Recreate rollout: delete every old pod, and create new ones
// only once no old pod is left at all (oldLeft counts old pods that are still terminating too).
func RecreatePlan(c Counts, oldLeft int) Plan {
	if c.Old > 0 {
		return Plan{DeleteOldUnready: c.Old - c.OldReady, DeleteOldReady: c.OldReady}
	}
	if oldLeft > 0 {
		return Plan{}
	}
	return Plan{Create: max(0, c.Replicas-c.New), DeleteNew: max(0, c.New-c.Replicas)}
}

// Default rollout bounds, as in Kubernetes.
var (
	defaultMaxSurge       = events.FromString("25%")
	defaultMaxUnavailable = events.FromString("25%")
)

// Bounds resolves a RollingUpdate's maxSurge (rounded up) and maxUnavailable (rounded down)
// against replicas. Values that do not parse fall back to the defaults; both 0, which admission
// rejects, becomes maxUnavailable 1, as Kubernetes does, so a rollout can never stall on it.
func Bounds(s events.DeploymentStrategy, replicas int) (surge, unavailable int) {
	ms, mu := defaultMaxSurge, defaultMaxUnavailable
	if ru := s.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			ms = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
	}
	surge, err := ms.ScaledValue(replicas, true)
	if err != nil || surge < 0 {
		surge, _ = defaultMaxSurge.ScaledValue(replicas, true)
	}
	unavailable, err = mu.ScaledValue(replicas, false)
	if err != nil || unavailable < 0 {
		unavailable, _ = defaultMaxUnavailable.ScaledValue(replicas, false)
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}
