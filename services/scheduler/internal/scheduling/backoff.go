package scheduling

import (
	"time"

	"skiff.dev/events/state"
)

// backoff remembers the pods that could not be placed (or whose write failed) and decides when
// to try them again. A pod that fit nowhere is tried as soon as the cluster changed in a way
// that could make it fit (a node appeared, became Ready or schedulable, gained capacity or freed
// requests), and otherwise after its back-off (1 s, doubling up to 10 s, as kube-scheduler's
// podInitialBackoff/podMaxBackoff) once a long while passed without any such change
// (retryAfter, a safety net like kube-scheduler's unschedulable-queue flush). Unlike
// kube-scheduler it does not wait out the back-off after a change: a pod must never wait for a
// timer while it could be placed. A pod whose write failed waits out its back-off only.
//
// Not safe for concurrent use: the scheduler's loop owns it.
type backoff struct {
	initial, max, retryAfter time.Duration
	entries                  map[state.Key]*backoffEntry
	// pass numbers the scheduler's passes; entries not touched in a pass are dropped by sweep.
	pass uint64
}

type backoffEntry struct {
	uid      string
	attempts int
	until    time.Time
	lastTry  time.Time
	// gen is the cluster generation the pod last failed in; 0 for write failures, which wait out
	// the back-off only.
	gen         uint64
	unplaceable bool
	// message is the last PodUnschedulable message written (or being written) for the pod.
	message string
	// seen is the last pass that saw the pod pending or touched the entry.
	seen uint64
}

func newBackoff(initial, max, retryAfter time.Duration) *backoff {
	return &backoff{initial: initial, max: max, retryAfter: retryAfter, entries: map[state.Key]*backoffEntry{}}
}

// delay is the back-off after the given number of failed attempts.
func (b *backoff) delay(attempts int) time.Duration {
	d := b.initial
	for i := 1; i < attempts && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// entry returns the pod's entry, starting a new one if the pod (by UID) is new.
func (b *backoff) entry(k state.Key, uid string) *backoffEntry {
	e := b.entries[k]
	if e == nil || e.uid != uid {
		e = &backoffEntry{uid: uid}
		b.entries[k] = e
	}
	e.seen = b.pass
	return e
}

// unplaceable records that the pod fit nowhere at now, in cluster generation gen.
func (b *backoff) unplaceable(k state.Key, uid string, now time.Time, gen uint64) *backoffEntry {
	e := b.entry(k, uid)
	e.attempts++
	e.unplaceable = true
	e.gen = gen
	e.lastTry = now
	e.until = now.Add(b.delay(e.attempts))
	return e
}

// failed records that writing the pod's decision failed for a reason unrelated to the cluster
// (the log was unavailable): retry after the back-off, whatever changes.
func (b *backoff) failed(k state.Key, uid string, now time.Time) {
	e := b.entry(k, uid)
	e.attempts++
	e.unplaceable = false
	e.lastTry = now
	e.until = now.Add(b.delay(e.attempts))
}

// beginPass starts a pass: entries not seen by eligible (or touched) before sweep are dropped.
func (b *backoff) beginPass() { b.pass++ }

// eligible reports whether pod k may be tried at now in cluster generation gen, and marks it
// seen in this pass.
func (b *backoff) eligible(k state.Key, uid string, now time.Time, gen uint64) bool {
	e := b.entries[k]
	if e == nil {
		return true
	}
	if e.uid != uid {
		delete(b.entries, k)
		return true
	}
	e.seen = b.pass
	if e.unplaceable && gen > e.gen {
		// The cluster changed in a way that may make it fit: try now, back-off or not. A pod
		// never waits for a timer while it could be placed (each change allows one try, and
		// pods of one requirement class are searched once per batch).
		return true
	}
	if now.Before(e.until) {
		return false
	}
	return !e.unplaceable || !now.Before(e.lastTry.Add(b.retryAfter))
}

// next is the earliest time at which some pod could become eligible without further changes to
// the cluster, or the zero time if none can.
func (b *backoff) next(gen uint64) time.Time {
	var t time.Time
	for _, e := range b.entries {
		at := e.until
		switch {
		case e.unplaceable && gen > e.gen:
			at = e.lastTry // eligible already
		case e.unplaceable:
			at = e.lastTry.Add(b.retryAfter)
			if at.Before(e.until) {
				at = e.until
			}
		}
		if t.IsZero() || at.Before(t) {
			t = at
		}
	}
	return t
}

// sweep drops the entries of pods this pass did not see pending (bound, deleted, or being
// scheduled right now).
func (b *backoff) sweep() {
	for k, e := range b.entries {
		if e.seen != b.pass {
			delete(b.entries, k)
		}
	}
}
