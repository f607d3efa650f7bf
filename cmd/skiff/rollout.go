package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/table"
)

func init() {
	register(func(a *app) *cobra.Command {
		return group("rollout", "Follow the rollout of a Deployment", newRolloutStatusCmd(a))
	})
}

func newRolloutStatusCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status deployment NAME",
		Short: "Wait until a Deployment's rollout is done, printing its progress",
		Long: "Wait until the Deployment's controller has seen its latest spec and every replica is updated and\n" +
			"available, printing progress as it happens. Exits non-zero if the rollout fails or --timeout passes.",
		Example: "  skiff rollout status deployment web\n  skiff rollout status deploy/web --timeout 2m",
		Args:    argsRange(1, 2, "deployment NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, name, err := kindAndName(cmd, args, true)
			if err != nil {
				return err
			}
			if res.Plural != table.Deployments {
				return usage(cmd, "rollout status follows deployments only, not %s", res.Plural)
			}
			return a.rolloutStatus(cmd.Context(), name, timeout)
		},
	}
	// Shadows the global --timeout: here it bounds the whole wait, as kubectl's does.
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait until done)")
	return cmd
}

// rolloutStatus folds the Deployment's own subject, which holds everything its status is made
// of (applied, scaled, rollout progressed), so it needs no scheduler and never misses a step:
// the fold is exact, and every event after the catch-up is judged as it arrives.
func (a *app) rolloutStatus(ctx context.Context, name string, timeout time.Duration) error {
	st, err := a.logStore(ctx)
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()

	res, _ := table.Lookup(table.Deployments)
	key := state.Key{Namespace: a.namespace, Name: name}
	fold := state.New()
	var (
		caughtUp, seen, done bool
		result               error
		last                 string
	)
	check := func() {
		d := fold.Deployments[key]
		switch {
		case d == nil && seen:
			result, done = errorf(events.ErrNotFound, "deployment %q was deleted during its rollout", name), true
		case d == nil:
			result, done = notFound(res, name), true
		default:
			seen = true
			msg, finished, err := rolloutProgress(name, &d.Deployment)
			switch {
			case err != nil:
				result, done = err, true
			case msg != last:
				fmt.Fprintln(a.Stdout, msg)
				last = msg
			}
			done = done || finished
		}
		if done {
			stop()
		}
	}
	err = st.Follow(fctx, store.FollowOptions{
		Filters: []string{events.ObjectSubject(events.KindDeployment, a.namespace, name)},
		CaughtUp: func(uint64) {
			caughtUp = true
			check()
		},
	}, func(ev *events.Event) {
		_ = fold.Apply(ev) // an event that does not apply changes nothing; the fold says so
		if caughtUp {
			check()
		}
	})
	switch {
	case done:
		return result
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		if last == "" {
			last = "the log did not catch up"
		}
		return fmt.Errorf("deployment %q rollout did not finish within %s; last status: %s", name, timeout, last)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("follow deployment %q: %w", name, err)
}

// rolloutProgress says where a rollout stands, in kubectl's words, and whether it is done: the
// controller has observed the latest generation, and every desired replica is updated,
// available, and no old one is left.
func rolloutProgress(name string, d *events.Deployment) (msg string, done bool, err error) {
	if d.Metadata.Generation > d.Status.ObservedGeneration {
		return "Waiting for deployment spec update to be observed...", false, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == "Progressing" && c.Reason == "ProgressDeadlineExceeded" {
			return "", false, errorf(events.ErrFailedPrecondition, "deployment %q exceeded its progress deadline", name)
		}
	}
	s, want := &d.Status, d.Spec.DesiredReplicas()
	switch {
	case s.UpdatedReplicas < want:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", name, s.UpdatedReplicas, want), false, nil
	case s.Replicas > s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", name, s.Replicas-s.UpdatedReplicas), false, nil
	case s.AvailableReplicas < s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", name, s.AvailableReplicas, s.UpdatedReplicas), false, nil
	}
	return fmt.Sprintf("deployment %q successfully rolled out", name), true, nil
}
