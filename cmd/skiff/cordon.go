package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"skiff.dev/events/api"
)

func init() {
	register(func(a *app) *cobra.Command { return newCordonCmd(a, true) })
	register(func(a *app) *cobra.Command { return newCordonCmd(a, false) })
}

func newCordonCmd(a *app, cordon bool) *cobra.Command {
	use, short := "cordon NODE", "Keep new pods off a node"
	if !cordon {
		use, short = "uncordon NODE", "Let new pods onto a node again"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  argsRange(1, 1, "NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.cordon(cmd.Context(), args[0], cordon)
		},
	}
}

func (a *app) cordon(ctx context.Context, node string, cordon bool) error {
	resp, err := a.call(ctx, api.SubjectCordon, api.CordonRequest{Node: node, Cordon: cordon, Traceparent: a.traceparent(ctx)})
	if err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	verb := "cordoned"
	if !cordon {
		verb = "uncordoned"
	}
	if len(resp.Results) == 0 {
		fmt.Fprintf(a.Stdout, "node/%s %s\n", node, verb)
	}
	for _, r := range resp.Results {
		if r.Action == "unchanged" {
			fmt.Fprintf(a.Stdout, "node/%s already %s\n", r.Name, verb)
			continue
		}
		fmt.Fprintf(a.Stdout, "%s %s\n", resultRef(r), r.Action)
	}
	return nil
}
