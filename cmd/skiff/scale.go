package main

import (
	"context"
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"skiff.dev/events/api"
	"skiff.dev/events/table"
)

func init() { register(newScaleCmd) }

func newScaleCmd(a *app) *cobra.Command {
	var replicas int64
	cmd := &cobra.Command{
		Use:     "scale deployment NAME --replicas N",
		Short:   "Set the number of replicas of a Deployment",
		Example: "  skiff scale deployment web --replicas 5\n  skiff scale deploy/web --replicas 0",
		Args:    argsRange(1, 2, "deployment NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, name, err := kindAndName(cmd, args, true)
			if err != nil {
				return err
			}
			if res.Plural != table.Deployments {
				return usage(cmd, "only deployments can be scaled, not %s", res.Plural)
			}
			if !cmd.Flags().Changed("replicas") {
				return usage(cmd, "say how many replicas with --replicas N")
			}
			if replicas < 0 || replicas > math.MaxInt32 {
				return usage(cmd, "--replicas must be 0 or more, got %d", replicas)
			}
			return a.scale(cmd.Context(), res, name, int32(replicas))
		},
	}
	cmd.Flags().Int64Var(&replicas, "replicas", 0, "the new number of replicas")
	return cmd
}

func (a *app) scale(ctx context.Context, res table.Resource, name string, replicas int32) error {
	resp, err := a.call(ctx, api.SubjectScale, api.ScaleRequest{Namespace: a.namespace, Name: name, Replicas: replicas, Traceparent: a.traceparent(ctx)})
	if err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	if len(resp.Results) == 0 {
		fmt.Fprintf(a.Stdout, "%s scaled\n", res.Ref(name))
	}
	for _, r := range resp.Results {
		fmt.Fprintf(a.Stdout, "%s %s\n", resultRef(r), r.Action)
	}
	return nil
}
