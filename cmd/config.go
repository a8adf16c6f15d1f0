package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/config"
)

func newConfigCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Check a configuration, or print a commented example",
		// Runnable, so that a mistyped subcommand fails instead of printing help.
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr(fmt.Errorf("unknown command %q for %q: want check or example (see `%s --help`)", args[0], c.CommandPath(), c.CommandPath()))
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	var flags configFlags
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration (exit 0 if valid, 2 if not)",
		Long: `Read the config file and the flags exactly as ` + "`hafeed run`" + ` would and report every
problem with its file, line and key. Exit 0 when valid, 2 when not.`,
		Example: `  hafeed config check --config /etc/hafeed/hafeed.yaml
  hafeed config example > hafeed.yaml && hafeed config check -c hafeed.yaml`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, path, err := flags.load(c)
			if err != nil {
				return err
			}
			if path == "" {
				path = "no config file (defaults)"
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: configuration is valid\n", path)
			return nil
		},
	}
	flags.register(check, allFlags)
	example := &cobra.Command{
		Use:     "example",
		Short:   "Print a commented configuration with every key and its default",
		Example: `  hafeed config example > /etc/hafeed/hafeed.yaml`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := c.OutOrStdout().Write(config.Example())
			return err
		},
	}
	c.AddCommand(check, example)
	return c
}
