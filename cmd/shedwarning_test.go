package cmd_test

import (
	"strings"
	"testing"

	"github.com/hafeed/hafeed/cmd"
)

// TestConfigCheckWarnsWhenNothingCanShed checks that config check passes
// the packaged config but warns that the drop-in's drain cannot close any
// connection there, saying what to configure (issue 17: it passed without
// a word, and the deploy drain then failed mid-deploy), and that a config
// with a way to shed gets no warning.
func TestConfigCheckWarnsWhenNothingCanShed(t *testing.T) {
	_, example, _ := hafeed(t, "config", "example") // what the package installs
	packaged := writeFile(t, "hafeed.yaml", example)
	code, stdout, stderr := hafeed(t, "config", "check", packaged)
	if code != cmd.ExitOK || stdout != packaged+": configuration is valid\n" {
		t.Errorf("config check of the packaged config = exit %d, stdout %q; want 0 and valid", code, stdout)
	}
	for _, want := range []string{"warning: " + packaged + ": nothing can close connections", "hafeed-drain.conf", "haproxy[].runtime", "shed.hook_url"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("config check of the packaged config stderr = %q, want it to contain %q", stderr, want)
		}
	}

	for name, yaml := range map[string]string{
		"runtime": "haproxy:\n  - runtime: unix:///run/haproxy/admin.sock\n",
		"hook":    "shed:\n  via: hook\n  hook_url: http://127.0.0.1:8080/hafeed/shed\n",
	} {
		path := writeFile(t, "hafeed.yaml", yaml)
		if code, _, stderr := hafeed(t, "config", "check", path); code != cmd.ExitOK || stderr != "" {
			t.Errorf("config check with shedding via %s = exit %d, stderr %q; want 0 and no warning", name, code, stderr)
		}
	}
}
