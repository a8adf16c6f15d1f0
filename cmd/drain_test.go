package cmd_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/cmd"
	"github.com/hafeed/hafeed/internal/testutil"
)

// fakeAgent answers every control request with a copy of status, its
// admin state set to the command for admin commands. With recount, each
// status request shows a connection count taken at that moment, as a
// running agent's samples do.
type fakeAgent struct {
	status  control.Status
	recount bool
}

func (f fakeAgent) Handle(_ context.Context, req control.Request) control.Response {
	st := f.status
	if req.Command != control.CommandStatus {
		st.Admin = req.Command
	} else if f.recount && st.Sample != nil {
		s := *st.Sample
		s.Signals = map[string]control.SignalStatus{policy.SignalConnections: {Value: float64(s.Connections), At: time.Now()}}
		st.Sample = &s
	}
	return control.Response{OK: true, Status: &st}
}

// serveFake serves h on a control socket until the test ends.
func serveFake(t *testing.T, h control.Handler) string {
	t.Helper()
	path := filepath.Join(testutil.ShortTempDir(t), "control.sock")
	srv, err := control.Listen(path, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		testutil.Recv(t, done, waitLimit, "the fake agent to stop")
	})
	return path
}

// TestDrainWaitTimeoutByTheClock checks that --timeout ends the wait when
// no fresh connection count ever comes (issue 11, item 4: --timeout 3s
// returned after 21 s, and with 200k sockets never).
func TestDrainWaitTimeoutByTheClock(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	socket := serveFake(t, fakeAgent{status: control.Status{Admin: "drain", Sample: &control.Sample{}}})
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		code, stdout, stderr := hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", socket, "--wait", "--timeout", "700ms")
		done <- result{code, stdout, stderr}
	}()
	r := testutil.Recv(t, done, waitLimit, "drain --wait --timeout 700ms to return")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("drain --wait --timeout 700ms took %v", took)
	}
	if r.code != cmd.ExitFailure || !strings.Contains(r.stderr, "timed out after 700ms: no connection count since the drain began") {
		t.Errorf("drain --wait = exit %d, stderr %q; want %d, timed out without a count", r.code, r.stderr, cmd.ExitFailure)
	}
	if !strings.Contains(r.stderr, "the host stays drained") || !strings.Contains(r.stderr, "`hafeed ready`") {
		t.Errorf("drain --wait stderr = %q, want it to say that the host stays drained and how to undo it", r.stderr)
	}
}

// TestDrainWaitTimeoutSaysTheHostStaysDrained checks the message of a
// drain whose connections did not all leave in time: the count, and that
// the drain itself stays, with the command that lifts it (issue 17).
func TestDrainWaitTimeoutSaysTheHostStaysDrained(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	socket := serveFake(t, fakeAgent{recount: true, status: control.Status{Admin: "drain", Sample: &control.Sample{
		Connections: 7, Ports: []uint16{8080, 8443},
		Signals: map[string]control.SignalStatus{policy.SignalConnections: {Value: 7, At: time.Now()}},
	}}})
	code, stdout, stderr := hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", socket, "--wait", "--timeout", "300ms")
	want := "hafeed: timed out after 300ms: 7 connections remain on ports 8080,8443; the host stays drained (no new connections); `hafeed ready` takes it back into rotation\n"
	if code != cmd.ExitFailure || stdout != "" || !strings.HasSuffix(stderr, want) {
		t.Errorf("drain --wait = exit %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, cmd.ExitFailure, want)
	}
}

// TestAdminOutputStripsEscapes checks that text from HAProxy or the
// application reaches the terminal without escape sequences (issue 11,
// item 10: a runtime endpoint answering "\x1b]0;…\x1b[2J" had drain and
// status print it raw).
func TestAdminOutputStripsEscapes(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	evil := "owned\x1b]0;title\x07\x1b[2J\r\x9b31m"
	st := control.Status{
		Admin: "ready", Reply: "ready 100%", Warning: "not pushed yet: " + evil,
		HAProxy: []control.EndpointStatus{{Runtime: "unix:///run/haproxy.sock", Servers: []string{"ws/" + evil}, Error: evil}},
		Sample: &control.Sample{
			Errors:  []string{"app: " + evil},
			Signals: map[string]control.SignalStatus{"app": {Error: evil}},
		},
		Shed:      &control.ShedStatus{Reason: "drain", LastError: evil},
		Rebalance: &control.RebalanceStatus{Error: evil},
	}
	socket := serveFake(t, fakeAgent{status: st})
	for _, args := range [][]string{{"drain"}, {"status"}, {"ready"}} {
		code, stdout, stderr := hafeed(t, append(args, "-c", emptyConfig(t), "--control-socket", socket)...)
		if code != cmd.ExitOK {
			t.Errorf("%s = exit %d, stderr %q", args[0], code, stderr)
		}
		for name, out := range map[string]string{"stdout": stdout, "stderr": stderr} {
			if strings.ContainsAny(out, "\x1b\x07\r\u009b") {
				t.Errorf("%s wrote a control character to %s: %q", args[0], name, out)
			}
		}
		if !strings.Contains(stdout+stderr, "owned") {
			t.Errorf("%s dropped the text around the escapes: stdout %q, stderr %q", args[0], stdout, stderr)
		}
	}
}

// TestSampleStripsEscapesFromTheApp checks that hafeed sample prints the
// application endpoint's error without the escape sequences its status
// line carried.
func TestSampleStripsEscapesFromTheApp(t *testing.T) {
	ln := listen(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(waitLimit))
			c.Read(make([]byte, 4096))
			c.Write([]byte("HTTP/1.1 500 owned\x1b]0;title\x07\x1b[2J\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			c.Close()
		}
	})
	cfg := writeFile(t, "hafeed.yaml", "sources:\n  cpu: none\n  memory: none\n  app:\n    url: http://"+ln.Addr().String()+"/load\n")
	code, stdout, stderr := hafeed(t, "sample", "-c", cfg, "--ports", "1")
	if code != cmd.ExitOK {
		t.Fatalf("sample = exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "owned") {
		t.Fatalf("sample printed %q, want the app's error in it", stdout)
	}
	if strings.ContainsAny(stdout+stderr, "\x1b\x07") {
		t.Errorf("sample wrote a control character: %q", stdout)
	}
}

// steppedBack is an agent whose clock was stepped back an hour just after
// the drain: every count it takes after the drain is stamped before the
// command started. Each status shows a newer count than the last, with
// no connection left.
type steppedBack struct {
	mu    *sync.Mutex
	count *int
}

func (s steppedBack) Handle(_ context.Context, req control.Request) control.Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.count++
	at := time.Now().Add(-time.Hour + time.Duration(*s.count)*time.Millisecond)
	conns := 0
	if req.Command == control.CommandDrain {
		// The count the drain's reply shows, taken before the step.
		at, conns = time.Now().Add(-500*time.Millisecond), 7
	}
	st := control.Status{Admin: "drain", Sample: &control.Sample{At: at, Connections: conns, Ports: []uint16{8080},
		Signals: map[string]control.SignalStatus{policy.SignalConnections: {Value: float64(conns), At: at}}}}
	return control.Response{OK: true, Status: &st}
}

// TestDrainWaitAfterTheClockStepsBack checks that drain --wait finishes
// when fresh counts show no connection left, although the agent's clock
// stamps them before the command started (issue 17, "Clock": after a
// backward step it could not finish).
func TestDrainWaitAfterTheClockStepsBack(t *testing.T) {
	t.Setenv("HAFEED_CONTROL_SOCKET", "")
	socket := serveFake(t, steppedBack{mu: &sync.Mutex{}, count: new(int)})
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := hafeed(t, "drain", "-c", emptyConfig(t), "--control-socket", socket, "--wait", "--timeout", "2s")
		done <- result{code, stdout, stderr}
	}()
	r := testutil.Recv(t, done, waitLimit, "drain --wait --timeout 2s to return")
	if r.code != cmd.ExitOK || !strings.Contains(r.stdout, "drained: 0 connections left") {
		t.Errorf("drain --wait with fresh counts of 0 stamped before it began = exit %d, stdout %q, stderr %q; want drained", r.code, r.stdout, r.stderr)
	}
}
