package cmd

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent"
	"github.com/hafeed/hafeed/agent/config"
)

func newRunCmd() *cobra.Command {
	var flags configFlags
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: sample load and answer HAProxy's agent-check",
		Long: `Run the agent in the foreground (systemd runs it as a unit). It answers
HAProxy's agent-check polls with this host's weight and admin state, and
serves the control socket used by drain, ready, maint and status.

Flags override the config file. SIGHUP reloads the config file; an invalid
one is rejected and the running configuration stays. SIGTERM or SIGINT stops.`,
		Example: `  hafeed run --ports 8080,8443
  hafeed run --config /etc/hafeed/hafeed.yaml
  hafeed run --agent-listen 127.0.0.1:5555 --control-socket ./hafeed.sock --state-file ./state.json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			// Signals first: a SIGHUP during start-up waits for the agent's
			// loop (which then reloads) instead of killing the process, and
			// one after SIGTERM is ignored.
			hangups := make(chan os.Signal, 1)
			signal.Notify(hangups, syscall.SIGHUP)
			// Ignored, not reset to its default, once the agent has
			// stopped: a SIGHUP between here and the process's exit
			// killed it ("signal: hangup" instead of exit 0).
			defer signal.Ignore(syscall.SIGHUP)
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, path, err := flags.load(c)
			if err != nil {
				return err
			}
			log, level, err := agent.NewLogger(cfg.Log, os.Stderr)
			if err != nil {
				return usageErr(err)
			}
			// Under systemd (Type=notify, WatchdogSec=): readiness, reloads,
			// stopping and watchdog keep-alives.
			watchdog, _ := daemon.SdWatchdogEnabled(false)
			var notify func(string)
			if os.Getenv("NOTIFY_SOCKET") != "" {
				notify = func(state string) {
					if _, err := daemon.SdNotify(false, state); err != nil {
						log.Warn().Err(err).Msg("notifying systemd")
					}
				}
			}
			a := agent.New(agent.Options{
				Notify:     notify,
				Watchdog:   watchdog,
				Config:     cfg,
				ConfigFile: path,
				Reload: func() (config.Config, error) {
					next, _, err := flags.load(c)
					return next, err
				},
				Hangups:  hangups,
				LogLevel: level,
				Log:      log,
				Version:  Version(),
			})
			return a.Serve(ctx)
		},
	}
	flags.register(c, allFlags)
	return c
}

// commandContext is the context for a command: cancelled on Ctrl-C.
func commandContext(c *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
}
