package agent

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/agent/config"
)

// TestConsoleLogHasNoColourOffATerminal checks that log.format: console
// writes plain text into a file or a pipe: colour codes only on a terminal
// (issue 17: they ended up in files and pipes).
func TestConsoleLogHasNoColourOffATerminal(t *testing.T) {
	t.Parallel()
	file, err := os.Create(filepath.Join(t.TempDir(), "hafeed.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var buf bytes.Buffer
	for _, w := range []io.Writer{&buf, file} {
		log, _, err := NewLogger(config.LogConfig{Format: "console", Level: "info"}, w)
		if err != nil {
			t.Fatal(err)
		}
		log.Warn().Str("peer", "10.0.0.1").Msg("admin state changed")
	}
	logged, err := os.ReadFile(file.Name())
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"a buffer": buf.String(), "a file": string(logged)} {
		if !strings.Contains(out, "admin state changed") || !strings.Contains(out, "peer=10.0.0.1") {
			t.Errorf("console log into %s = %q, want the message and its field", name, out)
		}
		if strings.Contains(out, "\x1b") {
			t.Errorf("console log into %s = %q, want no escape sequence", name, out)
		}
	}
}
