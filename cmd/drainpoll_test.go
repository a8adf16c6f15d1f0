package cmd_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/cmd"
)

// busyPolls is an agent that starts a shedding job on drain, answers the
// first busy status polls busy, then shows the count falling to zero; it
// records stop-shed requests.
type busyPolls struct {
	mu      sync.Mutex
	busy    int // status polls still to answer busy; -1: all
	stopped []uint64
}

func (b *busyPolls) Handle(_ context.Context, req control.Request) control.Response {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch req.Command {
	case control.CommandDrain:
		return control.Response{OK: true, Status: &control.Status{Admin: "drain", Shed: &control.ShedStatus{Job: 7, Active: true}}}
	case control.CommandStopShed:
		b.stopped = append(b.stopped, req.Job)
		return control.Response{OK: true, Status: &control.Status{Admin: "drain", Shed: &control.ShedStatus{Job: req.Job}}}
	}
	if b.busy != 0 {
		if b.busy > 0 {
			b.busy--
		}
		return control.Response{Busy: true, Error: "busy: another request holds the agent; nothing was changed, try again"}
	}
	return control.Response{OK: true, Status: &control.Status{Admin: "drain", Sample: &control.Sample{
		Signals: map[string]control.SignalStatus{policy.SignalConnections: {At: time.Now()}},
	}}}
}

// TestDrainWaitAsksAgainWhenAPollIsBusy checks that a busy status poll
// during drain --wait --shed-rate is asked again (issue 17, item 3: the
// CLI exited 1 saying "nothing was changed" while the host was drained and
// its job kept shedding), and that a wait that gives up stops the job it
// started and says the host stays drained.
func TestDrainWaitAsksAgainWhenAPollIsBusy(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	agent := &busyPolls{busy: 3}
	code, stdout, stderr := hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", serveFake(t, agent), "--wait", "--shed-rate", "10", "--timeout", "20s")
	if code != cmd.ExitOK || !strings.HasPrefix(stdout, "drained: 0 connections left") {
		t.Errorf("drain --wait with 3 busy polls = exit %d, stdout %q, stderr %q; want 0 and drained", code, stdout, stderr)
	}

	always := &busyPolls{busy: -1}
	code, _, stderr = hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", serveFake(t, always), "--wait", "--shed-rate", "10", "--timeout", "1500ms")
	always.mu.Lock()
	stopped := always.stopped
	always.mu.Unlock()
	if code != cmd.ExitFailure || !strings.Contains(stderr, "the agent did not answer how many connections are left") || !strings.Contains(stderr, "the host stays drained") {
		t.Errorf("drain --wait with every poll busy = exit %d, stderr %q; want 1, the polls' failure and the host staying drained", code, stderr)
	}
	if len(stopped) != 1 || stopped[0] != 7 {
		t.Errorf("stop-shed requests = %v, want one for job 7: the wait that gave up must stop its shedding", stopped)
	}
}

// TestDrainShedWithoutCloserDrains checks the packaged drop-in's command
// against an agent that has no way to close connections (the packaged
// config): the drain is applied, the CLI says loudly that nothing is
// closed and what to configure, and it waits for the count (zero here)
// and exits 0 (issue 17: it was refused, and the host never drained).
func TestDrainShedWithoutCloserDrains(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	cfg := startAgent(t)
	code, stdout, stderr := hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", cfg.ControlSocket, "--wait", "--shed-rate", "50", "--timeout", "30s")
	if code != cmd.ExitOK || !strings.HasPrefix(stdout, "drained: 0 connections left") || !strings.Contains(stdout, "nothing closed them") {
		t.Errorf("drain --wait --shed-rate 50 without a closer = exit %d, stdout %q, stderr %q; want 0, drained, and that nothing closed them", code, stdout, stderr)
	}
	for _, want := range []string{"warning: NOTHING IS BEING CLOSED", "shed.hook_url", "shed.via: kernel"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr = %q; want %q", stderr, want)
		}
	}
	if code, stdout, _ := hafeed(t, "status", "-c", emptyConfig(t), "--control-socket", cfg.ControlSocket, "--json"); code != cmd.ExitOK || !strings.Contains(stdout, `"admin": "drain"`) {
		t.Errorf("status after the drain = exit %d, %s; want admin drain", code, stdout)
	}
}

// TestDrainWaitTimeoutLetsTheJobSayItTimedOut drains with shedding through
// a hook that closes nothing, so that --timeout ends the wait: the job it
// started ends as timed out, not "stopped on request" (issue 17: the CLI
// stopped it first, and status said an operator had).
func TestDrainWaitTimeoutLetsTheJobSayItTimedOut(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"closed": 0}`))
	}))
	t.Cleanup(hook.Close)
	ln := listen(t)
	cfg := startAgent(t, func(c *config.Config) {
		c.Sources.Ports = []uint16{listenerPort(t, ln)}
		c.Shed = config.ShedConfig{Via: config.ShedViaHook, HookURL: hook.URL}
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	code, _, stderr := hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", cfg.ControlSocket, "--wait", "--shed-rate", "5", "--timeout", "2s")
	if code != cmd.ExitFailure || !strings.Contains(stderr, "timed out after 2s") {
		t.Fatalf("drain --wait with a connection nothing closes = exit %d, stderr %q; want 1, timed out", code, stderr)
	}
	code, stdout, _ := hafeed(t, "status", "-c", emptyConfig(t), "--control-socket", cfg.ControlSocket, "--json")
	var st control.Status
	if err := json.Unmarshal([]byte(stdout), &st); code != cmd.ExitOK || err != nil || st.Shed == nil {
		t.Fatalf("status = exit %d, %v: %s", code, err, stdout)
	}
	if st.Shed.Active || !strings.HasPrefix(st.Shed.Ended, "timed out with 1 connections left") {
		t.Errorf("the job after the wait's timeout: active %v, ended %q; want it ended, timed out with 1 left", st.Shed.Active, st.Shed.Ended)
	}
}
