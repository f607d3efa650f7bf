package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/store"
	schedsvc "skiff.dev/services/scheduler"
)

// verifyListed is how many diverging decisions verify lists before it only counts.
const verifyListed = 50

func newEventsVerifyCmd(a *app) *cobra.Command {
	var until string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Make every scheduling decision in the log again and list those that come out different",
		Long: "Run this version's scheduling code on every decision the log records (each PodScheduled, on the\n" +
			"log folded to the state that decision saw, with the scheduler's decisions made since assumed)\n" +
			"and list the decisions for which it picks another node: what to run after upgrading the\n" +
			"scheduler. Decisions are deterministic given the state, so on an unchanged scheduler none\n" +
			"differ. It exits non-zero when some do. --until takes " + pointHelp + ".",
		Example: "  skiff events verify\n  skiff events verify --until 1h",
		Args:    argsRange(0, 0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.logStore(cmd.Context())
			if err != nil {
				return err
			}
			var to uint64
			if until != "" {
				p, err := parsePoint("--until", until, a.Now())
				if err != nil {
					return err
				}
				b, err := a.logBounds(cmd.Context(), st)
				if err != nil {
					return err
				}
				if err := b.check(p); err != nil {
					return err
				}
				if to, err = a.seqOf(cmd.Context(), st, p); err != nil {
					return err
				}
			}
			return eventsVerify(cmd.Context(), st, to, a.Stdout)
		},
	}
	cmd.Flags().StringVar(&until, "until", "", "verify the decisions up to this point only")
	return cmd
}

// seqOf is the last sequence at or before p: for a time, the envelopes are read (no payload
// decoded, nothing folded) until the first event past it.
func (a *app) seqOf(ctx context.Context, st *store.Store, p point) (uint64, error) {
	if p.isSeq() {
		return p.seq, nil
	}
	var seq uint64
	err := st.Read(ctx, store.ReadOptions{Raw: true}, func(ev *events.Event) error {
		if p.past(ev) {
			return errFoldDone
		}
		seq = ev.Seq
		return nil
	})
	if err != nil && !errors.Is(err, errFoldDone) {
		return 0, fmt.Errorf("find the end of --until: %w", err)
	}
	return seq, nil
}

func eventsVerify(ctx context.Context, st *store.Store, to uint64, w io.Writer) error {
	var total, same, unrecorded int
	var first, last uint64
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	listed := 0
	err := schedsvc.Verify(ctx, st, to, schedsvc.RerunOptions{}, func(v schedsvc.Verdict) error {
		total++
		if first == 0 {
			first = v.Seq
		}
		last = v.Seq
		switch {
		case v.Same():
			same++
			return nil
		case errors.Is(v.Err, schedsvc.ErrNotRecorded):
			unrecorded++
			return nil
		}
		if listed++; listed == 1 {
			fmt.Fprintln(tw, "SEQ\tPOD\tRECORDED\tNOW\tSTATE-SEQ\tWHY")
		}
		if listed <= verifyListed {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", v.Seq, v.Pod, v.Node, orNowhere(v.Rerun.Node), v.StateSeq, whyDiffers(v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if listed > verifyListed {
		fmt.Fprintf(tw, "… and %d more\n", listed-verifyListed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if total == 0 {
		fmt.Fprintln(w, "The log holds no scheduling decision.")
		return nil
	}
	fmt.Fprintf(w, "Made %s again (sequences %d–%d): %d the same, %d different", count(total, "scheduling decision"), first, last, same, total-same-unrecorded)
	if unrecorded > 0 {
		fmt.Fprintf(w, ", %d recorded without their state's sequence (not re-runnable)", unrecorded)
	}
	fmt.Fprintln(w, ".")
	if d := total - same - unrecorded; d > 0 {
		return errorf(events.ErrConflict, "%d of %d decisions come out different with this scheduler", d, total)
	}
	return nil
}

// whyDiffers says in a few words why the re-run left the recorded node.
func whyDiffers(v schedsvc.Verdict) string {
	if v.Err != nil {
		return v.Err.Error()
	}
	if v.Rerun.Node == "" {
		return v.Rerun.Message
	}
	for reason, nodes := range v.Rerun.Rejected {
		if slices.Contains(nodes, v.Node) {
			return v.Node + ": " + reason
		}
	}
	for _, c := range v.Rerun.Candidates {
		if c.Node == v.Node {
			return fmt.Sprintf("score %d against %d for %s", v.Rerun.Score, c.Score, v.Node)
		}
	}
	return fmt.Sprintf("score %d; %s was not among the %s looked at, or scored lower than the top", v.Rerun.Score, v.Node, count(v.Rerun.Evaluated, "node"))
}
