package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/api"

	"skiff.dev/cmd/skiff/internal/manifest"
)

func init() { register(newDeleteCmd) }

func newDeleteCmd(a *app) *cobra.Command {
	var files []string
	var grace int64
	cmd := &cobra.Command{
		Use:   "delete (-f FILE | KIND NAME... | KIND/NAME...)",
		Short: "Delete objects by manifest or by name",
		Example: "  skiff delete pod web-7d4b9c6f5-x2x9q\n  skiff delete deploy/web\n" +
			"  skiff delete pod web-a web-b\n  skiff delete -f web.yaml\n  skiff delete pod stuck --grace-period 0",
		Args: argsRange(0, 1000, "KIND NAME..., or -f FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.DeleteRequest{}
			if cmd.Flags().Changed("grace-period") {
				if grace < 0 {
					return usage(cmd, "--grace-period must be 0 or more seconds, got %d", grace)
				}
				req.GracePeriodSeconds = &grace
			}
			switch {
			case len(files) > 0 && len(args) > 0:
				return usage(cmd, "give either -f FILE or KIND NAME, not both")
			case len(files) > 0:
				docs, err := manifest.Read(files, a.Stdin)
				if err != nil {
					return err
				}
				if len(docs) == 0 {
					return errorf(events.ErrInvalidArgument, "no objects passed to delete")
				}
				if cmd.Flags().Changed("namespace") {
					if err := manifest.SetNamespace(docs, a.namespace); err != nil {
						return err
					}
				}
				req.Documents = docs
			case len(args) == 0:
				return usage(cmd, "name what to delete: KIND NAME, or -f FILE")
			default:
				// As kubectl: KIND NAME [NAME...] or KIND/NAME [KIND/NAME...], one request each,
				// going on past a failure and reporting every one.
				var targets [][]string
				switch {
				case strings.Contains(args[0], "/"):
					for _, arg := range args {
						targets = append(targets, []string{arg})
					}
				case len(args) == 1:
					targets = [][]string{args}
				default:
					for _, name := range args[1:] {
						targets = append(targets, []string{args[0], name})
					}
				}
				failed := false
				for _, target := range targets {
					res, name, err := kindAndName(cmd, target, true)
					if err != nil {
						return err
					}
					one := req
					one.Kind, one.Namespace, one.Name = res.Kind, namespaceOf(res, a.namespace), name
					if err := a.delete(cmd.Context(), one); err != nil {
						if len(targets) == 1 {
							return err
						}
						a.report(err)
						failed = true
					}
				}
				if failed {
					return errReported
				}
				return nil
			}
			return a.delete(cmd.Context(), req)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory, or - for standard input (repeatable)")
	cmd.Flags().Int64Var(&grace, "grace-period", 0, "seconds a pod gets to stop before it is killed (default: the pod's own)")
	return cmd
}

func (a *app) delete(ctx context.Context, req api.DeleteRequest) error {
	req.Traceparent = a.traceparent(ctx)
	resp, err := a.call(ctx, api.SubjectDelete, req)
	if err != nil {
		return err
	}
	for _, r := range resp.Results {
		fmt.Fprintf(a.Stdout, "%s %s\n", resultName(r), r.Action)
	}
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}
