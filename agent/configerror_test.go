package agent

import (
	"strings"
	"testing"

	"github.com/hafeed/hafeed/agent/control"
)

// TestAgentShedWithoutCloserStillDrains checks that a drain that asks for
// shedding on an agent with no way to close connections (the packaged
// config, which the packaged drop-in's command meets) is applied, starts
// no job, and says loudly that nothing is closed and what to configure
// (issue 17: it was refused, and the deploy stopped a host in rotation).
func TestAgentShedWithoutCloserStillDrains(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)
	resp, err := callReq(t, cfg.ControlSocket, control.Request{Command: control.CommandDrain, ShedRate: 10, Timeout: waitLimit})
	if err != nil || resp == nil || !resp.OK || resp.Status == nil {
		t.Fatalf("drain with shedding and no closer = %+v, %v; want it applied", resp, err)
	}
	if st := resp.Status; st.Admin != "drain" || st.Shed != nil || !strings.Contains(st.Warning, "NOTHING IS BEING CLOSED") || !strings.Contains(st.Warning, "shed.hook_url") {
		t.Errorf("drain's status = admin %q, shed %+v, warning %q; want drain, no job, and a warning naming what to configure", st.Admin, st.Shed, st.Warning)
	}
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "drain" {
		t.Errorf("admin after the drain = %q, want drain", st.Admin)
	}
}
