package agent

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/testutil"
)

// heldConns is a listener holding n established connections until the
// test ends; it returns the listener's port.
func heldConns(t *testing.T, n int) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
	}
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// TestShedJobFollowsReloadedPorts drains with shedding through a hook that
// closes nothing, then reloads sources.ports to a port with no
// connections: the job counts the new ports and ends done, as the CLI's
// wait does (issue 17, item 4: the CLI reported "drained: 0 connections
// left" while the job kept counting, and shedding, the old ports).
func TestShedJobFollowsReloadedPorts(t *testing.T) {
	t.Parallel()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"closed": 0}`))
	}))
	t.Cleanup(hook.Close)
	cfg := testConfig(t)
	cfg.Sources.Ports = []uint16{heldConns(t, 3)}
	cfg.Shed = config.ShedConfig{Via: config.ShedViaHook, HookURL: hook.URL}
	var (
		mu   sync.Mutex
		next = cfg
	)
	hangups := make(chan os.Signal, 1)
	notes := make(chan string, 8)
	startAgentWith(t, Options{Config: cfg, Hangups: hangups, Notify: func(s string) {
		if strings.HasPrefix(s, "READY=1") {
			notes <- s
		}
	}, Reload: func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, nil
	}})
	testutil.Recv(t, notes, waitLimit, "READY=1 at start")

	resp, err := callReq(t, cfg.ControlSocket, control.Request{Command: control.CommandDrain, ShedRate: 20, Timeout: time.Minute})
	if err != nil || resp.Status.Shed == nil {
		t.Fatalf("drain with shedding = %+v, %v; want a job", resp, err)
	}
	testutil.Until(t, waitLimit, "the job asking the hook", func() bool {
		st := call(t, cfg.ControlSocket, control.CommandStatus)
		return st.Shed != nil && st.Shed.Active && st.Sample != nil && st.Sample.Connections == 3
	})

	mu.Lock()
	next.Sources.Ports = []uint16{heldConns(t, 0)}
	mu.Unlock()
	hangups <- syscall.SIGHUP
	testutil.Recv(t, notes, waitLimit, "READY=1 after the reload")
	testutil.Until(t, waitLimit, "the job ending on the reloaded ports' count", func() bool {
		st := call(t, cfg.ControlSocket, control.CommandStatus)
		return st.Shed != nil && !st.Shed.Active
	})
	if st := call(t, cfg.ControlSocket, control.CommandStatus); !strings.HasPrefix(st.Shed.Ended, "done: 0 connections left") {
		t.Errorf("the job ended %q, want done with 0 left on the reloaded ports", st.Shed.Ended)
	}
}
