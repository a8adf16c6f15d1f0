package agent

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
)

// TestEndpointWarnsOffLoopback checks the warning for a runtime API over
// TCP that is not on loopback: it has no authentication.
func TestEndpointWarnsOffLoopback(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		runtime string
		warn    bool
	}{
		{"tcp://10.0.0.5:9999", true},
		{"tcp://127.0.0.1:9999", false},
		{"tcp://[::1]:9999", false},
		{"unix:///run/haproxy/admin.sock", false},
	} {
		var buf bytes.Buffer
		_, err := newEndpoint(config.HAProxyConfig{Runtime: tt.runtime}, nil, nil, zerolog.New(&buf))
		if err != nil {
			t.Fatalf("%s: %v", tt.runtime, err)
		}
		if got := strings.Contains(buf.String(), "no authentication"); got != tt.warn {
			t.Errorf("%s: warned %v, want %v (log %q)", tt.runtime, got, tt.warn, buf.String())
		}
	}
}
