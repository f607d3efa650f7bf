package main

import (
	"github.com/spf13/cobra"
)

// group is a command that only holds subcommands (events, rollout): run bare it prints its
// help; with an unknown subcommand it is a usage error, not a silent help page.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return usage(cmd, "unknown command %q for %q", args[0], cmd.CommandPath())
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}
