package cmd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/cmd"
)

// configErrorAgent refuses every request for want of configuration.
type configErrorAgent struct{}

func (configErrorAgent) Handle(context.Context, control.Request) control.Response {
	return control.Response{Config: true, Error: "shedding needs a way to close connections: configure haproxy[].runtime"}
}

// TestAgentConfigurationErrorExits2 checks that a request the agent's
// configuration refuses exits 2, the README's code for configuration
// errors (issue 17: the deploy drain's "shedding needs a way to close
// connections" exited 1), and that other refusals still exit 1.
func TestAgentConfigurationErrorExits2(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	socket := serveFake(t, configErrorAgent{})
	code, stdout, stderr := hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", socket, "--wait", "--shed-rate", "50", "--timeout", "5m")
	if code != cmd.ExitUsage || stdout != "" || !strings.Contains(stderr, "hafeed: agent: shedding needs a way to close connections") {
		t.Errorf("drain --wait --shed-rate = exit %d, stdout %q, stderr %q; want %d and the agent's reason", code, stdout, stderr, cmd.ExitUsage)
	}

	// A refusal that is not the configuration's stays a failure.
	code, _, stderr = hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", serveFake(t, refusingAgent{}))
	if code != cmd.ExitFailure {
		t.Errorf("drain refused by the agent = exit %d, stderr %q; want %d", code, stderr, cmd.ExitFailure)
	}
}

// refusingAgent refuses every request, not for its configuration.
type refusingAgent struct{}

func (refusingAgent) Handle(context.Context, control.Request) control.Response {
	return control.Response{Error: "persisting state, so it stays ready: disk full"}
}
