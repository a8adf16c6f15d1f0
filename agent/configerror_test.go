package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/agent/control"
)

// TestAgentShedWithoutCloserIsAConfigError checks that a drain that asks
// for shedding on an agent with no way to close connections is refused as
// a configuration problem (the CLI exits 2 for it), and changes nothing.
func TestAgentShedWithoutCloserIsAConfigError(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)
	resp, err := callReq(t, cfg.ControlSocket, control.Request{Command: control.CommandDrain, ShedRate: 10, Timeout: waitLimit})
	if !errors.Is(err, control.ErrAgentConfig) || resp == nil || !resp.Config || !strings.Contains(resp.Error, "shed.hook_url") {
		t.Errorf("drain with shedding and no closer = %+v, %v; want a configuration error naming what to set", resp, err)
	}
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "ready" {
		t.Errorf("admin after the refused drain = %q, want ready", st.Admin)
	}
}
