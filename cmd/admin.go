package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/termsafe"
)

const controlCallTimeout = 10 * time.Second

// newAdminCmd builds drain, ready and maint: each asks the running agent
// to change the admin state, which it saves before answering.
func newAdminCmd(name, short, long string) *cobra.Command {
	var flags configFlags
	var asJSON bool
	var reason string
	c := &cobra.Command{
		Use:   name,
		Short: short,
		Long:  long,
		Example: fmt.Sprintf(`  hafeed %[1]s
  hafeed %[1]s --control-socket /run/hafeed/control.sock
  HAFEED_CONTROL_SOCKET=./dev/control.sock hafeed %[1]s`, name),
		Args:        noArgs,
		Annotations: clientNote(),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := control.CheckReason(reason); err != nil {
				return usageErr(fmt.Errorf("--reason: %w", err))
			}
			resp, err := callAgent(c, flags.socket(c), control.Request{Command: name, Reason: reason})
			if err != nil {
				return err
			}
			return printAdminResult(c, resp.Status, asJSON)
		},
	}
	flags.register(c, clientFlags)
	c.Flags().BoolVar(&asJSON, "json", false, "print the agent's status as JSON")
	if name != control.CommandReady {
		registerReason(c, &reason)
	}
	return c
}

// registerReason adds --reason to drain and maint.
func registerReason(c *cobra.Command, reason *string) {
	c.Flags().StringVar(reason, "reason", "", "a note on why (one line), kept with the state until it changes, written to the log and shown by hafeed status")
	c.Example += fmt.Sprintf("\n  hafeed %s --reason \"kernel update, ticket 1234\"", c.Name())
}

// callAgent sends one request to the agent on the control socket found
// by configFlags.socket.
func callAgent(c *cobra.Command, socket string, req control.Request) (*control.Response, error) {
	ctx, cancel := context.WithTimeout(c.Context(), controlCallTimeout)
	defer cancel()
	return control.Call(ctx, socket, req)
}

func writeJSON(c *cobra.Command, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = c.OutOrStdout().Write(append(escapeJSON(out), '\n'))
	return err
}

// printAdminResult reports an admin change: the new state and reply, or
// the whole status as JSON; a warning goes to stderr.
func printAdminResult(c *cobra.Command, st *control.Status, asJSON bool) error {
	if st.Warning != "" {
		fmt.Fprintln(c.ErrOrStderr(), "warning: "+termsafe.Line(st.Warning))
	}
	if asJSON {
		return writeJSON(c, st)
	}
	// One line, whatever the agent's values hold.
	reason := ""
	if st.AdminReason != "" {
		reason = fmt.Sprintf(", reason %q", st.AdminReason)
	}
	fmt.Fprintln(c.OutOrStdout(), termsafe.Line(fmt.Sprintf("%s: admin state %s%s (reply %q)", st.AgentListen, st.Admin, reason, st.Reply)))
	return nil
}
