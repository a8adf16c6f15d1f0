package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait in these tests; nothing should come close.
const waitLimit = 5 * time.Second

// testConfig is the default configuration with every file in a fresh short
// directory (Unix socket paths must stay under 108 bytes) and the agent on
// loopback ports of its own.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	cfg := config.Default()
	cfg.AgentCheck.Listen = "127.0.0.1:0"
	cfg.ControlSocket = filepath.Join(dir, "control.sock")
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.Sources.Ports = []uint16{uint16(testutil.FreePort(t))}
	// No load signal but connections: the weight (100%) is known at once.
	cfg.Sources.CPU, cfg.Sources.Memory = "none", "none"
	cfg.Policy.Blackout = 0
	// Count at every interval: paced by the default budget, one slow count
	// on a loaded machine under -race (40 ms) put the next one 5 s away.
	cfg.Sources.CountBudget = 0
	return cfg
}

// startAgent runs an agent until the test ends and returns it once it is
// ready; at the end it checks that Serve returns nil.
func startAgent(t *testing.T, cfg config.Config) *Agent {
	t.Helper()
	return startAgentWith(t, Options{Config: cfg})
}

// startAgentWith is startAgent with more options than the configuration,
// and prepare's changes to the agent before it starts.
func startAgentWith(t *testing.T, opts Options, prepare ...func(*Agent)) *Agent {
	t.Helper()
	a, stop := runAgentWith(t, opts, prepare...)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve() = %v after cancel, want nil", err)
		}
	})
	return a
}

// runAgent starts an agent, waits until it is ready and returns the
// function that stops it and reports what Serve returned.
func runAgent(t *testing.T, cfg config.Config) (stop func() error) {
	t.Helper()
	_, stop = runAgentWith(t, Options{Config: cfg})
	return stop
}

// runAgentWith is runAgent with more options and prepare's changes to the
// agent, returning the agent too.
func runAgentWith(t *testing.T, opts Options, prepare ...func(*Agent)) (a *Agent, stop func() error) {
	t.Helper()
	ready := make(chan struct{})
	opts.Version, opts.Ready = "test", func() { close(ready) }
	a = New(opts)
	for _, f := range prepare {
		f(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(waitLimit):
			return errors.New("Serve did not return within the wait limit of the cancel")
		}
	}
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Serve() = %v before it was ready", err)
	case <-time.After(waitLimit):
		stop()
		t.Fatal("agent not ready within the wait limit")
	}
	return a, stop
}

// call sends a command that must succeed.
func call(t *testing.T, socket, command string) *control.Status {
	t.Helper()
	resp, err := callErr(socket, command)
	if err != nil {
		t.Fatalf("Call(%q) = %v", command, err)
	}
	if !resp.OK || resp.Status == nil {
		t.Fatalf("Call(%q) = %+v, want OK with a status", command, resp)
	}
	return resp.Status
}

func callErr(socket, command string) (*control.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return control.Call(ctx, socket, control.Request{Command: command})
}

// pollAgentCheck is one agent-check poll, as HAProxy makes it.
func pollAgentCheck(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	data, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("agent-check poll: %v", err)
	}
	return string(data)
}

func loadState(t *testing.T, path string) State {
	t.Helper()
	st, err := StateFile{Path: path}.Load()
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	return st
}

var (
	upReply    = regexp.MustCompile(`^up [0-9]+%$`)
	readyReply = regexp.MustCompile(`^ready up [0-9]+%$`)
	drainReply = regexp.MustCompile(`^drain up [0-9]+%$`)
)

func wantMatch(t *testing.T, what string, re *regexp.Regexp, got string) {
	t.Helper()
	if !re.MatchString(strings.TrimSuffix(got, "\n")) {
		t.Errorf("%s = %q, want a match for %s", what, got, re)
	}
}

func TestAgentStatus(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)

	st := call(t, cfg.ControlSocket, control.CommandStatus)
	if st.Admin != "ready" || st.AnnouncingReady || st.StateError != "" {
		t.Errorf("status = admin %q, announcing %t, state error %q; want ready, false, none", st.Admin, st.AnnouncingReady, st.StateError)
	}
	wantMatch(t, "status reply", upReply, st.Reply)
	if st.ControlSocket != cfg.ControlSocket || st.StateFile != cfg.StateFile {
		t.Errorf("status files = %q, %q; want %q, %q", st.ControlSocket, st.StateFile, cfg.ControlSocket, cfg.StateFile)
	}
	if st.PID != os.Getpid() || st.Version != "test" {
		t.Errorf("status pid, version = %d, %q; want %d, %q", st.PID, st.Version, os.Getpid(), "test")
	}
	if st.Sample == nil {
		t.Error("status has no sample; the agent samples before it is ready")
	}
	if st.Peers == nil || len(st.Peers) != 0 {
		t.Errorf("status peers = %#v, want an empty list before any poll", st.Peers)
	}
	host, port, err := net.SplitHostPort(st.AgentListen)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("status agent_listen = %q, want 127.0.0.1 and the port it got", st.AgentListen)
	}

	wantMatch(t, "agent-check reply", upReply, pollAgentCheck(t, st.AgentListen))
	st = call(t, cfg.ControlSocket, control.CommandStatus)
	if len(st.Peers) != 1 || st.Peers[0].Addr != "127.0.0.1" || st.Peers[0].Polls != 1 {
		t.Errorf("status peers after one poll = %+v, want 127.0.0.1 with 1 poll", st.Peers)
	}
}

func TestAgentDrainIsPersistedBeforeReply(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)

	st := call(t, cfg.ControlSocket, control.CommandDrain)
	if got := loadState(t, cfg.StateFile); got.Admin != haproxy.AdminDrain || got.ReadyPending {
		t.Errorf("state file right after drain = %+v, want drain", got)
	}
	if st.Admin != "drain" {
		t.Errorf("drain reply admin = %q, want drain", st.Admin)
	}
	wantMatch(t, "status reply", drainReply, st.Reply)
	wantMatch(t, "agent-check reply", drainReply, pollAgentCheck(t, st.AgentListen))

	// Draining again changes nothing, not even the time.
	again := call(t, cfg.ControlSocket, control.CommandDrain)
	if again.Admin != "drain" || !again.Since.Equal(st.Since) {
		t.Errorf("second drain = %q since %v, want drain since %v", again.Admin, again.Since, st.Since)
	}
}

func TestAgentReadyAnnouncesThenStops(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)
	call(t, cfg.ControlSocket, control.CommandDrain)

	st := call(t, cfg.ControlSocket, control.CommandReady)
	if st.Admin != "ready" || !st.AnnouncingReady {
		t.Errorf("after ready: admin %q, announcing %t; want ready, true", st.Admin, st.AnnouncingReady)
	}
	wantMatch(t, "status reply", readyReply, st.Reply)
	if got := loadState(t, cfg.StateFile); got.Admin != haproxy.AdminReady || !got.ReadyPending {
		t.Errorf("state file right after ready = %+v, want ready with the announcement pending", got)
	}

	// One HAProxy polls: it hears ready twice, then only the weight.
	wantMatch(t, "first poll", readyReply, pollAgentCheck(t, st.AgentListen))
	wantMatch(t, "second poll", readyReply, pollAgentCheck(t, st.AgentListen))
	wantMatch(t, "third poll", upReply, pollAgentCheck(t, st.AgentListen))

	testutil.Until(t, waitLimit, "the end of the announcement to be saved", func() bool {
		return !loadState(t, cfg.StateFile).ReadyPending
	})
	if got := loadState(t, cfg.StateFile); got.Admin != haproxy.AdminReady {
		t.Errorf("state file after the announcement = %+v, want ready", got)
	}
	st = call(t, cfg.ControlSocket, control.CommandStatus)
	if st.AnnouncingReady {
		t.Error("status still announcing ready after the only peer heard it twice")
	}
	wantMatch(t, "status reply", upReply, st.Reply)
}

func TestAgentMaint(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)

	st := call(t, cfg.ControlSocket, control.CommandMaint)
	if st.Admin != "maint" || st.Reply != "maint" || st.Warning != "" {
		t.Errorf("after maint: admin %q, reply %q, warning %q; want maint, maint, none", st.Admin, st.Reply, st.Warning)
	}
	if got := loadState(t, cfg.StateFile); got.Admin != haproxy.AdminMaint {
		t.Errorf("state file right after maint = %+v, want maint", got)
	}
	if got := pollAgentCheck(t, st.AgentListen); got != "maint\n" {
		t.Errorf("agent-check reply = %q, want %q", got, "maint\n")
	}

	// HAProxy cannot leave maint for drain through the agent: say so.
	st = call(t, cfg.ControlSocket, control.CommandDrain)
	if st.Admin != "drain" || !strings.Contains(st.Warning, "MAINT") {
		t.Errorf("drain after maint: admin %q, warning %q; want drain and a warning about MAINT", st.Admin, st.Warning)
	}
	st = call(t, cfg.ControlSocket, control.CommandReady)
	if st.Admin != "ready" || st.Warning != "" {
		t.Errorf("ready after drain: admin %q, warning %q; want ready, none", st.Admin, st.Warning)
	}
}

func TestAgentUnknownCommand(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)

	for _, command := range []string{"reboot", "", "DRAIN"} {
		resp, err := callErr(cfg.ControlSocket, command)
		if err == nil {
			t.Errorf("Call(%q) = nil error, want one", command)
		}
		if resp == nil || resp.OK || !strings.Contains(resp.Error, "unknown command") || resp.Status != nil {
			t.Errorf("Call(%q) response = %+v, want an unknown command error", command, resp)
		}
		if errors.Is(err, control.ErrAgentUnreachable) {
			t.Errorf("Call(%q) = %v, which claims the agent is unreachable", command, err)
		}
	}
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "ready" {
		t.Errorf("admin after unknown commands = %q, want ready", st.Admin)
	}
	if got := loadState(t, cfg.StateFile); got.Admin != haproxy.AdminReady {
		t.Errorf("state after unknown commands = %+v, want ready", got)
	}
}

func TestAgentMalformedRequest(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)

	tests := []struct {
		name    string
		request string
		want    string
	}{
		{name: "garbage", request: "garbage\n", want: "malformed request"},
		{name: "truncated JSON", request: `{"command":` + "\n", want: "malformed request"},
		{name: "wrong type", request: `{"command":1}` + "\n", want: "malformed request"},
		{name: "nothing", request: "", want: "reading request"},
		{name: "too long", request: `{"command":"` + strings.Repeat("x", 2*control.MaxRequestBytes), want: "larger than"},
	}
	for _, tt := range tests {
		conn, err := net.Dial("unix", cfg.ControlSocket)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(waitLimit))
		// Written in the background: the agent stops reading a request
		// that is too long and answers while we are still writing.
		wrote := make(chan error, 1)
		go func() {
			_, err := io.WriteString(conn, tt.request)
			if err == nil {
				err = conn.(*net.UnixConn).CloseWrite()
			}
			wrote <- err
		}()
		var resp control.Response
		err = json.NewDecoder(conn).Decode(&resp)
		conn.Close()
		select {
		case <-wrote:
		case <-time.After(waitLimit):
			t.Fatalf("%s: writing the request did not end within %v", tt.name, waitLimit)
		}
		if err != nil {
			t.Errorf("%s: reading the reply: %v, want a JSON error reply", tt.name, err)
			continue
		}
		if resp.OK || !strings.Contains(resp.Error, tt.want) || resp.Status != nil {
			t.Errorf("%s: reply = %+v, want an error containing %q", tt.name, resp, tt.want)
		}
	}
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "ready" {
		t.Errorf("admin after malformed requests = %q, want ready", st.Admin)
	}
}

func TestAgentSecondAgentOnSameSocket(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)
	call(t, cfg.ControlSocket, control.CommandDrain)

	second := cfg
	second.StateFile = filepath.Join(filepath.Dir(cfg.StateFile), "second.json")
	readyCalled := false
	a := New(Options{Config: second, Ready: func() { readyCalled = true }})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err := a.Serve(ctx)
	if !errors.Is(err, control.ErrAlreadyRunning) {
		t.Errorf("second Serve() = %v, want an error wrapping control.ErrAlreadyRunning", err)
	}
	if err != nil && !strings.Contains(err.Error(), cfg.ControlSocket) {
		t.Errorf("second Serve() = %v, want it to name the control socket %s", err, cfg.ControlSocket)
	}
	if readyCalled {
		t.Error("second agent reported ready")
	}
	// The first agent still owns the socket.
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "drain" {
		t.Errorf("first agent's admin = %q, want drain", st.Admin)
	}
}

func TestAgentReplacesStaleSocket(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	// What a killed agent leaves: a socket file nobody listens on, and its
	// lock file with no lock held.
	ln, err := net.Listen("unix", cfg.ControlSocket)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := os.WriteFile(cfg.ControlSocket+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := callErr(cfg.ControlSocket, control.CommandStatus); !errors.Is(err, control.ErrAgentUnreachable) {
		t.Fatalf("Call() on the stale socket = %v, want control.ErrAgentUnreachable", err)
	}

	startAgent(t, cfg)
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "ready" {
		t.Errorf("admin = %q, want ready", st.Admin)
	}
}

func TestAgentCorruptStateFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		command   string
		wantAdmin haproxy.Admin
	}{
		{command: control.CommandReady, wantAdmin: haproxy.AdminReady},
		// Drain is what the agent already serves; it must still rewrite
		// the file and clear the error.
		{command: control.CommandDrain, wantAdmin: haproxy.AdminDrain},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			if err := os.WriteFile(cfg.StateFile, []byte(`{"version": 1, "admin": "dra`), 0o640); err != nil {
				t.Fatal(err)
			}
			startAgent(t, cfg)

			st := call(t, cfg.ControlSocket, control.CommandStatus)
			if st.Admin != "drain" || !strings.Contains(st.StateError, ErrCorruptState.Error()) {
				t.Errorf("status with a corrupt state file = admin %q, state error %q; want drain and the error", st.Admin, st.StateError)
			}
			wantMatch(t, "agent-check reply", drainReply, pollAgentCheck(t, st.AgentListen))

			st = call(t, cfg.ControlSocket, tt.command)
			if st.Admin != tt.wantAdmin.String() || st.StateError != "" {
				t.Errorf("after %s: admin %q, state error %q; want %v and none", tt.command, st.Admin, st.StateError, tt.wantAdmin)
			}
			if got := loadState(t, cfg.StateFile); got.Admin != tt.wantAdmin {
				t.Errorf("state file after %s = %+v, want %v", tt.command, got, tt.wantAdmin)
			}
		})
	}
}

func TestAgentUnreadableStateFile(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	// A directory cannot be read as the state file, and is not "corrupt":
	// the agent must refuse to start rather than guess.
	if err := os.Mkdir(cfg.StateFile, 0o750); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err := New(Options{Config: cfg}).Serve(ctx)
	if err == nil || errors.Is(err, ErrCorruptState) {
		t.Errorf("Serve() = %v, want an error that is not ErrCorruptState", err)
	}
}

func TestAgentAgentCheckPortTaken(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg.AgentCheck.Listen = taken.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := New(Options{Config: cfg}).Serve(ctx); err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("Serve() on a taken port = %v, want an error naming %s", err, taken.Addr())
	}

	// The failed agent let go of the control socket.
	cfg.AgentCheck.Listen = "127.0.0.1:0"
	startAgent(t, cfg)
	call(t, cfg.ControlSocket, control.CommandStatus)
}

// TestAgentMetricsPortTaken fails the start at its last listener: Serve
// stops everything it started and lets go of the control socket and the
// agent-check port. Not parallel, so that goleak sees only this agent.
func TestAgentMetricsPortTaken(t *testing.T) {
	cfg := testConfig(t)
	cfg.AgentCheck.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg.Metrics.Listen = taken.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var notified []string
	ready := false
	opts := Options{Config: cfg, Ready: func() { ready = true }, Notify: func(s string) { notified = append(notified, s) }}
	if err := New(opts).Serve(ctx); err == nil || !strings.Contains(err.Error(), "metrics listener on "+taken.Addr().String()) {
		t.Fatalf("Serve() with the metrics port taken = %v, want an error naming it", err)
	}
	// Readiness only once every listener is open (issue 11, item 9).
	if ready || len(notified) > 0 {
		t.Errorf("with the metrics port taken: Ready called %v, systemd told %q; want neither", ready, notified)
	}
	goleak.VerifyNone(t)
	if _, err := os.Stat(cfg.ControlSocket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: stat = %v", err)
	}
	ln, err := net.Listen("tcp", cfg.AgentCheck.Listen)
	if err != nil {
		t.Fatalf("agent-check port still held: %v", err)
	}
	ln.Close()

	// The next attempt gets the control socket and its lock.
	cfg.Metrics.Listen = ""
	startAgent(t, cfg)
	call(t, cfg.ControlSocket, control.CommandStatus)
}

func TestAgentServeReturnsOnCancel(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	stop := runAgent(t, cfg)
	st := call(t, cfg.ControlSocket, control.CommandStatus)

	if err := stop(); err != nil {
		t.Fatalf("Serve() = %v after cancel, want nil", err)
	}
	if _, err := callErr(cfg.ControlSocket, control.CommandStatus); !errors.Is(err, control.ErrAgentUnreachable) {
		t.Errorf("Call() after the agent stopped = %v, want control.ErrAgentUnreachable", err)
	}
	if _, err := os.Stat(cfg.ControlSocket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after the agent stopped: %v, want it removed", err)
	}
	if conn, err := net.DialTimeout("tcp", st.AgentListen, waitLimit); err == nil {
		conn.Close()
		t.Errorf("agent-check port %s still accepts after the agent stopped", st.AgentListen)
	}
}

func TestCallUnreachable(t *testing.T) {
	t.Parallel()
	dir := testutil.ShortTempDir(t)
	missing := filepath.Join(dir, "missing.sock")
	_, err := callErr(missing, control.CommandStatus)
	if !errors.Is(err, control.ErrAgentUnreachable) {
		t.Errorf("Call() on a missing socket = %v, want control.ErrAgentUnreachable", err)
	}
	if err != nil && !strings.Contains(err.Error(), missing) {
		t.Errorf("Call() error %q does not name the socket %s", err, missing)
	}
}

// TestAgentRestartResumesReadyAnnouncement stops the agent while it still
// announces "ready" and checks the next one announces it to the HAProxy
// addresses that had polled, even before they poll again.
func TestAgentRestartResumesReadyAnnouncement(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	stop := runAgent(t, cfg)
	st := call(t, cfg.ControlSocket, control.CommandStatus)
	pollAgentCheck(t, st.AgentListen) // 127.0.0.1 becomes a known peer
	call(t, cfg.ControlSocket, control.CommandDrain)
	call(t, cfg.ControlSocket, control.CommandReady)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	saved := loadState(t, cfg.StateFile)
	if !saved.ReadyPending || len(saved.Peers) != 1 || saved.Peers[0].String() != "127.0.0.1" {
		t.Fatalf("state after stopping mid-announcement = %+v, want ready_pending with peer 127.0.0.1", saved)
	}

	startAgent(t, cfg)
	st = call(t, cfg.ControlSocket, control.CommandStatus)
	if !st.AnnouncingReady {
		t.Fatalf("restarted agent does not announce ready: %+v", st)
	}
	wantMatch(t, "first poll after restart", readyReply, pollAgentCheck(t, st.AgentListen))
	wantMatch(t, "second poll after restart", readyReply, pollAgentCheck(t, st.AgentListen))
	testutil.Until(t, waitLimit, "the end of the announcement on disk", func() bool { return !loadState(t, cfg.StateFile).ReadyPending })
	wantMatch(t, "poll after the announcement", upReply, pollAgentCheck(t, st.AgentListen))
}

// TestAgentReload applies a reload in-process, as SIGHUP does: runtime
// endpoints, shedding and ports change at once, the old endpoints stop,
// and keys that need a restart keep their running values and are listed
// until a reload restores them.
func TestAgentReload(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	dir := filepath.Dir(cfg.ControlSocket)
	cfg.HAProxy = []config.HAProxyConfig{{Runtime: "unix://" + filepath.Join(dir, "a.sock")}}
	var (
		mu   sync.Mutex
		next = cfg
	)
	// A reload is SIGHUP's path: the hangup, then systemd's RELOADING=1
	// and READY=1 once the configuration is applied.
	hangups := make(chan os.Signal, 1)
	notes := make(chan string, 8)
	a := startAgentWith(t, Options{Config: cfg, Hangups: hangups, Notify: func(s string) {
		if strings.HasPrefix(s, "READY=1") {
			notes <- s
		}
	}, Reload: func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, nil
	}})
	testutil.Recv(t, notes, waitLimit, "READY=1 at start")
	reload := func(f func(*config.Config)) *control.Status {
		t.Helper()
		mu.Lock()
		f(&next)
		mu.Unlock()
		hangups <- syscall.SIGHUP
		testutil.Recv(t, notes, waitLimit, "READY=1 after the reload")
		return call(t, cfg.ControlSocket, control.CommandStatus)
	}
	st := call(t, cfg.ControlSocket, control.CommandStatus)
	if len(st.HAProxy) != 1 || !strings.HasSuffix(st.HAProxy[0].Runtime, "/a.sock") || closerVia(a) != "runtime" {
		t.Fatalf("before the reload: endpoints %+v, shed via %q; want a.sock and runtime", st.HAProxy, closerVia(a))
	}
	old := a.rt.set().Endpoints()[0]

	port := uint16(testutil.FreePort(t))
	st = reload(func(c *config.Config) {
		c.HAProxy = []config.HAProxyConfig{{Runtime: "unix://" + filepath.Join(dir, "b.sock"), Backend: "ws", Server: "ws1"}}
		c.Shed = config.ShedConfig{Via: "hook", HookURL: "http://127.0.0.1:1/hafeed/shed"}
		c.Sources.Ports = []uint16{port}
		c.ControlSocket = filepath.Join(dir, "other.sock")
		c.StateFile = filepath.Join(dir, "other.json")
		c.AgentCheck.Listen = "127.0.0.1:0"
		c.Policy.ReferenceCapacity = 500
	})
	if len(st.HAProxy) != 1 || !strings.HasSuffix(st.HAProxy[0].Runtime, "/b.sock") || !slices.Equal(st.HAProxy[0].Servers, []string{"ws/ws1"}) {
		t.Errorf("after the reload: endpoints %+v, want only b.sock with ws/ws1", st.HAProxy)
	}
	if closerVia(a) != "hook" {
		t.Errorf("after the reload shed via %q, want hook", closerVia(a))
	}
	if got := a.targetPorts(); !slices.Equal(got, []uint16{port}) {
		t.Errorf("after the reload the endpoints look for ports %v, want [%d]", got, port)
	}
	if slices.Contains(a.rt.set().Endpoints(), old) {
		t.Error("the old endpoint is still in use")
	}
	if a.conf().Policy.ReferenceCapacity != 500 {
		t.Errorf("policy.reference_capacity = %d after the reload, want 500", a.conf().Policy.ReferenceCapacity)
	}
	// Status shows the values in effect and what waits for a restart.
	if st.ControlSocket != cfg.ControlSocket || st.StateFile != cfg.StateFile {
		t.Errorf("status shows control %s, state %s; want the running %s, %s", st.ControlSocket, st.StateFile, cfg.ControlSocket, cfg.StateFile)
	}
	if want := []string{"control_socket", "state_file"}; !slices.Equal(st.RestartNeeded, want) {
		t.Errorf("restart needed = %v, want %v (agent_check.listen did not change)", st.RestartNeeded, want)
	}

	st = reload(func(c *config.Config) { c.ControlSocket, c.StateFile = cfg.ControlSocket, cfg.StateFile })
	if len(st.RestartNeeded) != 0 {
		t.Errorf("restart needed = %v after the values were restored, want none", st.RestartNeeded)
	}
	st = reload(func(c *config.Config) { c.HAProxy, c.Shed = nil, config.ShedConfig{Via: "runtime"} })
	if len(st.HAProxy) != 0 || a.closer() != nil {
		t.Errorf("after removing every endpoint: endpoints %+v, closer %v; want none", st.HAProxy, a.closer())
	}

	// The rebalancer's status is there while it runs, and only then.
	reload(func(c *config.Config) { c.Rebalance.Enabled = true })
	testutil.Until(t, waitLimit, "a rebalance step in status", func() bool {
		return call(t, cfg.ControlSocket, control.CommandStatus).Rebalance != nil
	})
	reload(func(c *config.Config) { c.Rebalance.Enabled = false })
	testutil.Until(t, waitLimit, "no rebalance step in status once it is off", func() bool {
		return call(t, cfg.ControlSocket, control.CommandStatus).Rebalance == nil
	})
}

// closerVia names the way the agent sheds in effect, "" if there is none.
func closerVia(a *Agent) string {
	if c := a.closer(); c != nil {
		return c.Via()
	}
	return ""
}

// TestAgentKeepsBaselineAcrossRestart checks that the baseline measured
// while the host was empty is in the state file, and that an agent
// restarted on a busy host starts from it instead of assuming one.
func TestAgentKeepsBaselineAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	util := filepath.Join(filepath.Dir(cfg.StateFile), "util")
	if err := os.WriteFile(util, []byte("0.3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Sources.App.File = util
	cfg.Policy.Targets.App = 1
	cfg.Interval = 20 * time.Millisecond
	stop := runAgent(t, cfg)
	testutil.Poll(t, 15*time.Second, "the measured baseline in the state file", func() error {
		st, err := StateFile{Path: cfg.StateFile}.Load()
		if err != nil || st.Baseline == nil || math.Abs(st.Baseline.Baseline-0.3) > 1e-9 {
			return fmt.Errorf("state %+v, %v", st.Baseline, err)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Back on a busy host: 12 connections, and more load.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range 12 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	cfg.Sources.Ports = []uint16{uint16(ln.Addr().(*net.TCPAddr).Port)}
	if err := os.WriteFile(util, []byte("0.6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg)
	testutil.Poll(t, 5*time.Second, "a sample with 12 connections", func() error {
		s := a.Status().Sample
		if s == nil || s.Connections != 12 || s.Utilisation != 0.6 {
			return fmt.Errorf("sample %+v", s)
		}
		if !s.Model.Measured || math.Abs(s.Model.Baseline-0.3) > 1e-9 {
			t.Fatalf("after the restart the model is %+v, want the baseline 0.3 measured before it", s.Model)
		}
		return nil
	})
}

// TestAgentStartCancelledWhileReadingState checks that a stop during
// start-up ends Serve even while the state file's read hangs, as on a hung
// NFS mount: `hafeed run` ignored SIGTERM for 10 minutes (issue 17, item
// 12).
func TestAgentStartCancelledWhileReadingState(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	reading, hang := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(hang) })
	a := New(Options{Config: cfg})
	a.stateHooks = &fileHooks{reading: func() {
		close(reading)
		<-hang
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	testutil.Recv(t, reading, waitLimit, "the agent to start reading its state file")
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), cfg.StateFile) {
			t.Errorf("Serve() stopped while reading the state file = %v, want an error naming %s", err, cfg.StateFile)
		}
	case <-time.After(2 * time.Second):
		close(hang)
		hang = make(chan struct{})
		testutil.Recv(t, done, waitLimit, "Serve to end once the read returns")
		t.Fatal("Serve() still starting 2s after its context was cancelled")
	}
}

// TestAgentRefusesFIFOStateFile checks that `hafeed run` with a FIFO at
// the state file's path refuses to start at once, saying why (issue 17,
// item 12: it hung until a writer came).
func TestAgentRefusesFIFOStateFile(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	if err := syscall.Mkfifo(cfg.StateFile, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := New(Options{Config: cfg}).Serve(ctx)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Serve() with a FIFO state file = %v, want an error saying it is not a regular file", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Serve() took %v to refuse a FIFO state file", took)
	}
}

// TestAgentRefusesUnwritableStateDirectory checks that a state directory
// the agent cannot write to stops `hafeed run` at start-up, saying what to
// do, instead of failing the first drain mid-deploy (issue 17: "mkdir
// /var/lib/hafeed: permission denied" at the first drain).
func TestAgentRefusesUnwritableStateDirectory(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	// A directory in which nobody, root included, can create a file.
	cfg.StateFile = "/proc/self/hafeed-state.json"
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- New(Options{Config: cfg, Ready: func() { close(ready) }}).Serve(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "state directory /proc/self") || !strings.Contains(err.Error(), "--state-file") {
			t.Errorf("Serve() with an unwritable state directory = %v, want an error naming it and the fix", err)
		}
	case <-ready:
		cancel()
		testutil.Recv(t, done, waitLimit, "Serve to return after cancel")
		t.Error("the agent started with a state directory it cannot write to")
	case <-time.After(waitLimit):
		t.Fatal("Serve() neither started nor failed")
	}
}

// TestAgentSecondAgentOnSameStateFile checks that a second agent with its
// own control socket but the first one's state file refuses to start
// (issue 17, item 8: the two shared the file, and a drain was lost on
// restart).
func TestAgentSecondAgentOnSameStateFile(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)
	call(t, cfg.ControlSocket, control.CommandDrain)

	second := cfg
	second.ControlSocket = filepath.Join(filepath.Dir(cfg.ControlSocket), "second.sock")
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- New(Options{Config: second, Ready: func() { close(ready) }}).Serve(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), cfg.StateFile) || !strings.Contains(err.Error(), "another hafeed agent") {
			t.Errorf("second Serve() = %v, want an error saying another agent uses %s", err, cfg.StateFile)
		}
	case <-ready:
		call(t, second.ControlSocket, control.CommandReady)
		cancel()
		testutil.Recv(t, done, waitLimit, "the second agent to stop")
		t.Errorf("a second agent started on the first one's state file, and its ready left the file at %s while the first serves drain",
			loadState(t, cfg.StateFile).Admin)
	case <-time.After(waitLimit):
		t.Fatal("second Serve() neither started nor failed")
	}
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "drain" || loadState(t, cfg.StateFile).Admin != haproxy.AdminDrain {
		t.Errorf("first agent's admin = %q, state file %s; want drain on both", st.Admin, loadState(t, cfg.StateFile).Admin)
	}
}

// TestAgentCountsNeitherOfItsOwnPorts checks that with sources.ports
// empty the agent counts neither its agent-check port nor its metrics
// port: a Prometheus scraping more often than the idle timeout kept a
// connection to the metrics port open, and `drain --wait` from ever
// reaching zero (issue 17, item 7).
func TestAgentCountsNeitherOfItsOwnPorts(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Sources.Ports = nil
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	cfg.Metrics.Listen = metricsAddr
	startAgent(t, cfg)
	// A scraper's keep-alive connection, and a listener that does count.
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	st := call(t, cfg.ControlSocket, control.CommandStatus)
	scraper, err := net.DialTimeout("tcp", metricsAddr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer scraper.Close()

	_, agentPort, _ := net.SplitHostPort(st.AgentListen)
	_, metricsPort, _ := net.SplitHostPort(metricsAddr)
	appPort := strconv.Itoa(app.Addr().(*net.TCPAddr).Port)
	testutil.Poll(t, waitLimit, "a sample that counts the application's port", func() error {
		s := call(t, cfg.ControlSocket, control.CommandStatus).Sample
		var counted []string
		for _, p := range s.Ports {
			counted = append(counted, strconv.Itoa(int(p)))
		}
		if !slices.Contains(counted, appPort) {
			return fmt.Errorf("ports %v do not include the application's %s yet", counted, appPort)
		}
		if slices.Contains(counted, agentPort) || slices.Contains(counted, metricsPort) {
			t.Fatalf("counted ports %v include the agent's own agent-check port %s or metrics port %s", counted, agentPort, metricsPort)
		}
		return nil
	})
}

// TestAgentEnteredServiceByItsOwnClock checks that the rebalancer holds a
// host as just entering service only after a `hafeed ready` this agent
// applied, timed on the monotonic clock: a state file stamped ahead of the
// wall clock (written before a backward step, then a restart) made it
// "entered since the agent started" for as long as the step (issue 17,
// "Clock").
func TestAgentEnteredServiceByItsOwnClock(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Policy.Smoothing = time.Minute // a settle time far longer than the test
	ahead := time.Now().Add(time.Hour)
	if err := (StateFile{Path: cfg.StateFile}).Save(State{Admin: haproxy.AdminReady, Since: ahead}); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg)
	if got := a.enteredService(time.Now()); !got.IsZero() {
		t.Errorf("entered service at %v, from a state file stamped an hour ahead; want not since this start", got)
	}
	call(t, cfg.ControlSocket, control.CommandDrain)
	call(t, cfg.ControlSocket, control.CommandReady)
	if got := a.enteredService(time.Now()); got.IsZero() {
		t.Error("not entering service right after `hafeed ready`")
	}
	if got := a.enteredService(time.Now().Add(2 * cfg.Policy.SettleTime())); !got.IsZero() {
		t.Errorf("still entering service (since %v) two settle times after `hafeed ready`", got)
	}
}
