package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/agent"
	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/cmd"
	"github.com/hafeed/hafeed/internal/testutil"
)

// waitLimit bounds every wait in these tests; nothing should come close.
const waitLimit = 5 * time.Second

// hafeed runs the command line in-process. Main sets zerolog's package
// settings on every call, so these tests do not run in parallel.
func hafeed(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cmd.Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeFile writes a file in a fresh test directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// emptyConfig is a config file that means the defaults, so that tests do
// not depend on $HAFEED_CONFIG or /etc/hafeed.
func emptyConfig(t *testing.T) string {
	t.Helper()
	return writeFile(t, "hafeed.yaml", "")
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := hafeed(t, "version")
	if code != cmd.ExitOK || stderr != "" {
		t.Fatalf("hafeed version = %d, stderr %q; want %d and no stderr", code, stderr, cmd.ExitOK)
	}
	if !regexp.MustCompile(`^hafeed \S+\n$`).MatchString(stdout) {
		t.Errorf("hafeed version printed %q, want \"hafeed <version>\"", stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	empty := emptyConfig(t)
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	// Should run ever get past its checks, it stays out of /run and /var/lib.
	dir := testutil.ShortTempDir(t)
	run := []string{"run", "-c", empty, "--control-socket", filepath.Join(dir, "control.sock"), "--state-file", filepath.Join(dir, "state.json")}
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{name: "unknown flag", args: []string{"version", "--bogus"}, want: "unknown flag: --bogus"},
		{name: "unknown flag on root", args: []string{"--bogus"}, want: "unknown flag: --bogus"},
		{name: "unknown shorthand", args: []string{"status", "-z"}, want: "unknown shorthand flag"},
		{name: "flag without value", args: []string{"drain", "--control-socket"}, want: "needs an argument"},
		{name: "bad duration flag", args: slices.Concat(run, []string{"--interval", "soon"}), want: "--interval"},
		{name: "extra args", args: []string{"version", "extra"}, want: `takes no arguments, got ["extra"]`},
		{name: "extra args to drain", args: []string{"drain", "now"}, want: "takes no arguments"},
		{name: "two files to config check", args: []string{"config", "check", "a.yaml", "b.yaml"}, want: `takes one config file, got ["a.yaml" "b.yaml"]`},
		{name: "unknown command", args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		{name: "unknown config subcommand", args: []string{"config", "chekc"}, want: `unknown command "chekc"`},
		{name: "bad ports", args: []string{"sample", "-c", empty, "--ports", "8080,http"}, want: `--ports: "http" is not a port number`},
		{name: "port 0", args: []string{"sample", "-c", empty, "--ports", "0"}, want: "--ports"},
		{name: "invalid flag value", args: []string{"config", "check", "-c", empty, "--interval", "1ms"}, want: "flags: interval: 1ms is too short"},
		{name: "invalid log level", args: slices.Concat(run, []string{"--log-level", "loud"}), want: "log.level"},
		{name: "invalid listen for run", args: slices.Concat(run, []string{"--agent-listen", "nowhere"}), want: "agent_check.listen"},
		{name: "invalid flag for config check", args: []string{"config", "check", "-c", empty, "--log-format", "xml"}, want: "log.format"},
		{name: "missing config file", args: []string{"config", "check", "-c", missing}, want: missing + " does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := hafeed(t, tt.args...)
			if code != cmd.ExitUsage {
				t.Errorf("hafeed %q = exit %d, want %d (stderr %q)", tt.args, code, cmd.ExitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "hafeed: ") || !strings.Contains(stderr, tt.want) {
				t.Errorf("hafeed %q stderr = %q, want \"hafeed: ...%s...\"", tt.args, stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("hafeed %q stdout = %q, want nothing", tt.args, stdout)
			}
		})
	}
}

func TestConfigCheckBadFile(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // in stderr, after the file name
	}{
		{name: "invalid value", yaml: "interval: 1s\nlog:\n  format: xml\n", want: []string{":3: log.format:"}},
		{name: "unknown key", yaml: "agent_check:\n  lisen: \":5555\"\n", want: []string{":2: agent_check.lisen: unknown key"}},
		{name: "type error", yaml: "\n\ninterval: often\n", want: []string{":3: "}},
		{name: "two errors", yaml: "interval: 1ms\npolicy:\n  targets:\n    cpu: 3\n", want: []string{":1: interval:", ":4: policy.targets.cpu:"}},
		{name: "IPv4-mapped allow entry that matches no IPv4 peer", yaml: "agent_check:\n  allow: [\"::ffff:10.0.0.0/80\"]\n", want: []string{`:2: agent_check.allow: "::ffff:10.0.0.0/80": an IPv4-mapped prefix shorter than /96 matches no IPv4 peer`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "bad.yaml", tt.yaml)
			code, stdout, stderr := hafeed(t, "config", "check", "-c", path)
			if code != cmd.ExitUsage {
				t.Errorf("config check = exit %d, want %d", code, cmd.ExitUsage)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, path+w) {
					t.Errorf("config check stderr = %q, want it to contain %q", stderr, path+w)
				}
			}
			if strings.Contains(stdout, "valid") {
				t.Errorf("config check stdout = %q, want no claim of validity", stdout)
			}
		})
	}
}

func TestConfigExamplePassesCheck(t *testing.T) {
	code, example, stderr := hafeed(t, "config", "example")
	if code != cmd.ExitOK || stderr != "" {
		t.Fatalf("config example = exit %d, stderr %q", code, stderr)
	}
	if !bytes.Equal([]byte(example), config.Example()) {
		t.Error("config example does not print config.Example()")
	}
	path := writeFile(t, "hafeed.yaml", example)
	code, stdout, stderr := hafeed(t, "config", "check", "-c", path)
	if code != cmd.ExitOK {
		t.Fatalf("config check of the example = exit %d, stderr %q", code, stderr)
	}
	if want := path + ": configuration is valid\n"; stdout != want {
		t.Errorf("config check stdout = %q, want %q", stdout, want)
	}
}

func TestConfigCheckUsesEnvConfig(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "log:\n  level: loud\n")
	good := emptyConfig(t)
	t.Setenv("HAFEED_CONFIG", bad)

	code, _, stderr := hafeed(t, "config", "check")
	if code != cmd.ExitUsage || !strings.Contains(stderr, bad+":2: log.level") {
		t.Errorf("config check with HAFEED_CONFIG=%s = exit %d, stderr %q; want %d naming %s:2", bad, code, stderr, cmd.ExitUsage, bad)
	}
	// The flag wins over the environment.
	code, stdout, stderr := hafeed(t, "config", "check", "-c", good)
	if code != cmd.ExitOK || !strings.Contains(stdout, good) {
		t.Errorf("config check -c %s = exit %d, stdout %q, stderr %q; want %d", good, code, stdout, stderr, cmd.ExitOK)
	}
}

func TestAdminCommandsUnreachable(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	empty := emptyConfig(t)
	socket := filepath.Join(testutil.ShortTempDir(t), "control.sock")
	for _, command := range []string{"drain", "ready", "maint", "status"} {
		code, stdout, stderr := hafeed(t, command, "-c", empty, "--control-socket", socket)
		if code != cmd.ExitUnreachable {
			t.Errorf("hafeed %s = exit %d, want %d (stderr %q)", command, code, cmd.ExitUnreachable, stderr)
		}
		if !strings.Contains(stderr, socket) || !strings.Contains(stderr, "hafeed run") {
			t.Errorf("hafeed %s stderr = %q, want it to name %s and say how to start the agent", command, stderr, socket)
		}
		if stdout != "" {
			t.Errorf("hafeed %s stdout = %q, want nothing", command, stdout)
		}
	}
}

func TestAdminCommandsUseEnvControlSocket(t *testing.T) {
	empty := emptyConfig(t)
	socket := filepath.Join(testutil.ShortTempDir(t), "env.sock")
	t.Setenv("HAFEED_CONTROL_SOCKET", socket)

	code, _, stderr := hafeed(t, "drain", "-c", empty)
	if code != cmd.ExitUnreachable || !strings.Contains(stderr, socket) {
		t.Errorf("drain with HAFEED_CONTROL_SOCKET=%s = exit %d, stderr %q; want %d naming the socket", socket, code, stderr, cmd.ExitUnreachable)
	}
	// The flag wins over the environment.
	flagSocket := filepath.Join(testutil.ShortTempDir(t), "flag.sock")
	code, _, stderr = hafeed(t, "drain", "-c", empty, "--control-socket", flagSocket)
	if code != cmd.ExitUnreachable || !strings.Contains(stderr, flagSocket) {
		t.Errorf("drain --control-socket %s = exit %d, stderr %q; want %d naming %s", flagSocket, code, stderr, cmd.ExitUnreachable, flagSocket)
	}
}

// startAgent runs an agent on a listener of the test's own until the test
// ends, with change's changes to its configuration, and returns the
// configuration once it is ready.
func startAgent(t *testing.T, change ...func(*config.Config)) config.Config {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	cfg := config.Default()
	cfg.AgentCheck.Listen = "127.0.0.1:0"
	cfg.ControlSocket = filepath.Join(dir, "control.sock")
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.Sources.Ports = []uint16{listenerPort(t, listen(t))}
	for _, f := range change {
		f(&cfg)
	}

	ready := make(chan struct{})
	a := agent.New(agent.Options{Config: cfg, Ready: func() { close(ready) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := testutil.Recv(t, done, waitLimit, "Serve to return after cancel"); err != nil {
			t.Errorf("Serve() = %v after cancel", err)
		}
	})
	testutil.Until(t, waitLimit, "the agent to be ready", func() bool {
		select {
		case <-ready:
			return true
		case err := <-done:
			t.Fatalf("Serve() = %v before it was ready", err)
		default:
		}
		return false
	})
	return cfg
}

func TestAdminCommandsAgainstRunningAgent(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	empty := emptyConfig(t)
	cfg := startAgent(t)

	ctl := []string{"-c", empty, "--control-socket", cfg.ControlSocket}
	code, stdout, stderr := hafeed(t, append([]string{"drain"}, ctl...)...)
	if code != cmd.ExitOK || !strings.Contains(stdout, "admin state drain") {
		t.Errorf("drain = exit %d, stdout %q, stderr %q; want 0 and the new state", code, stdout, stderr)
	}
	// A config broken elsewhere still names the socket: a warning, not exit 2.
	broken := writeFile(t, "broken.yaml", "control_socket: "+cfg.ControlSocket+"\ninterval: 1sec\nagent_check:\n  listn: \":5555\"\n")
	code, stdout, stderr = hafeed(t, "drain", "-c", broken)
	if code != cmd.ExitOK || !strings.Contains(stdout, "admin state drain") || !strings.HasPrefix(stderr, "warning: ") ||
		!strings.Contains(stderr, "interval") || !strings.Contains(stderr, "agent_check.listn") {
		t.Errorf("drain -c broken.yaml = exit %d, stdout %q, stderr %q; want 0, the new state and a warning naming both problems", code, stdout, stderr)
	}
	code, _, stderr = hafeed(t, "config", "check", "-c", broken)
	if code != cmd.ExitUsage || !strings.Contains(stderr, `interval: "1sec" is not a duration`) || !strings.Contains(stderr, "agent_check.listn: unknown key") {
		t.Errorf("config check -c broken.yaml = exit %d, stderr %q; want %d listing both problems", code, stderr, cmd.ExitUsage)
	}

	code, stdout, stderr = hafeed(t, append([]string{"status", "--json"}, ctl...)...)
	var st control.Status
	if code != cmd.ExitOK {
		t.Errorf("status --json = exit %d, stderr %q", code, stderr)
	} else if err := json.Unmarshal([]byte(stdout), &st); err != nil || st.Admin != "drain" || st.ControlSocket != cfg.ControlSocket {
		t.Errorf("status --json printed %q (%v), want JSON with admin drain", stdout, err)
	}
	code, stdout, stderr = hafeed(t, append([]string{"status"}, ctl...)...)
	if code != cmd.ExitOK || !regexp.MustCompile(`(?m)^admin +drain`).MatchString(stdout) || !regexp.MustCompile(`(?m)^reply +drain`).MatchString(stdout) {
		t.Errorf("status = exit %d, stdout %q, stderr %q; want a table showing drain", code, stdout, stderr)
	}

	// Leaving maint for drain keeps HAProxy in MAINT: the CLI warns.
	hafeed(t, append([]string{"maint"}, ctl...)...)
	code, _, stderr = hafeed(t, append([]string{"drain"}, ctl...)...)
	if code != cmd.ExitOK || !strings.HasPrefix(stderr, "warning: ") {
		t.Errorf("drain after maint = exit %d, stderr %q; want 0 and a warning", code, stderr)
	}

	code, stdout, stderr = hafeed(t, append([]string{"ready", "--json"}, ctl...)...)
	if code != cmd.ExitOK {
		t.Fatalf("ready --json = exit %d, stderr %q", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || st.Admin != "ready" || !st.AnnouncingReady {
		t.Errorf("ready --json printed %q (%v), want admin ready, announcing", stdout, err)
	}
}

func TestSampleJSON(t *testing.T) {
	ln := listen(t)
	port := listenerPort(t, ln)
	// One established inbound connection on the port.
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	code, stdout, stderr := hafeed(t, "sample", "-c", emptyConfig(t), "--ports", strconv.Itoa(int(port)), "--json")
	if code != cmd.ExitOK {
		t.Fatalf("sample = exit %d, stderr %q", code, stderr)
	}
	var got struct {
		Connections   *int     `json:"connections"`
		Ports         []uint16 `json:"ports"`
		WeightPercent int      `json:"weight_percent"`
		Reply         string   `json:"reply"`
		Errors        []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("sample --json printed %q: %v", stdout, err)
	}
	if got.Connections == nil || *got.Connections != 1 {
		t.Errorf("sample connections = %v, want 1 (stdout %s)", got.Connections, stdout)
	}
	if diff := cmp.Diff([]uint16{port}, got.Ports); diff != "" {
		t.Errorf("sample ports (-want +got):\n%s", diff)
	}
	if len(got.Errors) != 0 {
		t.Errorf("sample errors = %q, want none", got.Errors)
	}
	if want := "up " + strconv.Itoa(got.WeightPercent) + "%"; got.Reply != want || got.WeightPercent < 1 {
		t.Errorf("sample reply = %q with weight %d, want %q", got.Reply, got.WeightPercent, want)
	}
}

func TestSampleTable(t *testing.T) {
	port := listenerPort(t, listen(t))
	code, stdout, stderr := hafeed(t, "sample", "-c", emptyConfig(t), "--ports", strconv.Itoa(int(port)))
	if code != cmd.ExitOK {
		t.Fatalf("sample = exit %d, stderr %q", code, stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^connections +0 established on ports ` + strconv.Itoa(int(port)) + ` `),
		regexp.MustCompile(`(?m)^reply +up [0-9]+% \(when ready\)$`),
		// The load model's parts, the capacity and the reference it implies.
		regexp.MustCompile(`(?m)^load model +baseline [0-9.]+ \(measured while the host held no connections\), connections cost [0-9.]+ of the reference's, headroom [0-9]+%, connections cause [0-9]+% of the load$`),
		regexp.MustCompile(`(?m)^capacity +[0-9]+ connections at target$`),
		regexp.MustCompile(`(?m)^reference +policy.reference_capacity is 10000; a host like this one would suggest about [0-9]+ \(weight 100%\)$`),
	} {
		if !want.MatchString(stdout) {
			t.Errorf("sample printed %q, want a line matching %s", stdout, want)
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func listenerPort(t *testing.T, ln net.Listener) uint16 {
	t.Helper()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}
