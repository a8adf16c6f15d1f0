package cmd_test

import (
	"strings"
	"testing"

	"github.com/hafeed/hafeed/cmd"
)

// TestConfigCheckReportsEveryProblemByLine checks the report of a file with
// several problems: in line order, each line of it with the "hafeed:"
// prefix, duplicates and tabs named as such.
func TestConfigCheckReportsEveryProblemByLine(t *testing.T) {
	path := writeFile(t, "bad.yaml", "policy:\n  targets:\n    cpu: 3\ninterval: 1ms\nbogus: 1\nlog:\n  level: info\n  level: debug\n")
	code, stdout, stderr := hafeed(t, "config", "check", "-c", path)
	if code != cmd.ExitUsage || stdout != "" {
		t.Errorf("config check = exit %d, stdout %q; want %d and nothing", code, stdout, cmd.ExitUsage)
	}
	want := []string{
		"hafeed: " + path + ":3: policy.targets.cpu: 3 is outside 0..1",
		"hafeed: " + path + ":4: interval: 1ms is too short",
		"hafeed: " + path + ":5: bogus: unknown key",
		"hafeed: " + path + ":8: log.level: given twice, at lines 7 and 8: keep one",
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("config check stderr has %d lines, want %d:\n%s", len(lines), len(want), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], w)
		}
	}

	tabs := writeFile(t, "tabs.yaml", "log:\n\tlevel: info\n")
	code, _, stderr = hafeed(t, "config", "check", "-c", tabs)
	if want := "hafeed: " + tabs + ":2: indented with a tab: YAML indents with spaces only, replace the tab with spaces\n"; code != cmd.ExitUsage || stderr != want {
		t.Errorf("config check of a tab-indented file = exit %d, stderr %q; want %d and %q", code, stderr, cmd.ExitUsage, want)
	}
}
