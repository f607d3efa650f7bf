package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/state"
	"skiff.dev/events/store"
	"skiff.dev/events/table"
	schedsvc "skiff.dev/services/scheduler"
)

func init() { register(newExplainCmd) }

// explainNodes is how many node names explain lists per reason; -o json has them all.
const explainNodes = 6

func newExplainCmd(a *app) *cobra.Command {
	var at, output string
	var replay bool
	cmd := &cobra.Command{
		Use:   "explain pod NAME",
		Short: "Say why a pod is where it is, or why it is nowhere, from the log",
		Long: "Explain a pod's placement from the event log.\n\n" +
			"Scheduled: the node chosen, the decision's numbers, and the top candidates with each part of\n" +
			"their score, found by running the scheduler's own code again on the state the decision saw (the\n" +
			"log up to the decision's recorded state sequence, with the decisions made since assumed).\n" +
			"Pending: every node with the reason it was filtered out, as the scheduler recorded them.\n" +
			"Both: the chain of events from the user's command to the pod's current status (causation ids).\n\n" +
			"--replay says whether the re-run picks the recorded node (and fails when it does not); for a\n" +
			"pending pod it decides the pod again on the state at the point asked for.\n" +
			"--at takes " + pointHelp + ".",
		Example: "  skiff explain pod web-7d4b9c6f5-x2x9q\n  skiff explain pod big --at 10m\n  skiff explain pod/web-7d4b9c6f5-x2x9q --replay",
		Args:    argsRange(1, 2, "pod NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, name, err := kindAndName(cmd, args, true)
			if err != nil {
				return err
			}
			if res.Plural != table.Pods {
				return usage(cmd, "explain knows pods only, not %s", res.Plural)
			}
			if output != "" && output != "json" {
				return usage(cmd, "unknown output format %q: explain prints text, or json", output)
			}
			ex, err := a.explainPod(cmd.Context(), res, name, at, replay)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(a.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(ex); err != nil {
					return err
				}
			} else if err := ex.print(a.Stdout); err != nil {
				return err
			}
			if replay && ex.Replay != nil && !ex.Replay.Same {
				return errorf(events.ErrConflict, "the re-run picks %s, not the recorded %s", orNowhere(ex.Replay.Node), orNowhere(ex.Replay.Recorded))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&at, "at", "", atHelp)
	cmd.Flags().BoolVar(&replay, "replay", false, "run the decision again and say whether it picks the same node")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

// explanation is what explain found; -o json prints it as is.
type explanation struct {
	Pod   string `json:"pod"`
	Phase string `json:"phase"`
	Node  string `json:"node,omitempty"`
	AtSeq uint64 `json:"atSeq"`
	// Scheduled and Unschedulable are the pod's last decision of each kind.
	Scheduled     *scheduledInfo     `json:"scheduled,omitempty"`
	Unschedulable *unschedulableInfo `json:"unschedulable,omitempty"`
	Replay        *replayVerdict     `json:"replay,omitempty"`
	Chain         []chainLink        `json:"chain"`
}

type scheduledInfo struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Score    int64     `json:"score"`
	Feasible int       `json:"feasible"`
	Looked   int       `json:"looked"`
	StateSeq uint64    `json:"stateSeq"`
	// Rerun is the decision made again (candidates and all); nil when it cannot be.
	Rerun      *schedsvc.Rerun `json:"rerun,omitempty"`
	RerunError string          `json:"rerunError,omitempty"`
	recorded   schedsvc.Recorded
}

type unschedulableInfo struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Message  string    `json:"message"`
	StateSeq uint64    `json:"stateSeq"`
	// Nodes are the node names behind each reason; NodesError says why they are not known.
	Nodes      map[string][]string `json:"nodes,omitempty"`
	NodesError string              `json:"nodesError,omitempty"`
	event      *events.PodUnschedulable
}

type replayVerdict struct {
	AtSeq    uint64 `json:"atSeq"`
	Recorded string `json:"recorded,omitempty"`
	Node     string `json:"node,omitempty"`
	Message  string `json:"message,omitempty"`
	Same     bool   `json:"same"`
}

type chainLink struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Type    string    `json:"type"`
	Subject string    `json:"subject"`
}

func (a *app) explainPod(ctx context.Context, res table.Resource, name, at string, replay bool) (*explanation, error) {
	ns := namespaceOf(res, a.namespace)
	v, err := a.openView(ctx, at)
	if err != nil {
		return nil, err
	}
	raw, err := v.getObject(ctx, res, ns, name)
	if err != nil {
		return nil, err
	}
	var p events.Pod
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	st, err := a.logStore(ctx)
	if err != nil {
		return nil, err
	}
	upTo := v.upTo()
	if upTo == 0 {
		if upTo, err = st.Head(ctx); err != nil {
			return nil, err
		}
	}
	var history []*events.Event
	err = st.Read(ctx, store.ReadOptions{Filters: objectFilters(res, ns, name), To: upTo}, func(ev *events.Event) error {
		if u := events.PodUID(ev.Data); u == "" || u == p.Metadata.UID {
			history = append(history, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the history of pod %s: %w", name, err)
	}
	ex := &explanation{Pod: ns + "/" + name, Phase: string(p.Status.Phase), Node: p.Spec.NodeName, AtSeq: upTo}
	key := state.Key{Namespace: ns, Name: name}
	for _, ev := range history {
		switch d := ev.Data.(type) {
		case *events.PodScheduled:
			ex.Unschedulable = nil // an attempt before the decision says nothing about it now
			ex.Scheduled = &scheduledInfo{Seq: ev.Seq, Time: ev.Time, Actor: ev.Actor, Score: d.Score, Feasible: d.Feasible, Looked: d.Nodes, StateSeq: d.StateSeq,
				recorded: schedsvc.Recorded{Seq: ev.Seq, Pod: key, UID: d.UID, Node: d.Node, StateSeq: d.StateSeq}}
		case *events.PodUnschedulable:
			ex.Unschedulable = &unschedulableInfo{Seq: ev.Seq, Time: ev.Time, Message: d.Message, StateSeq: d.StateSeq, event: d}
		}
	}
	if u := ex.Unschedulable; u != nil {
		if u.StateSeq == 0 || u.event.NodeReasons == nil {
			u.NodesError = "recorded before PodUnschedulable named its nodes: only the counts are known"
		} else if u.Nodes, err = a.nodesOf(ctx, st, u.event); err != nil {
			u.NodesError = err.Error()
		}
	}
	if s := ex.Scheduled; s != nil {
		rerun, err := schedsvc.ExplainDecision(ctx, st, s.recorded, schedsvc.RerunOptions{})
		if err != nil {
			s.RerunError = err.Error()
		} else {
			s.Rerun = &rerun
			if replay {
				ex.Replay = &replayVerdict{AtSeq: s.StateSeq, Recorded: s.recorded.Node, Node: rerun.Node, Message: rerun.Message, Same: rerun.Node == s.recorded.Node}
			}
		}
		if replay && err != nil {
			return nil, fmt.Errorf("re-run the decision at sequence %d: %w", s.Seq, err)
		}
	} else if replay {
		// Pending: decide it again on the state at the point asked for (folded already for --at).
		fold := v.fold
		if fold == nil {
			if fold, err = a.foldTo(ctx, st, upTo); err != nil {
				return nil, err
			}
		}
		rerun, err := schedsvc.RerunDecision(fold, key, nil, schedsvc.RerunOptions{})
		if err != nil {
			return nil, fmt.Errorf("decide pod %s again at sequence %d: %w", name, upTo, err)
		}
		ex.Replay = &replayVerdict{AtSeq: upTo, Node: rerun.Node, Message: rerun.Message, Same: true}
	}
	if len(history) > 0 {
		if ex.Chain, err = causalChain(ctx, st, history[len(history)-1], upTo); err != nil {
			return nil, err
		}
	}
	return ex, nil
}

// nodesOf names the nodes behind each reason of d: positions in the nodes, sorted by name, of
// the fold at d.StateSeq, checked against the digest d carries.
func (a *app) nodesOf(ctx context.Context, st *store.Store, d *events.PodUnschedulable) (map[string][]string, error) {
	fold, err := a.foldTo(ctx, st, d.StateSeq)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(fold.Nodes))
	for n := range fold.Nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	if got := events.NodeSetDigest(names); got != d.NodeSet {
		return nil, fmt.Errorf("the log's nodes at sequence %d (%s) are not the ones the scheduler saw (%s)", d.StateSeq, got, d.NodeSet)
	}
	out := map[string][]string{}
	for reason, ranges := range d.NodeReasons {
		ps, err := events.ParseNodePositions(ranges, len(names))
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out[reason] = append(out[reason], names[p])
		}
	}
	return out, nil
}

// foldTo folds the log up to seq.
func (a *app) foldTo(ctx context.Context, st *store.Store, seq uint64) (*state.State, error) {
	var out *state.State
	err := foldLog(ctx, st, []point{{seq: seq}}, func(_ int, f *folded) error {
		out = f.State
		return nil
	})
	return out, err
}

// causalChain walks from last back through causation ids to the command that began it, among
// the events of last's correlation up to upTo.
func causalChain(ctx context.Context, st *store.Store, last *events.Event, upTo uint64) ([]chainLink, error) {
	byID := map[string]*events.Event{last.ID: last}
	if last.CorrelationID != "" {
		err := st.Read(ctx, store.ReadOptions{To: upTo, Raw: true}, func(ev *events.Event) error {
			if ev.CorrelationID == last.CorrelationID {
				byID[ev.ID] = ev
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the events of command %s: %w", last.CorrelationID, err)
		}
	}
	var chain []chainLink
	for ev := last; ev != nil; ev = byID[ev.CausationID] {
		chain = append(chain, chainLink{Seq: ev.Seq, Time: ev.Time, Actor: ev.Actor, Type: ev.Type, Subject: ev.Subject})
		if ev.CausationID == "" || ev.CausationID == ev.ID || len(chain) > len(byID) {
			break
		}
	}
	slices.Reverse(chain)
	return chain, nil
}

func (ex *explanation) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Pod %s: %s", ex.Pod, ex.Phase)
	if ex.Node != "" {
		fmt.Fprintf(tw, " on node %s", ex.Node)
	}
	fmt.Fprintf(tw, " (the log up to sequence %d)\n", ex.AtSeq)
	if s := ex.Scheduled; s != nil {
		fmt.Fprintf(tw, "\nScheduled at sequence %d (%s) by %s: score %d, %d feasible of %s looked at; its state was the log up to %d.\n",
			s.Seq, s.Time.UTC().Format(time.RFC3339), s.Actor, s.Score, s.Feasible, count(s.Looked, "node"), s.StateSeq)
		if r := s.Rerun; r != nil {
			fmt.Fprintf(tw, "Re-run on that state (%s, %s made since assumed): %s, score %d.\n", count(r.Nodes, "node"), count(r.Assumed, "decision"), orNowhere(r.Node), r.Score)
			fmt.Fprintln(tw, "\n  NODE\tSCORE\tLEAST-ALLOCATED\tSPREAD")
			for _, c := range r.Candidates {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", c.Node, c.Score, c.LeastAllocated, c.Spread)
			}
			printRejected(tw, r.Rejected)
		} else {
			fmt.Fprintf(tw, "Cannot re-run it: %s\n", s.RerunError)
		}
	}
	if u := ex.Unschedulable; u != nil {
		fmt.Fprintf(tw, "\nUnschedulable at sequence %d (%s): %s\n", u.Seq, u.Time.UTC().Format(time.RFC3339), u.Message)
		if u.NodesError != "" {
			fmt.Fprintf(tw, "The nodes behind the reasons: %s\n", u.NodesError)
		} else {
			printRejected(tw, u.Nodes)
		}
	}
	if ex.Scheduled == nil && ex.Unschedulable == nil && ex.Node == "" {
		fmt.Fprintln(tw, "\nNo scheduling decision yet: the scheduler has not looked at the pod, or it is waiting out a back-off.")
	}
	if r := ex.Replay; r != nil {
		switch {
		case r.Recorded == "" && r.Node == "":
			fmt.Fprintf(tw, "\nDecided again at sequence %d: still fits nowhere: %s\n", r.AtSeq, r.Message)
		case r.Recorded == "":
			fmt.Fprintf(tw, "\nDecided again at sequence %d: it would go to %s.\n", r.AtSeq, r.Node)
		case r.Same:
			fmt.Fprintf(tw, "\nReplay: the scheduler's code picks %s again: the same node.\n", r.Node)
		default:
			fmt.Fprintf(tw, "\nReplay: the scheduler's code now picks %s, not the recorded %s.\n", orNowhere(r.Node), r.Recorded)
		}
	}
	if len(ex.Chain) > 0 {
		fmt.Fprintln(tw, "\nHow it got here (causation, from the command):")
		fmt.Fprintln(tw, "  SEQ\tAFTER\tACTOR\tEVENT\tSUBJECT")
		t0 := ex.Chain[0].Time
		for _, l := range ex.Chain {
			fmt.Fprintf(tw, "  %d\t+%s\t%s\t%s\t%s\n", l.Seq, shortDuration(l.Time.Sub(t0)), l.Actor, l.Type, l.Subject)
		}
	}
	return tw.Flush()
}

// printRejected lists nodes by reason, a few names each.
func printRejected(w io.Writer, byReason map[string][]string) {
	if len(byReason) == 0 {
		return
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	fmt.Fprintln(w, "\n  REASON\tNODES\tWHICH")
	for _, r := range reasons {
		names := byReason[r]
		which := strings.Join(names[:min(len(names), explainNodes)], ", ")
		if len(names) > explainNodes {
			which += fmt.Sprintf(" and %d more (-o json lists all)", len(names)-explainNodes)
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\n", r, len(names), which)
	}
}

func orNowhere(node string) string {
	if node == "" {
		return "no node"
	}
	return node
}
