package cmd_test

import (
	"strings"
	"testing"

	"github.com/hafeed/hafeed/cmd"
)

// TestFleetWithoutRuntimeSaysWhatToConfigure checks that hafeed fleet on
// an agent without a runtime endpoint exits 2, the code of configuration
// errors, naming what to configure.
func TestFleetWithoutRuntimeSaysWhatToConfigure(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	cfg := startAgent(t)
	for _, args := range [][]string{{"fleet"}, {"fleet", "--json"}} {
		code, stdout, stderr := hafeed(t, append(args, "-c", emptyConfig(t), "--control-socket", cfg.ControlSocket)...)
		if code != cmd.ExitUsage || stdout != "" || !strings.Contains(stderr, "haproxy[].runtime") {
			t.Errorf("hafeed %v without a runtime endpoint = exit %d, stdout %q, stderr %q; want %d naming haproxy[].runtime", args, code, stdout, stderr, cmd.ExitUsage)
		}
	}
}
