package e2e

import (
	"os/exec"
	"testing"
)

// TestHAProxyConfigExample checks that the shipped haproxy.cfg.example is
// a configuration HAProxy accepts.
func TestHAProxyConfigExample(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("haproxy", "-c", "-f", "../haproxy.cfg.example").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f haproxy.cfg.example: %v\n%s", err, out)
	}
}
