package config

import (
	"net"
	"strings"
	"testing"
)

// TestParseRejectsNonFinite checks that NaN and infinities are refused
// with their key named (issue 11, item 7: targets.cpu: .nan passed, then
// every control reply failed).
func TestParseRejectsNonFinite(t *testing.T) {
	t.Parallel()
	tests := []struct{ yaml, want string }{
		{"policy:\n  targets:\n    cpu: .nan\n", "cfg.yaml:3: policy.targets.cpu: NaN is not a finite number"},
		{"policy:\n  dead_band: .nan\n", "cfg.yaml:2: policy.dead_band: NaN is not a finite number"},
		{"policy:\n  max_step: .inf\n", "cfg.yaml:2: policy.max_step: +Inf is not a finite number"},
		{"policy:\n  high_water: -.inf\n", "cfg.yaml:2: policy.high_water: -Inf is not a finite number"},
		{"policy:\n  mix:\n    cpu: .nan\n", "cfg.yaml:3: policy.mix.cpu: NaN is not a finite number"},
		{"rebalance:\n  margin: .nan\n", "cfg.yaml:2: rebalance.margin: NaN is not a finite number"},
		{"rebalance:\n  max_rate: .nan\n", "cfg.yaml:2: rebalance.max_rate: NaN is not a finite number"},
		{"sources:\n  count_budget: .nan\n", "cfg.yaml:2: sources.count_budget: NaN is not a finite number"},
	}
	for _, tt := range tests {
		_, err := Parse("cfg.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}

// TestParseRejectsWhatRunRefuses checks that config check refuses the
// listen addresses and paths that `hafeed run` cannot open, naming the key
// (issue 11, item 9), and that each of them does fail net.Listen.
func TestParseRejectsWhatRunRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ key, value, want string }{
		{"agent_check.listen", "127.0.0.1:70000", "port \"70000\" is not a number from 0 to 65535"},
		{"agent_check.listen", "127.0.0.1:-1", "port \"-1\" is not a number from 0 to 65535"},
		{"agent_check.listen", "127.0.0.1:abc", "port \"abc\" is not a number from 0 to 65535"},
		{"agent_check.listen", "127.0.0.1\x00:5555", "contains a NUL byte"},
		{"agent_check.listen", "tcp://127.0.0.1:0", "takes no scheme (tcp://)"},
		{"agent_check.listen", "127.0.0.1/8:5555", "\"127.0.0.1/8\" is neither an IP address nor a host name"},
		{"metrics.listen", "127.0.0.1:70000", "port \"70000\" is not a number from 0 to 65535"},
		{"metrics.listen", "tcp://127.0.0.1:0", "takes no scheme"},
	} {
		section, field, _ := strings.Cut(tt.key, ".")
		yaml := section + ":\n  " + field + ": " + quote(tt.value) + "\n"
		_, err := Parse("cfg.yaml", []byte(yaml))
		if want := "cfg.yaml:2: " + tt.key + ": "; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%s: %q) = %v, want %q naming the key", tt.key, tt.value, err, tt.want)
		}
		if ln, err := net.Listen("tcp", tt.value); err == nil {
			ln.Close()
			t.Errorf("net.Listen(%q) works: the check refuses what run would take", tt.value)
		}
	}
	long := "/tmp/" + strings.Repeat("s", 110)
	if _, err := Parse("cfg.yaml", []byte("control_socket: "+long+"\n")); err == nil || !strings.Contains(err.Error(), "control_socket: ") {
		t.Errorf("Parse(control_socket: 115 bytes) = %v, want an error naming control_socket", err)
	}
	if _, err := Parse("cfg.yaml", []byte("agent_check:\n  listen: \"127.0.0.1:5599\"\nmetrics:\n  listen: \"127.0.0.1:5599\"\n")); err == nil || !strings.Contains(err.Error(), "metrics.listen: ") {
		t.Errorf("Parse(metrics.listen = agent_check.listen) = %v, want an error naming metrics.listen", err)
	}
	for _, ok := range []string{":5555", "127.0.0.1:0", "[::1]:5555", "localhost:5555", "agent.example.com:5555"} {
		if _, err := Parse("cfg.yaml", []byte("agent_check:\n  listen: "+quote(ok)+"\n")); err != nil {
			t.Errorf("Parse(agent_check.listen: %q) = %v, want it accepted", ok, err)
		}
	}
}

// quote writes s as a YAML double-quoted string.
func quote(s string) string {
	return `"` + strings.ReplaceAll(s, "\x00", `\0`) + `"`
}

func TestPortOf(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]uint16{
		":5555": 5555, "127.0.0.1:80": 80, "[::1]:9555": 9555, "localhost:0": 0,
		"127.0.0.1": 0, "127.0.0.1:": 0, "127.0.0.1:http": 0, "127.0.0.1:70000": 0, "": 0,
	} {
		if got := PortOf(addr); got != want {
			t.Errorf("PortOf(%q) = %d, want %d", addr, got, want)
		}
	}
}
