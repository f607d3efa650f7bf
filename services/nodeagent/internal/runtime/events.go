package runtime

import (
	"context"
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/events"
	"github.com/containerd/typeurl/v2"
)

// EventType says what happened.
type EventType string

const (
	// EventExit: a container's or sandbox's main process exited.
	EventExit EventType = "exit"
	// EventOOM: the kernel OOM-killed a process of the container. An
	// EventExit usually follows; ContainerStatus.OOMKilled says the same
	// without the event.
	EventOOM EventType = "oom"
	// EventResync: the event stream was re-established after containerd
	// went away (restart, crash). Events of the gap are lost: List, and
	// compare with what you expect.
	EventResync EventType = "resync"
)

// Event is a task event of this runtime's namespace. A restarted container
// keeps its ID, so a late exit event of the previous run can arrive after
// the next run started: an exit with ExitedAt before the container's
// ContainerStatus.StartedAt belongs to an earlier run.
type Event struct {
	Type        EventType
	ContainerID string
	// Kind, Pod and Name come from the container's labels; they are empty
	// when the container was removed before the event was handled.
	Kind     Kind
	Pod      PodRef
	Name     string
	ExitCode uint32    // EventExit
	ExitedAt time.Time // EventExit
}

// Watch streams task exits and OOM kills of the runtime's namespace until
// ctx ends or the Runtime is closed, then closes the channel. When
// containerd goes away, Watch retries with backoff and, once subscribed
// again, sends EventResync. Read the channel promptly: Watch blocks on it
// rather than drop an exit.
func (r *Runtime) Watch(ctx context.Context) <-chan Event {
	out := make(chan Event, 64)
	ctx, cancel := context.WithCancel(r.ns(ctx))
	go func() {
		select {
		case <-r.closed:
		case <-ctx.Done():
		}
		cancel()
	}()
	// The first subscription is sent before Watch returns, so that a
	// caller that watches and then starts a container sees its exit.
	sub := r.subscribe(ctx)
	go r.watch(ctx, sub, out)
	return out
}

type subscription struct {
	envelopes <-chan *events.Envelope
	errs      <-chan error
	cancel    context.CancelFunc
}

func (r *Runtime) subscribe(ctx context.Context) subscription {
	subCtx, cancel := context.WithCancel(ctx)
	envelopes, errs := r.client.EventService().Subscribe(subCtx,
		fmt.Sprintf(`namespace==%s,topic=="/tasks/exit"`, r.cfg.Namespace),
		fmt.Sprintf(`namespace==%s,topic=="/tasks/oom"`, r.cfg.Namespace))
	return subscription{envelopes: envelopes, errs: errs, cancel: cancel}
}

func (r *Runtime) watch(ctx context.Context, sub subscription, out chan<- Event) {
	defer close(out)
	const minBackoff, maxBackoff = 50 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	for {
		err := r.pump(ctx, sub.envelopes, sub.errs, out, func() { backoff = minBackoff })
		sub.cancel()
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("containerd event stream broke; resubscribing", "err", err)
		// Wait until containerd answers again: a subscription to a daemon
		// that is down fails at once and would spin.
		if !r.waitServing(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, maxBackoff)
		sub = r.subscribe(ctx)
		r.log.Info("containerd event stream re-established")
		if !send(ctx, out, Event{Type: EventResync}) {
			sub.cancel()
			return
		}
	}
}

// pump forwards events until the subscription fails or ctx ends.
func (r *Runtime) pump(ctx context.Context, envelopes <-chan *events.Envelope, errs <-chan error, out chan<- Event, healthy func()) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case env, ok := <-envelopes:
			if !ok {
				return fmt.Errorf("event stream closed")
			}
			healthy()
			ev, ok := r.decode(ctx, env)
			if ok && !send(ctx, out, ev) {
				return ctx.Err()
			}
		}
	}
}

func (r *Runtime) decode(ctx context.Context, env *events.Envelope) (Event, bool) {
	v, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		r.log.Warn("undecodable containerd event", "topic", env.Topic, "err", err)
		return Event{}, false
	}
	var ev Event
	switch e := v.(type) {
	case *apievents.TaskExit:
		if e.ID != e.ContainerID {
			return Event{}, false // an exec'd process, not the container's
		}
		ev = Event{Type: EventExit, ContainerID: e.ContainerID, ExitCode: e.ExitStatus}
		if e.ExitedAt != nil {
			ev.ExitedAt = e.ExitedAt.AsTime()
		}
	case *apievents.TaskOOM:
		ev = Event{Type: EventOOM, ContainerID: e.ContainerID}
	default:
		return Event{}, false
	}
	if c, err := r.client.LoadContainer(ctx, ev.ContainerID); err == nil {
		if labels, err := c.Labels(ctx); err == nil {
			if labels[LabelKind] == "" {
				return Event{}, false // not ours
			}
			ev.Kind = Kind(labels[LabelKind])
			ev.Pod = podFromLabels(labels)
			ev.Name = labels[LabelContainerName]
		}
	}
	return ev, true
}

func (r *Runtime) waitServing(ctx context.Context, backoff time.Duration) bool {
	for {
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, _ := r.client.IsServing(tctx)
		cancel()
		if ok {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
