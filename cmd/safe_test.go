package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/cmd"
)

// failingAgent refuses every request with its error text.
type failingAgent struct{ err string }

func (f failingAgent) Handle(context.Context, control.Request) control.Response {
	return control.Response{Error: f.err}
}

// TestEveryPrintedStringIsTerminalSafe fills every string of the status the
// agent reports with escape sequences and controls, by reflection, so that
// a field added later is covered without this test changing, and checks
// what status, drain, ready, drain --wait and a refused request print on
// stdout and stderr, as a table and as JSON.
func TestEveryPrintedStringIsTerminalSafe(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	var st control.Status
	cmd.FillText(&st)
	socket := serveFake(t, fakeAgent{status: st})
	refused := serveFake(t, failingAgent{err: cmd.Hostile})
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"status", "--control-socket", socket}, cmd.ExitOK},
		{[]string{"drain", "--control-socket", socket}, cmd.ExitOK},
		{[]string{"ready", "--control-socket", socket}, cmd.ExitOK},
		// The agent's admin state is not "drain": the wait ends with an
		// error that quotes it.
		{[]string{"drain", "--wait", "--control-socket", socket}, cmd.ExitFailure},
		{[]string{"status", "--control-socket", refused}, cmd.ExitFailure},
		{[]string{"status", "--json", "--control-socket", socket}, cmd.ExitOK},
		{[]string{"ready", "--json", "--control-socket", socket}, cmd.ExitOK},
	} {
		name := strings.Join(c.args[:len(c.args)-2], " ")
		code, stdout, stderr := hafeed(t, append(c.args, "-c", emptyConfig(t))...)
		if code != c.code {
			t.Errorf("%s = exit %d, want %d; stderr %q", name, code, c.code, stderr)
		}
		cmd.CheckTerminalSafe(t, name+" (stdout)", stdout, false)
		// An error's text may hold the lines of the reply it quotes.
		cmd.CheckTerminalSafe(t, name+" (stderr)", stderr, c.code != cmd.ExitOK)
		if !strings.Contains(stdout+stderr, "owned") {
			t.Errorf("%s dropped the text around the escapes: stdout %q, stderr %q", name, stdout, stderr)
		}
	}
}

// TestJSONOutputKeepsTheValues checks that the JSON hafeed prints through
// its stripping writer holds the values the agent sent, hostile ones
// included, and that JSON without characters a terminal acts on is
// printed byte for byte as encoding/json writes it.
func TestJSONOutputKeepsTheValues(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	var hostile control.Status
	cmd.FillText(&hostile)
	plain := control.Status{Admin: "ready", Reply: "up 100%", Version: "drain → ready, 50 % é 日本 <&>",
		HAProxy: []control.EndpointStatus{{Runtime: "unix:///run/haproxy.sock", Servers: []string{"ws/ws1"}}}}
	for name, st := range map[string]control.Status{"hostile": hostile, "plain": plain} {
		code, stdout, stderr := hafeed(t, "status", "--json", "-c", emptyConfig(t), "--control-socket", serveFake(t, fakeAgent{status: st}))
		if code != cmd.ExitOK {
			t.Fatalf("%s: status --json = exit %d, stderr %q", name, code, stderr)
		}
		var got control.Status
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("%s: status --json printed no JSON: %v\n%s", name, err, stdout)
		}
		if !reflect.DeepEqual(got, st) {
			t.Errorf("%s: status --json holds\n%+v\nwant\n%+v", name, got, st)
		}
		if name == "plain" {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", "  ")
			if err := enc.Encode(st); err != nil {
				t.Fatal(err)
			}
			if stdout != want.String() {
				t.Errorf("status --json = %q, want encoding/json's %q", stdout, want.String())
			}
		}
	}
}

// TestSampleIsTerminalSafe checks hafeed sample's table and JSON when the
// application's load endpoint answers with escape sequences in its status
// line and body.
func TestSampleIsTerminalSafe(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(cmd.Hostile))
	}))
	defer app.Close()
	cfg := writeFile(t, "hafeed.yaml", "sources:\n  cpu: none\n  memory: none\n  app:\n    url: "+app.URL+"/load\n")
	for _, args := range [][]string{{"sample"}, {"sample", "--json"}} {
		code, stdout, stderr := hafeed(t, append(args, "-c", cfg, "--ports", "1")...)
		if code != cmd.ExitOK {
			t.Fatalf("%s = exit %d, stderr %q", args, code, stderr)
		}
		for _, r := range stdout + stderr {
			if r < 0x20 && r != '\n' && r != '\t' || r >= 0x7f && r <= 0x9f || r == '\u202e' {
				t.Errorf("%s printed %U:\n%q", args, r, stdout+stderr)
				break
			}
		}
	}
}
