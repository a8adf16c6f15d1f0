package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestExampleConfigIsDefaultConfig(t *testing.T) {
	t.Parallel()
	got, err := Parse("example.yaml", Example())
	if err != nil {
		t.Fatalf("Parse(Example()) = %v", err)
	}
	// The example spells empty lists as [], which decode as empty slices.
	if diff := cmp.Diff(Default(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("example config differs from Default() (-want +got):\n%s", diff)
	}
}

func TestExampleConfigIsACopy(t *testing.T) {
	t.Parallel()
	b := Example()
	b[0] = '!'
	if Example()[0] == '!' {
		t.Error("changing the slice ExampleConfig returned changed the embedded example")
	}
}

func TestParseConfigValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want func(*Config)
	}{
		{name: "empty file", yaml: ""},
		{name: "only comments", yaml: "# nothing here\n\n# still nothing\n"},
		{name: "null document", yaml: "~\n"},
		{name: "null section", yaml: "policy:\n"},
		{
			name: "every section",
			yaml: `agent_check:
  listen: "10.0.0.11:5556"
  allow: [10.0.0.0/8, 192.0.2.7]
  timeout: 500ms
  max_conns: 32
  ready_timeout: 1m
control_socket: /tmp/hf/control.sock
state_file: /tmp/hf/state.json
interval: 250ms
sources:
  ports: [8080, 8443]
policy:
  reference_capacity: 5000
  targets:
    cpu: 0.5
  smoothing: 0s
log:
  format: json
  level: debug
`,
			want: func(c *Config) {
				c.AgentCheck = AgentCheckConfig{
					Listen:       "10.0.0.11:5556",
					Allow:        []string{"10.0.0.0/8", "192.0.2.7"},
					Timeout:      500 * time.Millisecond,
					MaxConns:     32,
					ReadyTimeout: time.Minute,
					Lines:        1,
				}
				c.ControlSocket = "/tmp/hf/control.sock"
				c.StateFile = "/tmp/hf/state.json"
				c.Interval = 250 * time.Millisecond
				c.Sources.Ports = []uint16{8080, 8443}
				c.Policy.ReferenceCapacity = 5000
				c.Policy.Targets.CPU = 0.5
				c.Policy.Smoothing = 0
				c.Log = LogConfig{Format: "json", Level: "debug"}
			},
		},
		{
			name: "a merged anchor and a mix",
			yaml: "haproxy:\n  - &h\n    runtime: /a.sock\n    backend: ws\n    server: ws1\n  - <<: *h\n    runtime: /b.sock\npolicy:\n  mix: {cpu: 2, memory: 1}\n",
			want: func(c *Config) {
				c.HAProxy = []HAProxyConfig{{Runtime: "/a.sock", Backend: "ws", Server: "ws1"}, {Runtime: "/b.sock", Backend: "ws", Server: "ws1"}}
				c.Policy.Mix = map[string]float64{"cpu": 2, "memory": 1}
			},
		},
		{
			name: "partial section keeps the other defaults",
			yaml: "policy:\n  targets:\n    cpu: 0.9\n",
			want: func(c *Config) { c.Policy.Targets.CPU = 0.9 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := Default()
			if tt.want != nil {
				tt.want(&want)
			}
			got, err := Parse("hafeed.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Parse() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		// want are substrings of the error, each naming file, line and key.
		want []string
	}{
		{
			name: "unknown top-level key",
			yaml: "interval: 1s\nintreval: 2s\n",
			want: []string{"cfg.yaml:2: intreval: unknown key; known keys here: agent_check, control_socket"},
		},
		{
			name: "unknown nested key",
			yaml: "agent_check:\n  listen: \":5555\"\n  alow: [10.0.0.0/8]\n",
			want: []string{"cfg.yaml:3: agent_check.alow: unknown key; known keys here: listen, allow, timeout"},
		},
		{
			name: "unknown keys at two depths",
			yaml: "log:\n  colour: true\nverbose: true\n",
			want: []string{"cfg.yaml:2: log.colour: unknown key", "cfg.yaml:3: verbose: unknown key"},
		},
		{
			name: "section that is not a mapping",
			yaml: "policy: fast\n",
			want: []string{"cfg.yaml:1: policy: must be a mapping of keys"},
		},
		{
			name: "duration that is not one",
			yaml: "\ninterval: fast\n",
			want: []string{`cfg.yaml:2: interval: "fast" is not a duration, e.g. 1s or 500ms`},
		},
		{
			name: "duration without a unit",
			yaml: "agent_check:\n  timeout: 5\n",
			want: []string{`cfg.yaml:2: agent_check.timeout: "5" is not a duration`},
		},
		{
			name: "integer that is text",
			yaml: "policy:\n  reference_capacity: lots\n",
			want: []string{`cfg.yaml:2: policy.reference_capacity: "lots" is not a whole number`},
		},
		{
			name: "port out of range",
			yaml: "sources:\n  ports:\n    - 8080\n    - 70000\n",
			want: []string{`cfg.yaml:4: sources.ports[1]: "70000" is not a port number (1-65535)`},
		},
		{
			name: "a list where a string goes",
			yaml: "agent_check:\n  listen: [1, 2]\n",
			want: []string{"cfg.yaml:2: agent_check.listen: must be a string, not a list"},
		},
		{
			name: "every problem in one pass: types, unknown keys and values",
			yaml: "interval: 1sec\nagent_check:\n  listen: nowhere\n  max_conns: many\nsources:\n  ports: [80800]\n  cpu: gpu\nlog:\n  colour: true\n",
			want: []string{
				`cfg.yaml:1: interval: "1sec" is not a duration, e.g. 1s or 500ms`,
				`cfg.yaml:3: agent_check.listen: "nowhere" is not host:port`,
				`cfg.yaml:4: agent_check.max_conns: "many" is not a whole number`,
				`cfg.yaml:6: sources.ports[0]: "80800" is not a port number (1-65535)`,
				`cfg.yaml:7: sources.cpu: "gpu"`,
				`cfg.yaml:9: log.colour: unknown key`,
			},
		},
		{
			name: "YAML syntax",
			yaml: "interval: 1s\nlog: [\n",
			want: []string{"cfg.yaml:2: "},
		},
		{
			name: "document that is not a mapping",
			yaml: "- interval\n- 1s\n",
			want: []string{"cfg.yaml:1: must be a mapping of keys"},
		},
		{
			name: "listen without port",
			yaml: "agent_check:\n  listen: 10.0.0.11\n",
			want: []string{`cfg.yaml:2: agent_check.listen: "10.0.0.11" is not host:port`},
		},
		{
			name: "allow junk",
			yaml: "agent_check:\n  allow:\n    - 10.0.0.0/8\n    - not-a-net\n",
			want: []string{`cfg.yaml:2: agent_check.allow: "not-a-net" is neither a CIDR prefix`},
		},
		{
			name: "cpu target above 1",
			yaml: "policy:\n  reference_capacity: 10\n  targets:\n    cpu: 1.5\n",
			want: []string{"cfg.yaml:4: policy.targets.cpu: 1.5 is outside 0..1"},
		},
		{
			name: "unknown signal in mix",
			yaml: "policy:\n  mix:\n    gpu: 1\n",
			want: []string{"cfg.yaml:2: policy.mix: unknown signal \"gpu\""},
		},
		{
			name: "interval too short",
			yaml: "interval: 1ms\n",
			want: []string{"cfg.yaml:1: interval: 1ms is too short"},
		},
		{
			name: "port 0",
			yaml: "sources:\n  ports: [8080, 0]\n",
			want: []string{"cfg.yaml:2: sources.ports: port 0 is not a port"},
		},
		{
			name: "cpu source",
			yaml: "sources:\n  cpu: gpu\n",
			want: []string{`cfg.yaml:2: sources.cpu: "gpu": want host, cgroup, process, or none`},
		},
		{
			name: "memory and pressure have no process scope",
			yaml: "sources:\n  pid: 1\n  memory: process\n  pressure: process\n",
			want: []string{
				`cfg.yaml:3: sources.memory: "process": want host, cgroup or none`,
				`cfg.yaml:4: sources.pressure: "process": want host, cgroup or none`,
			},
		},
		{
			name: "process scope without a process",
			yaml: "sources:\n  cpu: process\n",
			want: []string{`cfg.yaml:2: sources.cpu: process needs sources.pid or sources.pidfile`},
		},
		{
			name: "cgroup scope without a group",
			yaml: "sources:\n  memory: cgroup\n",
			want: []string{`sources.cgroup: the cgroup scope needs a group`},
		},
		{
			name: "app url",
			yaml: "sources:\n  app:\n    url: ftp://x/\n",
			want: []string{`cfg.yaml:3: sources.app.url: "ftp://x/" is not an http(s) URL`},
		},
		{
			name: "log format",
			yaml: "log:\n  level: info\n  format: xml\n",
			want: []string{`cfg.yaml:3: log.format: "xml": want auto, json or console`},
		},
		{
			name: "log level",
			yaml: "log:\n  level: loud\n",
			want: []string{`cfg.yaml:2: log.level: "loud" is not a log level`},
		},
		{
			name: "empty log level",
			yaml: "log:\n  level: \"\"\n",
			want: []string{`cfg.yaml:2: log.level: "" is not a log level`},
		},
		{
			name: "non-positive durations and counts",
			yaml: "agent_check:\n  timeout: 0s\n  max_conns: 0\n  ready_timeout: -1s\npolicy:\n  reference_capacity: 0\n  smoothing: -1s\n",
			want: []string{
				"cfg.yaml:2: agent_check.timeout: must be positive",
				"cfg.yaml:3: agent_check.max_conns: must be at least 1",
				"cfg.yaml:4: agent_check.ready_timeout: must be positive",
				"cfg.yaml:6: policy.reference_capacity: must be at least 1",
				"cfg.yaml:7: policy.smoothing: must not be negative",
			},
		},
		{
			name: "empty paths",
			yaml: "control_socket: \"\"\nstate_file: \"\"\n",
			want: []string{"cfg.yaml:1: control_socket: must be a path", "cfg.yaml:2: state_file: must be a path"},
		},
		{
			name: "several errors together",
			yaml: "agent_check:\n  listen: nowhere\ninterval: 1ms\nbogus: 1\nlog:\n  format: xml\n",
			want: []string{
				"cfg.yaml:4: bogus: unknown key",
				"cfg.yaml:2: agent_check.listen:",
				"cfg.yaml:3: interval:",
				"cfg.yaml:6: log.format:",
			},
		},
		{
			name: "unknown key beside a type error",
			yaml: "interval: soon\nbogus: 1\n",
			want: []string{"cfg.yaml:2: bogus: unknown key", "cfg.yaml:1: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("cfg.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse() = nil error, want one")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse() error does not contain %q:\n%v", w, err)
				}
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("Parse() error %v is not a *Error", err)
			} else if ce.File != "cfg.yaml" {
				t.Errorf("Error.File = %q, want cfg.yaml", ce.File)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "hafeed.yaml")
	if err := os.WriteFile(path, []byte("interval: 2s\npolicy:\n  targets:\n    cpu: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":4: policy.targets.cpu:"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load() = %v, want an error containing %q", err, want)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := Default().Validate("defaults"); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	cfg := Default()
	cfg.Interval = 0
	err := cfg.Validate("flags")
	if want := "flags: interval: 0s is too short"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate() = %v, want an error containing %q", err, want)
	}
}

func TestParseAllow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []string
		want    []netip.Prefix
		wantErr string
	}{
		{name: "none"},
		{
			name: "CIDR prefixes",
			in:   []string{"10.0.0.0/8", "2001:db8::/32"},
			want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		},
		{
			name: "prefix with host bits is masked",
			in:   []string{"192.168.1.77/24"},
			want: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
		},
		{
			name: "bare addresses",
			in:   []string{"10.0.0.5", "::1"},
			want: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("::1/128")},
		},
		{
			name: "IPv4-mapped address becomes IPv4",
			in:   []string{"::ffff:10.0.0.5"},
			want: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")},
		},
		{
			// Issue 17: these passed config check and matched no peer,
			// which the server compares by its plain IPv4 address.
			name: "IPv4-mapped prefixes become IPv4",
			in:   []string{"::ffff:127.0.0.1/128", "::ffff:10.0.0.0/104", "::ffff:192.168.1.77/120", "::ffff:0:0/96"},
			want: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("0.0.0.0/0")},
		},
		{name: "IPv4-mapped prefix shorter than /96", in: []string{"::ffff:10.0.0.0/80"}, wantErr: "write the IPv4 network"},
		{name: "junk", in: []string{"10.0.0.0/8", "haproxy1"}, wantErr: `"haproxy1"`},
		{name: "prefix too long", in: []string{"10.0.0.0/33"}, wantErr: `"10.0.0.0/33"`},
		{name: "empty string", in: []string{""}, wantErr: `""`},
		{name: "address with port", in: []string{"10.0.0.5:5555"}, wantErr: `"10.0.0.5:5555"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAllow(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseAllow(%q) = %v, %v; want an error naming %s", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAllow(%q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseAllow(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestConfigErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Key: "log.format", Msg: "bad"}, "a.yaml:3: log.format: bad"},
		{Error{File: "a.yaml", Key: "interval", Msg: "bad"}, "a.yaml: interval: bad"},
		{Error{File: "a.yaml", Line: 7, Msg: "bad"}, "a.yaml:7: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestParseConfigHAProxyEndpoints(t *testing.T) {
	t.Parallel()
	good := "haproxy:\n  - runtime: unix:///run/haproxy/admin.sock\n    backend: ws\n    server: ws1\n  - runtime: tcp://127.0.0.1:9999\nshed:\n  via: hook\n  hook_url: http://127.0.0.1:8080/hafeed/shed\nrebalance:\n  enabled: true\n"
	cfg, err := Parse("cfg.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []HAProxyConfig{{Runtime: "unix:///run/haproxy/admin.sock", Backend: "ws", Server: "ws1"}, {Runtime: "tcp://127.0.0.1:9999"}}
	if diff := cmp.Diff(want, cfg.HAProxy); diff != "" {
		t.Errorf("haproxy (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"haproxy:\n  - runtime: unix:///a.sock\n    backnd: ws\n", "cfg.yaml:3: haproxy[0].backnd: unknown key"},
		{"haproxy:\n  - runtime: unix:///a.sock\n  - runtime: http://x\n", `cfg.yaml:3: haproxy[1].runtime: haproxy runtime endpoint "http://x": want "unix:///path/to/admin.sock"`},
		{"haproxy:\n  - runtime: /a.sock\n    backend: web\n    server: \"ws 1\"\n", `cfg.yaml:4: haproxy[0].server: invalid name: server name "ws 1"`},
		{"haproxy:\n  - runtime: /a.sock\n    backend: \"ws@eu\"\n    server: ws1\n", `cfg.yaml:3: haproxy[0].backend: invalid name: backend name "ws@eu"`},
		{"haproxy:\n  - runtime: /a.sock\n    backend: ws\n", "cfg.yaml:2: haproxy[0]: set both backend and server"},
		{"haproxy:\n  - runtime: /a.sock\n    backend: ws\n    server: \"ws1;shutdown\"\n", "cfg.yaml:4: haproxy[0].server:"},
		{"shed:\n  via: hook\n", "shed.hook_url: shed.via: hook needs"},
		{"shed:\n  via: kill\n", `cfg.yaml:2: shed.via: "kill": want runtime (HAProxy closes sessions), hook`},
		{"shed:\n  via: kernel\n", "cfg.yaml:2: shed.via: shed.via: kernel closes the established connections on sources.ports, which is empty"},
		// Issue 17, item 1: one HAProxy listed twice doubled the shedding rate.
		{"haproxy:\n  - runtime: /a.sock\n  - runtime: unix:///./a.sock\n", "cfg.yaml:3: haproxy[1].runtime: unix:///./a.sock is haproxy[0]'s HAProxy again"},
		{"haproxy:\n  - runtime: tcp://127.0.0.1:9999\n    backend: ws\n    server: s1\n  - runtime: tcp://127.0.0.1:9999\n    backend: ws\n    server: s1\n", "cfg.yaml:5: haproxy[1].runtime: tcp://127.0.0.1:9999 is haproxy[0]'s HAProxy again"},
		{"haproxy:\n  - runtime: /a.sock\n    backend: ws\n    server: s1\n  - runtime: /a.sock\n", "haproxy[1].runtime: /a.sock is haproxy[0]'s HAProxy again"},
		{"rebalance:\n  enabled: true\n", "needs at least one haproxy[].runtime endpoint"},
		{"rebalance:\n  max_rate: 2\n", "cfg.yaml:2: rebalance.max_rate: 2 is outside (0, 1]"},
	} {
		_, err := Parse("cfg.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}

// TestOneHAProxyPerListingPasses keeps what the check for an HAProxy
// listed twice must let through: several HAProxies, and one HAProxy once
// per backend/server pair this host is in.
func TestOneHAProxyPerListingPasses(t *testing.T) {
	t.Parallel()
	for _, yaml := range []string{
		"haproxy:\n  - runtime: /a.sock\n  - runtime: /b.sock\n  - runtime: tcp://127.0.0.1:9999\n",
		"haproxy:\n  - runtime: /a.sock\n    backend: ws\n    server: s1\n  - runtime: /a.sock\n    backend: chat\n    server: s1\n",
	} {
		if _, err := Parse("cfg.yaml", []byte(yaml)); err != nil {
			t.Errorf("Parse(%q) = %v, want it accepted", yaml, err)
		}
	}
}
