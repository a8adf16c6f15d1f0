package e2e

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/testutil"
)

// hangUp sends SIGHUP n times, a few milliseconds apart.
func (h *hafeed) hangUp(n int) {
	for range n {
		if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return // exited: the caller finds out
		}
		time.Sleep(2 * time.Millisecond) // spacing between signals, not synchronisation
	}
}

// TestSignalsAtStartAndStop checks that SIGHUP as the control socket
// appears, right after the agent answers and after SIGTERM never kills the
// agent, and that SIGTERM stops it promptly with idle control clients
// connected (issue 11, item 2: exit 129 in 10 of 10 starts, and one idle
// client delayed the exit by 9.7 s).
func TestSignalsAtStartAndStop(t *testing.T) {
	t.Parallel()
	// An application whose load endpoint answers slowly: the agent's
	// first sample, between opening the control socket and running, takes
	// that long, which is the window a SIGHUP used to kill it in.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // the slow application
		w.Write([]byte("0.5\n"))
	}))
	defer slow.Close()
	app := startApp(t)
	h := startHafeed(t, hafeedOptions{appPort: app.port(), config: "sources:\n  cpu: none\n  memory: none\n  app:\n    url: " + slow.URL + "\n"})
	h.stop()
	for round := range 5 {
		os.Remove(h.ctlSock)
		h.relaunch()
		if _, err := testutil.Wait(10*time.Second, func() error { _, err := os.Stat(h.ctlSock); return err }); err != nil {
			t.Fatalf("round %d: no control socket within 10s: %v\n%s", round, err, h.logs())
		}
		h.hangUp(10)
		if err := awaitStarted(h.exited, func() bool { _, err := h.call(control.CommandStatus); return err == nil }); err != nil {
			t.Fatalf("round %d: SIGHUP as the control socket appeared: %v (%v)\n%s", round, err, h.exitState(), h.logs())
		}
		h.hangUp(10)
		if _, err := h.call(control.CommandStatus); err != nil {
			t.Fatalf("round %d: SIGHUP right after start: %v (%v)\n%s", round, err, h.exitState(), h.logs())
		}

		// Idle control clients, then SIGTERM followed by SIGHUPs.
		var idle []net.Conn
		for range 40 {
			c, err := net.Dial("unix", h.ctlSock)
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, c)
		}
		start := time.Now()
		h.cmd.Process.Signal(syscall.SIGTERM)
		h.hangUp(5)
		testutil.Recv(t, h.exited, 10*time.Second, "hafeed to exit after SIGTERM")
		took := time.Since(start)
		for _, c := range idle {
			c.Close()
		}
		h.log.Close()
		if h.exitErr != nil {
			t.Fatalf("round %d: exit after SIGTERM and SIGHUP = %v, want 0\n%s", round, h.exitErr, h.logs())
		}
		if took > 2*time.Second {
			t.Errorf("round %d: SIGTERM with 40 idle control clients took %v to exit", round, took)
		}
		h.cmd = nil
	}
}

// TestDrainWaitInterruptStopsShedding checks that Ctrl-C on
// `drain --wait --shed-rate` stops the shedding it started, keeps the host
// drained and says so (issue 11, item 11).
func TestDrainWaitInterruptStopsShedding(t *testing.T) {
	t.Parallel()
	var hookCalls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookCalls.Add(1)
		w.Write([]byte(`{"closed": 1}`))
	}))
	defer hook.Close()
	app := startApp(t)
	app.connect(20)
	h := startHafeed(t, hafeedOptions{appPort: app.port(),
		config: "sources:\n  cpu: none\n  memory: none\nshed:\n  via: hook\n  hook_url: " + hook.URL + "/hafeed/shed\n"})

	var out bytes.Buffer
	cli := exec.Command(cliBin, "drain", "--wait", "--shed-rate", "20", "--timeout", "60s", "--control-socket", h.ctlSock)
	cli.Stdout, cli.Stderr = &out, &out
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cli.Wait() }()
	testutil.Until(t, 10*time.Second, "the shedding to call the hook", func() bool { return hookCalls.Load() >= 3 })
	cli.Process.Signal(syscall.SIGINT)
	err := testutil.Recv(t, exited, 10*time.Second, "drain --wait to exit after Ctrl-C")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), "the host stays drained; shedding stopped after closing") {
		t.Fatalf("drain --wait after Ctrl-C = %v, output %q; want exit 1 saying the shedding stopped", err, out.String())
	}
	st := h.status()
	if st.Admin != "drain" || st.Shed == nil || st.Shed.Active || !strings.Contains(st.Shed.Ended, "stopped on request") {
		t.Fatalf("status after Ctrl-C: admin %s, shed %+v; want drain with the shedding stopped", st.Admin, st.Shed)
	}
	calls := hookCalls.Load()
	time.Sleep(500 * time.Millisecond) // absence is watched for a while: 10 calls at 20/s
	if got := hookCalls.Load(); got != calls {
		t.Errorf("the hook was called %d more times after the shedding stopped", got-calls)
	}
}
