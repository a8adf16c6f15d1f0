package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/termsafe"
)

// Exit codes, a contract with scripts.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitUnreachable = 3
)

// version is set at build time with -ldflags "-X github.com/hafeed/hafeed/cmd.version=...".
var version = ""

// Version is hafeed's version: the one set at build time, else the module's.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

// exitError carries an exit code up to Main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{code: ExitUsage, err: err} }

var zerologOnce sync.Once

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	zerologOnce.Do(func() {
		zerolog.TimeFieldFormat = time.RFC3339Nano
		// Durations as Go writes them, "4.777839ms", in JSON too;
		// the console rounds them further (internal/consolelog).
		zerolog.DurationFieldFormat = zerolog.DurationFormatString
	})
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	defer flushOutputs(root)
	if err == nil {
		return ExitOK
	}
	// Errors may quote what HAProxy or the application sent: the root's
	// writer strips what a terminal would act on. One of several lines (a
	// config's problems) says where each comes from.
	printLines(root.ErrOrStderr(), "hafeed: ", err.Error())
	return exitCode(err)
}

// printLines writes text with prefix before each of its lines.
func printLines(w io.Writer, prefix, text string) {
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintln(w, prefix+line)
	}
}

func exitCode(err error) int {
	var ee *exitError
	var ce *config.Error
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, control.ErrAgentUnreachable):
		return ExitUnreachable
	case errors.Is(err, control.ErrAgentConfig):
		return ExitUsage
	case errors.As(err, &ce):
		return ExitUsage
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"):
		return ExitUsage
	}
	return ExitFailure
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "hafeed",
		Short: "Load feedback for HAProxy: weights and drains from each WebSocket host",
		Long: `hafeed runs beside each WebSocket (or other long-lived TCP) server behind
HAProxy. It samples the host's real load, turns it into a weight, and answers
HAProxy's agent-check polls with it, so that a leastconn backend balances on
load instead of connection counts. Operators drain and undrain the host with
the same binary.

Exit codes: 0 success, 1 failure, 2 usage or configuration error (the agent's
included), 3 the agent is not reachable on its control socket.`,
		Example: `  hafeed run --ports 8080                 # the daemon (usually a systemd unit)
  hafeed config check /etc/hafeed/hafeed.yaml   # is this config valid?
  hafeed drain                             # stop new connections to this host
  hafeed ready                             # take it back into rotation
  hafeed status                            # what the agent reports, and why
  hafeed sample --ports 8080               # one sample, no daemon needed`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Every byte printed passes one writer per stream that strips escape
	// sequences and control characters: any text may quote HAProxy, the
	// application or a file (safe.go).
	root.SetOut(termsafe.NewWriter(stdout))
	root.SetErr(termsafe.NewWriter(stderr))
	root.SetFlagErrorFunc(flagError)
	// --version, as HAProxy and most daemons have it, beside `hafeed version`.
	root.Version = Version()
	root.SetVersionTemplate("hafeed {{.Version}}\n")
	root.AddCommand(
		newRunCmd(),
		newDrainCmd(),
		newAdminCmd("ready", "Take this host back into rotation",
			"Leaves drain or maint. HAProxy is told \"ready\" until every HAProxy polling the\nagent has heard it; after that only the weight is sent, so a drain an operator set\nin HAProxy's runtime API stays until the operator lifts it."),
		newAdminCmd("maint", "Put this host in maintenance: no traffic at all",
			"HAProxy puts the server in MAINT: no new connections, not even persistent ones.\nThe state is saved before this returns and survives restarts of the agent."),
		newStatusCmd(),
		newFleetCmd(),
		newSampleCmd(),
		newConfigCmd(),
		newVersionCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hafeed's version",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintln(c.OutOrStdout(), "hafeed "+Version())
			return nil
		},
	}
}

// clientNote says why a command that acts on the running agent takes none
// of the settings the agent reads from its own configuration.
func clientNote() map[string]string {
	return map[string]string{agentClientNote: "it acts on the running agent, which uses its own configuration: change the setting there (or on `hafeed run`) and reload the agent"}
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(fmt.Errorf("%s takes no arguments, got %q (see `%s --help`)", c.CommandPath(), args, c.CommandPath()))
	}
	return nil
}
