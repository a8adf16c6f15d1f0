package cmd_test

import (
	"strings"
	"testing"

	"github.com/hafeed/hafeed/cmd"
)

// TestConfigCheckFile checks `config check FILE`, as `haproxy -c -f FILE`
// and `consul validate FILE` take it, beside --config.
func TestConfigCheckFile(t *testing.T) {
	good := writeFile(t, "good.yaml", "interval: 2s\n")
	bad := writeFile(t, "bad.yaml", "interval: 1ms\n")
	t.Setenv("HAFEED_CONFIG", bad) // FILE wins over the environment, as --config does

	code, stdout, stderr := hafeed(t, "config", "check", good)
	if code != cmd.ExitOK || stdout != good+": configuration is valid\n" {
		t.Errorf("config check %s = exit %d, stdout %q, stderr %q; want 0 and valid", good, code, stdout, stderr)
	}
	code, _, stderr = hafeed(t, "config", "check", bad)
	if code != cmd.ExitUsage || !strings.Contains(stderr, bad+":1: interval: 1ms is too short") {
		t.Errorf("config check %s = exit %d, stderr %q; want %d naming %s:1", bad, code, stderr, cmd.ExitUsage, bad)
	}
	// The flags of run still apply over the file.
	code, _, stderr = hafeed(t, "config", "check", good, "--interval", "1ms")
	if code != cmd.ExitUsage || !strings.Contains(stderr, "interval: 1ms is too short") {
		t.Errorf("config check %s --interval 1ms = exit %d, stderr %q; want %d", good, code, stderr, cmd.ExitUsage)
	}
	// The same file twice is one file; two files are a mistake.
	if code, _, stderr := hafeed(t, "config", "check", good, "--config", good); code != cmd.ExitOK {
		t.Errorf("config check FILE --config FILE = exit %d, stderr %q; want 0", code, stderr)
	}
	code, stdout, stderr = hafeed(t, "config", "check", good, "--config", bad)
	if code != cmd.ExitUsage || stdout != "" || !strings.Contains(stderr, "two config files") {
		t.Errorf("config check FILE --config OTHER = exit %d, stdout %q, stderr %q; want %d and both named", code, stdout, stderr, cmd.ExitUsage)
	}
	if code, _, stderr := hafeed(t, "config", "check", ""); code != cmd.ExitUsage || !strings.Contains(stderr, "empty") {
		t.Errorf("config check \"\" = exit %d, stderr %q; want %d", code, stderr, cmd.ExitUsage)
	}
}
