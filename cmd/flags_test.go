package cmd_test

import (
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/cmd"
	"github.com/hafeed/hafeed/internal/testutil"
)

// helpFlags lists the long flags `hafeed ARGS --help` shows.
func helpFlags(t *testing.T, args ...string) []string {
	t.Helper()
	code, stdout, stderr := hafeed(t, append(args, "--help")...)
	if code != cmd.ExitOK {
		t.Fatalf("hafeed %q --help = exit %d, stderr %q", args, code, stderr)
	}
	_, flags, ok := strings.Cut(stdout, "\nFlags:\n")
	if !ok {
		t.Fatalf("hafeed %q --help has no flags section:\n%s", args, stdout)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z-]+)`).FindAllStringSubmatch(flags, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return names
}

// TestEachCommandListsOnlyItsFlags checks that a command's help lists the
// flags it uses and no other (issue 17: drain, ready, maint and status
// listed --ports, --state-file, --interval, --agent-listen and --log-*,
// and ignored them).
func TestEachCommandListsOnlyItsFlags(t *testing.T) {
	client := []string{"config", "control-socket", "help", "json"}
	all := []string{"agent-listen", "config", "control-socket", "help", "interval", "log-format", "log-level", "ports", "state-file"}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"run"}, all},
		{[]string{"config", "check"}, all},
		{[]string{"sample"}, []string{"agent-listen", "config", "help", "json", "ports"}},
		{[]string{"drain"}, slices.Sorted(slices.Values(append(slices.Clone(client), "min", "reason", "shed-rate", "timeout", "wait")))},
		{[]string{"maint"}, slices.Sorted(slices.Values(append(slices.Clone(client), "reason")))},
		{[]string{"ready"}, client},
		{[]string{"status"}, slices.Sorted(slices.Values(append(slices.Clone(client), "agent-listen", "ports")))},
		{[]string{"config", "example"}, []string{"help"}},
		{[]string{"version"}, []string{"help"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, helpFlags(t, tt.args...)); diff != "" {
			t.Errorf("hafeed %s --help flags (-want +got):\n%s", strings.Join(tt.args, " "), diff)
		}
	}
}

// TestClientCommandsRefuseTheAgentsSettings checks that a command acting
// on the running agent refuses a flag only the agent's configuration can
// set, saying so and naming the commands that take it, before it contacts
// the agent (issue 17: `drain --wait --ports 1` counted other ports).
func TestClientCommandsRefuseTheAgentsSettings(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	// An agent that would drain: the command must not get this far.
	socket := serveFake(t, fakeAgent{status: control.Status{Admin: "ready"}})
	for _, args := range [][]string{
		{"drain", "--wait", "--ports", "1"},
		{"drain", "--state-file", "/tmp/x.json"},
		{"ready", "--interval", "1s"},
		{"maint", "--agent-listen", ":5555"},
		{"status", "--log-level", "debug"},
	} {
		code, stdout, stderr := hafeed(t, append(args, "--control-socket", socket)...)
		flag := args[len(args)-2]
		if code != cmd.ExitUsage || stdout != "" {
			t.Errorf("hafeed %q = exit %d, stdout %q; want %d and nothing", args, code, stdout, cmd.ExitUsage)
		}
		for _, want := range []string{"hafeed: unknown flag: " + flag, "does not take it: it acts on the running agent", flag + " is a flag of ", "`hafeed run`"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("hafeed %q stderr = %q, want it to contain %q", args, stderr, want)
			}
		}
	}
}

// TestStatusTakesTheSourceFlags checks that status, which samples load as
// sample does, honours run's source flags: --ports adds a local sample of
// those ports beside the agent's status, also with the agent down (exit 3).
func TestStatusTakesTheSourceFlags(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	socket := serveFake(t, fakeAgent{status: control.Status{Admin: "ready", Reply: "up 100%"}})
	code, stdout, stderr := hafeed(t, "status", "-c", emptyConfig(t), "--control-socket", socket, "--ports", port, "--json")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil || st.Admin != "ready" || st.LocalSample == nil ||
		st.LocalSample.Connections != 1 || !slices.Equal(st.LocalSample.Ports, []uint16{uint16(atoiPort(t, port))}) {
		t.Errorf("status --ports %s --json = exit %d, stdout %q, stderr %q; want the agent's status and a local sample of 1 connection on that port", port, code, stdout, stderr)
	}
	code, stdout, _ = hafeed(t, "status", "-c", emptyConfig(t), "--control-socket", socket, "--ports", port)
	if code != 0 || !strings.Contains(stdout, "local sample") || !strings.Contains(stdout, "admin") {
		t.Errorf("status --ports %s = exit %d, stdout %q; want the status table with a local sample", port, code, stdout)
	}

	gone := filepath.Join(testutil.ShortTempDir(t), "none.sock")
	code, stdout, stderr = hafeed(t, "status", "-c", emptyConfig(t), "--control-socket", gone, "--ports", port)
	if code != cmd.ExitUnreachable || !strings.Contains(stdout, "not running: a local sample taken with the source flags") || !strings.Contains(stdout, "connections") {
		t.Errorf("status with no agent = exit %d, stdout %q, stderr %q; want %d with a local sample", code, stdout, stderr, cmd.ExitUnreachable)
	}
}

func atoiPort(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFlagSuggestions checks "did you mean" for mistyped flags: the
// command's own nearest flag, else another command's.
func TestFlagSuggestions(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sample", "--port", "8080"}, "unknown flag: --port; did you mean --ports? (see `hafeed sample --help`)"},
		{[]string{"run", "--intervl", "1s"}, "did you mean --interval?"},
		{[]string{"config", "check", "--stat-file", "x"}, "did you mean --state-file?"},
		{[]string{"drain", "--shedrate", "5"}, "did you mean --shed-rate?"},
		{[]string{"drain", "--wiat"}, "did you mean --wait?"},
		{[]string{"drain", "--port", "1"}, "unknown flag: --port; did you mean --ports? `hafeed drain` does not take it either"},
		{[]string{"maint", "--reasn", "x"}, "did you mean --reason?"},
	}
	for _, tt := range tests {
		code, _, stderr := hafeed(t, tt.args...)
		if code != cmd.ExitUsage || !strings.HasPrefix(stderr, "hafeed: ") || !strings.Contains(stderr, tt.want) {
			t.Errorf("hafeed %q = exit %d, stderr %q; want %d and %q", tt.args, code, stderr, cmd.ExitUsage, tt.want)
		}
	}
	// Nothing near: no guess.
	if _, _, stderr := hafeed(t, "status", "--frobnicate"); strings.Contains(stderr, "did you mean") || strings.Contains(stderr, "is a flag of") {
		t.Errorf("status --frobnicate stderr = %q, want no suggestion", stderr)
	}
}

func TestVersionFlag(t *testing.T) {
	_, want, _ := hafeed(t, "version")
	for _, flag := range []string{"--version", "-v"} {
		code, stdout, stderr := hafeed(t, flag)
		if code != cmd.ExitOK || stdout != want || stderr != "" {
			t.Errorf("hafeed %s = exit %d, stdout %q, stderr %q; want 0 and %q like `hafeed version`", flag, code, stdout, stderr, want)
		}
	}
}
