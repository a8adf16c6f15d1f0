package cmd

import (
	"errors"
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
		Use:   "check [FILE]",
		Short: "Validate the configuration (exit 0 if valid, 2 if not)",
		Long: `Read the config file and the flags exactly as ` + "`hafeed run`" + ` would and report every
problem with its file, line and key. Exit 0 when valid, 2 when not. A valid
configuration that cannot do everything the package ships for it, such as
shedding for the drop-in hafeed-drain.conf, gets a warning on stderr.

FILE, like --config, names the file; without either, $HAFEED_CONFIG, else
` + config.DefaultConfigFile + ` when it exists, else the defaults are checked.`,
		Example: `  hafeed config check /etc/hafeed/hafeed.yaml
  hafeed config check --config /etc/hafeed/hafeed.yaml --ports 8080
  hafeed config example > hafeed.yaml && hafeed config check hafeed.yaml`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErr(fmt.Errorf("%s takes one config file, got %q (see `%s --help`)", c.CommandPath(), args, c.CommandPath()))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				switch file := args[0]; {
				case file == "":
					return usageErr(errors.New("the config file named is empty: give a path, e.g. `hafeed config check /etc/hafeed/hafeed.yaml`"))
				case c.Flags().Changed("config") && flags.file != file:
					return usageErr(fmt.Errorf("two config files, %s and --config %s: give one", file, flags.file))
				default:
					flags.file = file
				}
			}
			cfg, path, err := flags.load(c)
			if err != nil {
				return err
			}
			if path == "" {
				path = "no config file (defaults)"
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: configuration is valid\n", path)
			// Valid, but the deploy drain it ships with cannot do its job.
			if _, err := cfg.ShedWay(); err != nil {
				printLines(c.ErrOrStderr(), "warning: ", path+": "+err.Error())
			}
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
