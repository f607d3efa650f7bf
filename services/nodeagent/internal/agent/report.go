package agent

import (
	"context"
	"errors"
	"fmt"

	"skiff.dev/events"
	"skiff.dev/events/telemetry"
	"skiff.dev/services/nodeagent/internal/work"
)

// maxReportAttempts bounds retries of one status append. Only this node writes its status
// subjects, so a conflict means this agent's own earlier write had not reached its view yet, or
// a previous incarnation of the agent wrote after the view was built.
const maxReportAttempts = 5

// append writes an event about a pod on this node's status subject, conditionally on the last
// sequence this agent knows of that subject.
func (a *Agent) append(ctx context.Context, key work.Key, p events.Payload) error {
	ref := events.ObjectRef{Kind: events.KindPod, Namespace: key.Namespace, Name: key.Name}
	for attempt := 1; ; attempt++ {
		a.mu.Lock()
		var meta events.Meta
		if wp := a.view.Pods[key]; wp != nil {
			ref.UID = wp.UID()
		}
		meta.Actor = a.actor
		// The report reacts to what the worker is working on (its pod's PodBound or
		// PodStopRequested), inside the worker's span when traced.
		meta.Traceparent = telemetry.Traceparent(ctx)
		meta = meta.From(causeOf(ctx))
		ev, err := events.New(a.cfg.Clock.Now(), meta, ref, a.cfg.Node, p)
		if err != nil {
			a.mu.Unlock()
			return err
		}
		expect := max(a.view.SubjectSeq(ev.Subject), a.written[ev.Subject])
		a.mu.Unlock()

		seq, err := a.cfg.Log.Append(ctx, ev, expect)
		if err == nil {
			a.mu.Lock()
			a.written[ev.Subject] = max(a.written[ev.Subject], seq)
			a.mu.Unlock()
			return nil
		}
		if !errors.Is(err, events.ErrConflict) || attempt == maxReportAttempts {
			return fmt.Errorf("append %s for %s: %w", ev.Type, key, err)
		}
		last, lerr := a.cfg.Log.LastSeq(ctx, ev.Subject)
		if lerr != nil {
			return fmt.Errorf("append %s for %s: %w", ev.Type, key, lerr)
		}
		a.mu.Lock()
		a.written[ev.Subject] = max(a.written[ev.Subject], last)
		a.mu.Unlock()
	}
}
