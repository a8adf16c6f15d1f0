package cmd_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/cmd"
)

// TestAdminReasonThroughTheCLI checks drain and maint --reason from the
// command line to the reply, status (table and JSON) and the state file.
func TestAdminReasonThroughTheCLI(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	cfg := startAgent(t)
	ctl := []string{"-c", emptyConfig(t), "--control-socket", cfg.ControlSocket}

	code, stdout, stderr := hafeed(t, slices.Concat([]string{"drain", "--reason", "deploy v1.4"}, ctl)...)
	if code != cmd.ExitOK || !strings.Contains(stdout, `admin state drain, reason "deploy v1.4"`) {
		t.Errorf("drain --reason = exit %d, stdout %q, stderr %q; want the state and the reason", code, stdout, stderr)
	}
	code, stdout, _ = hafeed(t, slices.Concat([]string{"status"}, ctl)...)
	if code != cmd.ExitOK || !regexp.MustCompile(`(?m)^admin +drain .*\nreason +deploy v1\.4$`).MatchString(stdout) {
		t.Errorf("status after drain --reason = exit %d:\n%s\nwant a reason row under admin", code, stdout)
	}
	code, stdout, _ = hafeed(t, slices.Concat([]string{"status", "--json"}, ctl)...)
	var st struct {
		Admin       string `json:"admin"`
		AdminReason string `json:"admin_reason"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); code != cmd.ExitOK || err != nil || st.Admin != "drain" || st.AdminReason != "deploy v1.4" {
		t.Errorf("status --json = exit %d, %+v (%v); want admin_reason deploy v1.4", code, st, err)
	}
	state, err := os.ReadFile(cfg.StateFile)
	if err != nil || !strings.Contains(string(state), `"reason": "deploy v1.4"`) {
		t.Errorf("state file = %s (%v), want the reason in it", state, err)
	}

	code, stdout, _ = hafeed(t, slices.Concat([]string{"maint", "--reason", "disk swap", "--json"}, ctl)...)
	if err := json.Unmarshal([]byte(stdout), &st); code != cmd.ExitOK || err != nil || st.Admin != "maint" || st.AdminReason != "disk swap" {
		t.Errorf("maint --reason --json = exit %d, %+v (%v); want maint, disk swap", code, st, err)
	}
	code, stdout, _ = hafeed(t, slices.Concat([]string{"ready"}, ctl)...)
	if code != cmd.ExitOK || strings.Contains(stdout, "reason") {
		t.Errorf("ready = exit %d, stdout %q; want no reason left", code, stdout)
	}

	// A note of more than one line, or ready with one, is refused before
	// the agent is asked.
	for _, args := range [][]string{{"drain", "--reason", "a\nb"}, {"maint", "--reason", strings.Repeat("x", control.MaxReasonBytes+1)}, {"ready", "--reason", "x"}} {
		if code, stdout, stderr := hafeed(t, slices.Concat(args, ctl)...); code != cmd.ExitUsage || stdout != "" {
			t.Errorf("hafeed %q = exit %d, stdout %q, stderr %q; want %d", args[:2], code, stdout, stderr, cmd.ExitUsage)
		}
	}
	if code, stdout, _ := hafeed(t, slices.Concat([]string{"status", "--json"}, ctl)...); code != cmd.ExitOK || !strings.Contains(stdout, `"admin": "ready"`) {
		t.Errorf("status after refused notes = %s, want ready", stdout)
	}
}
