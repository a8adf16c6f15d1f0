package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// realHAProxy is an HAProxy process started for one test, with a stats
// socket at each level.
type realHAProxy struct {
	pid      int
	frontend string // host:port clients connect to
	admin    *Runtime
	operator *Runtime
	user     *Runtime
	tcp      *Runtime // admin level, over TCP
	servers  map[string]*echoServer
}

const haproxyConfig = `global
    stats socket {{dir}}/admin.sock mode 600 level admin
    stats socket {{dir}}/oper.sock mode 600 level operator
    stats socket {{dir}}/user.sock mode 600 level user
    stats socket fd@4 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 1m
    timeout server 1m

frontend fe
    bind fd@3
    default_backend ws

backend ws
    balance leastconn
    default-server weight 100 agent-check agent-addr 127.0.0.1 agent-port {{agentPort}} agent-inter 1s check inter 1s
    server ws1 {{ws1}}
    server ws2 {{ws2}}
`

// startHAProxy runs the haproxy binary bin in the foreground until the test ends. Its
// agent answers "up", which leaves weights and admin states to the runtime
// API under test. The frontend and the TCP stats socket are listeners the
// test opens and hands over as fd@3 and fd@4, so no other test can take
// their ports in between.
func startHAProxy(t *testing.T, bin string) *realHAProxy {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	agent := startServer(t, "127.0.0.1:0", &fakeSource{reply: "up\n"}, AgentServerOptions{})
	frontend, frontendFile := inheritableListener(t)
	stats, statsFile := inheritableListener(t)
	h := &realHAProxy{
		frontend: frontend,
		servers:  map[string]*echoServer{"ws1": startEchoServer(t), "ws2": startEchoServer(t)},
	}
	config := strings.NewReplacer(
		"{{dir}}", dir,
		"{{agentPort}}", fmt.Sprint(agent.Addr().(*net.TCPAddr).Port),
		"{{ws1}}", h.servers["ws1"].addr(),
		"{{ws2}}", h.servers["ws2"].addr(),
	).Replace(haproxyConfig)
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	var output bytes.Buffer
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Stdout = &output
	cmd.Stderr = &output
	cmd.ExtraFiles = []*os.File{frontendFile, statsFile} // fd 3 and 4
	err := cmd.Start()
	frontendFile.Close()
	statsFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	h.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(waitLimit):
			_ = cmd.Process.Kill()
			testutil.Recv(t, exited, waitLimit, "haproxy to exit after SIGKILL")
			t.Errorf("haproxy did not stop within %v of SIGTERM", waitLimit)
		}
		if t.Failed() {
			t.Logf("haproxy output:\n%s", output.String())
		}
	})

	runtime := func(endpoint string) *Runtime {
		rt, err := NewRuntime(endpoint, WithRuntimeTimeout(waitLimit))
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	h.admin = runtime("unix://" + filepath.Join(dir, "admin.sock"))
	h.operator = runtime(filepath.Join(dir, "oper.sock"))
	h.user = runtime(filepath.Join(dir, "user.sock"))
	h.tcp = runtime("tcp://" + stats)

	// Ready once every socket answers.
	for _, rt := range []*Runtime{h.admin, h.operator, h.user, h.tcp} {
		testutil.Poll(t, waitLimit, "haproxy's "+rt.Endpoint()+" to answer", func() error {
			_, err := rt.CLILevel(t.Context())
			if err == nil {
				return nil
			}
			select {
			case err := <-exited:
				t.Fatalf("haproxy exited: %v\n%s", err, output.String())
			default:
			}
			return err
		})
	}
	return h
}

// inheritableListener opens a loopback TCP listener for HAProxy to take
// over, and returns its address and a copy of its socket; the test's own
// copy is closed.
func inheritableListener(t *testing.T) (string, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), f
}

// echoServer is a backend server that echoes until the peer closes.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

// connectThrough opens a client connection through HAProxy and waits for
// the echo, so that the stream has its server.
func (h *realHAProxy) connectThrough(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp4", h.frontend, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatalf("no echo through haproxy: %v", err)
	}
	return conn
}

// expectClosed waits for HAProxy to close the client connection.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection from %s still open: %v", conn.LocalAddr(), err)
	}
}

// TestRuntimeAgainstHAProxy runs the client against every HAProxy build:
// the system's and those in HAFEED_HAPROXY_BINS (3.0 and 3.2 under `make
// test`), one subtest named by version each. It is not parallel: starting
// haproxy forks this process, and until the child execs it holds a copy of
// every open socket, so a parallel test that closes a listener and expects
// the next dial to be refused would see it succeed.
func TestRuntimeAgainstHAProxy(t *testing.T) {
	system, err := haproxytest.System()
	if err != nil {
		t.Fatal(err)
	}
	matrix, err := haproxytest.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append([]haproxytest.Build{system}, matrix...) {
		t.Run(b.Name(), func(t *testing.T) { testRuntimeAgainst(t, b) })
	}
	if len(matrix) == 0 {
		t.Run("haproxy-3.x", func(t *testing.T) { t.Skip(haproxytest.MatrixUnset) })
	}
}

func testRuntimeAgainst(t *testing.T, b haproxytest.Build) {
	h := startHAProxy(t, b.Path)
	ctx := t.Context()
	rt := h.admin

	t.Run("info", func(t *testing.T) {
		for _, r := range []*Runtime{h.admin, h.tcp} {
			info, err := r.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.PID != h.pid || !strings.HasPrefix(info.Version, "2.") && !strings.HasPrefix(info.Version, "3.") || info.UptimeSec < 0 {
				t.Errorf("%s: Info() = PID %d, version %q, uptime %d; want PID %d", r.Endpoint(), info.PID, info.Version, info.UptimeSec, h.pid)
			}
		}
		if !h.tcp.IsLoopbackOrUnix() || !h.admin.IsLoopbackOrUnix() {
			t.Error("a loopback or Unix endpoint does not count as local")
		}
	})

	t.Run("cli levels", func(t *testing.T) {
		for rt, want := range map[*Runtime]string{h.admin: "admin", h.operator: "operator", h.user: "user", h.tcp: "admin"} {
			if got, err := rt.CLILevel(ctx); err != nil || got != want {
				t.Errorf("%s: CLILevel() = %q, %v; want %q", rt.Endpoint(), got, err, want)
			}
		}
	})

	t.Run("weight", func(t *testing.T) {
		if err := rt.SetWeight(ctx, "ws", "ws1", 50); err != nil {
			t.Fatal(err)
		}
		if cur, initial, err := rt.Weight(ctx, "ws", "ws1"); err != nil || cur != 50 || initial != 100 {
			t.Errorf("Weight() = %d, %d, %v; want 50, 100", cur, initial, err)
		}
		states, err := rt.ServersState(ctx, "ws")
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 2 || states[0].Name != "ws1" || states[0].UWeight != 50 || states[0].IWeight != 100 || states[1].UWeight != 100 {
			t.Errorf("ServersState() = %+v, want ws1 at 50 of 100 and ws2 at 100", states)
		}
		if got, want := states[0].Addr.String()+":"+fmt.Sprint(states[0].Port), h.servers["ws1"].addr(); got != want {
			t.Errorf("ws1 address %s, want %s", got, want)
		}
		stats, err := rt.Stats(ctx, "ws")
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 || stats[0].Weight != 50 || stats[0].UWeight != 50 || stats[0].Addr != h.servers["ws1"].addr() {
			t.Errorf("Stats(ws) = %+v, want ws1 with weight 50", stats)
		}
		if err := rt.SetWeight(ctx, "ws", "ws1", 100); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("state", func(t *testing.T) {
		for _, tt := range []struct {
			admin       Admin
			drain       bool
			maint       bool
			statusStart string
		}{
			{admin: AdminDrain, drain: true, statusStart: "DRAIN"},
			{admin: AdminMaint, maint: true, statusStart: "MAINT"},
			{admin: AdminReady},
		} {
			if err := rt.SetState(ctx, "ws", "ws2", tt.admin); err != nil {
				t.Fatal(err)
			}
			states, err := rt.ServersState(ctx, "ws")
			if err != nil {
				t.Fatal(err)
			}
			if s := states[1]; s.ForcedDrain() != tt.drain || s.ForcedMaint() != tt.maint {
				t.Errorf("after %v: ws2 admin state %#x", tt.admin, s.AdminState)
			}
			stats, err := rt.Stats(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stats {
				if s.Proxy == "ws" && s.Server == "ws2" && !strings.HasPrefix(s.Status, tt.statusStart) {
					t.Errorf("after %v: ws2 status %q, want %q...", tt.admin, s.Status, tt.statusStart)
				}
			}
		}
	})

	t.Run("maxconn", func(t *testing.T) {
		for _, n := range []int{10, 0} {
			if err := rt.SetMaxconn(ctx, "ws", "ws1", n); err != nil {
				t.Fatal(err)
			}
			stats, err := rt.Stats(ctx, "ws")
			if err != nil {
				t.Fatal(err)
			}
			if stats[0].Slim != n {
				t.Errorf("after SetMaxconn(%d): slim %d", n, stats[0].Slim)
			}
		}
	})

	t.Run("sessions", func(t *testing.T) {
		// Both clients land on ws1 while ws2 is drained.
		if err := rt.SetState(ctx, "ws", "ws2", AdminDrain); err != nil {
			t.Fatal(err)
		}
		first, second := h.connectThrough(t), h.connectThrough(t)
		if err := rt.SetState(ctx, "ws", "ws2", AdminReady); err != nil {
			t.Fatal(err)
		}

		// The CLI streams of the commands before may outlive their
		// connections for a moment (seen on 3.0): ask until only the one
		// asking is left.
		var sessions []Session
		testutil.Poll(t, waitLimit, "show sess with one CLI session, the one that asked", func() error {
			var err error
			if sessions, err = h.operator.Sessions(ctx); err != nil {
				return err
			}
			var cli int
			for _, s := range sessions {
				if s.Frontend == "GLOBAL" {
					cli++
				}
			}
			if cli != 1 {
				return fmt.Errorf("%d CLI sessions", cli)
			}
			return nil
		})
		byClient := map[string]Session{}
		for _, s := range sessions {
			switch {
			case s.Frontend == "GLOBAL":
				if s.Proto != "unix_stream" || s.Backend != "" || s.Server != "" {
					t.Errorf("CLI session %+v", s)
				}
			case s.Frontend == "fe":
				byClient[s.SrcAddr.String()] = s
				if s.Proto != "tcpv4" || s.Backend != "ws" || s.Server != "ws1" || s.Age < 0 {
					t.Errorf("client session %+v, want tcpv4 through ws/ws1", s)
				}
			}
		}
		s1, ok1 := byClient[first.LocalAddr().String()]
		_, ok2 := byClient[second.LocalAddr().String()]
		if !ok1 || !ok2 {
			t.Fatalf("sessions %+v lack the clients %s and %s", sessions, first.LocalAddr(), second.LocalAddr())
		}

		if err := rt.ShutdownSession(ctx, s1.ID); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, first)
		testutil.Poll(t, waitLimit, "shutdown session", func() error {
			err := rt.ShutdownSession(ctx, s1.ID)
			if errors.Is(err, ErrNoSuchSession) {
				return nil
			}
			return fmt.Errorf("second shutdown of %s: %v", s1.ID, err)
		})

		if err := rt.ShutdownServerSessions(ctx, "ws", "ws1"); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, second)
		testutil.Poll(t, waitLimit, "shutdown sessions server", func() error {
			sessions, err := rt.Sessions(ctx)
			if err != nil {
				return err
			}
			for _, s := range sessions {
				if s.Backend == "ws" {
					return fmt.Errorf("session %+v left", s)
				}
			}
			return nil
		})
	})

	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			err     error
			wantIs  error
			wantMsg string
		}{
			{name: "no such server", err: rt.SetState(ctx, "ws", "nope", AdminDrain), wantIs: ErrNoSuchServer, wantMsg: ": set server ws/nope state drain: No such server."},
			{name: "no such backend", err: rt.SetWeight(ctx, "nope", "ws1", 1), wantIs: ErrNoSuchBackend, wantMsg: ": set server nope/ws1 weight 1: No such backend."},
			{name: "weight of no such server", err: func() error { _, _, err := rt.Weight(ctx, "ws", "nope"); return err }(), wantIs: ErrNoSuchServer},
			{name: "servers state of no such backend", err: errOf(rt.ServersState(ctx, "nope")), wantIs: ErrNoSuchBackend},
			{name: "stats of no such backend", err: errOf(rt.Stats(ctx, "nope")), wantIs: ErrNoSuchBackend},
			{name: "maxconn of no such server", err: rt.SetMaxconn(ctx, "ws", "nope", 1), wantIs: ErrNoSuchServer},
			{name: "no such session", err: rt.ShutdownSession(ctx, "0x1"), wantIs: ErrNoSuchSession},
			{name: "operator sets state", err: h.operator.SetState(ctx, "ws", "ws1", AdminDrain), wantIs: ErrPermission, wantMsg: "Permission denied (the stats socket needs 'level admin'"},
			{name: "operator sets weight", err: h.operator.SetWeight(ctx, "ws", "ws1", 1), wantIs: ErrPermission},
			{name: "operator shuts a session", err: h.operator.ShutdownSession(ctx, "0x1"), wantIs: ErrPermission},
			{name: "user lists sessions", err: errOf(h.user.Sessions(ctx)), wantIs: ErrPermission, wantMsg: "needs 'level operator'"},
		} {
			if !errors.Is(tt.err, tt.wantIs) || !strings.Contains(fmt.Sprint(tt.err), tt.wantMsg) {
				t.Errorf("%s: error %v, want %v with %q", tt.name, tt.err, tt.wantIs, tt.wantMsg)
			}
		}
		// The operator socket can still read.
		if _, _, err := h.operator.Weight(ctx, "ws", "ws1"); err != nil {
			t.Errorf("operator Weight(): %v", err)
		}
	})
}

// errOf is the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }
