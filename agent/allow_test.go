package agent

import (
	"testing"

	"github.com/hafeed/hafeed/agent/config"
)

// TestAgentAllowsIPv4MappedEntry checks, from the configuration to the
// agent-check port, that agent_check.allow: ["::ffff:127.0.0.1/128"] lets
// a poll from 127.0.0.1 in (issue 17: it passed config check and matched
// no one).
func TestAgentAllowsIPv4MappedEntry(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.AgentCheck.Allow = []string{"::ffff:127.0.0.1/128"}
	if err := cfg.Validate("test"); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg)
	wantMatch(t, "agent-check reply to 127.0.0.1", upReply, pollAgentCheck(t, a.Status().AgentListen))

	// A mapped entry for another address still keeps 127.0.0.1 out.
	other := testConfig(t)
	other.AgentCheck.Allow = []string{"::ffff:127.0.0.2/128"}
	b := startAgent(t, other)
	if got := pollAgentCheck(t, b.Status().AgentListen); got != "" {
		t.Errorf("agent-check reply to 127.0.0.1 with only ::ffff:127.0.0.2 allowed = %q, want none", got)
	}
	if _, err := config.Parse("test.yaml", []byte("agent_check:\n  allow: [\"::ffff:127.0.0.1/128\"]\n")); err != nil {
		t.Errorf("config with an IPv4-mapped allow entry = %v, want it valid", err)
	}
}
