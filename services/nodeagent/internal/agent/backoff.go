package agent

import "time"

// Backoff is Kubernetes' crash-loop back-off for one container: the delay before a restart
// starts at Base and doubles with every restart up to Cap, and resets once the container has run
// for ResetAfter without exiting.
type Backoff struct {
	Base, Cap, ResetAfter time.Duration
}

// DefaultBackoff is the kubelet's: 10 s doubling to 5 min, reset after 10 min of running.
var DefaultBackoff = Backoff{Base: 10 * time.Second, Cap: 5 * time.Minute, ResetAfter: 10 * time.Minute}

// crashLoop tracks the back-off of one container.
type crashLoop struct {
	delay time.Duration // the delay the next restart waits; 0 before the first restart
	until time.Time     // no restart before this
	// finished is the exit the current delay was computed for.
	finished time.Time
}

// exited records an exit at finished of a run that started at started, and returns when the
// container may restart.
func (b Backoff) exited(c *crashLoop, started, finished time.Time) time.Time {
	if !started.IsZero() && finished.Sub(started) >= b.ResetAfter {
		c.delay = 0
	}
	switch {
	case c.delay == 0:
		c.delay = b.Base
	default:
		c.delay = min(2*c.delay, b.Cap)
	}
	c.until = finished.Add(c.delay)
	return c.until
}
