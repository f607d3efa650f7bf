package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/table"

	"skiff.dev/cmd/skiff/internal/manifest"
)

func init() { register(newApplyCmd) }

func newApplyCmd(a *app) *cobra.Command {
	var files []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or change objects from manifests",
		Long: "Create or change the objects of Kubernetes-shaped manifests: YAML (several documents separated by\n" +
			"---) or JSON files, directories of them, or - for standard input. The scheduler validates every\n" +
			"object before anything changes.",
		Example: "  skiff apply -f web.yaml\n  skiff apply -f manifests/\n  cat web.yaml | skiff apply -f -",
		Args:    argsRange(0, 0, "no arguments (name manifests with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usage(cmd, "name the manifests to apply with -f FILE, -f DIR or -f -")
			}
			ns := ""
			if cmd.Flags().Changed("namespace") {
				ns = a.namespace
			}
			return a.apply(cmd.Context(), files, ns, dryRun)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory of manifests, or - for standard input (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and report what would change, without changing anything")
	return cmd
}

func (a *app) apply(ctx context.Context, files []string, namespace string, dryRun bool) error {
	docs, err := manifest.Read(files, a.Stdin)
	if err != nil {
		return err
	}
	if namespace != "" {
		if err := manifest.SetNamespace(docs, namespace); err != nil {
			return err
		}
	}
	if len(docs) == 0 {
		return errorf(events.ErrInvalidArgument, "no objects passed to apply")
	}
	resp, err := a.call(ctx, api.SubjectApply, api.ApplyRequest{Documents: docs, DryRun: dryRun, Traceparent: a.traceparent(ctx)})
	if err != nil {
		return err
	}
	suffix := ""
	if dryRun {
		suffix = " (server dry run)"
	}
	for _, r := range resp.Results {
		fmt.Fprintf(a.Stdout, "%s %s%s\n", resultRef(r), r.Action, suffix)
	}
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}

// resultRef names a result's object as kubectl does: "deployment.apps/web".
func resultRef(r api.Result) string {
	if res, ok := table.Lookup(r.Kind); ok {
		return res.Ref(r.Name)
	}
	return api.ResourceName(r.Kind) + "/" + r.Name
}

// resultName names a deleted object as kubectl does: `deployment.apps "web"`.
func resultName(r api.Result) string {
	if res, ok := table.Lookup(r.Kind); ok {
		kind := res.Singular
		if res.Group != "" {
			kind += "." + res.Group
		}
		return fmt.Sprintf("%s %q", kind, r.Name)
	}
	return fmt.Sprintf("%s %q", api.ResourceName(r.Kind), r.Name)
}
