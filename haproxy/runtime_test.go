package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hafeed/hafeed/internal/testutil"
)

// fixture is a raw reply HAProxy 2.6.12 sent to
// "set severity-output number; <command>\n", from testdata/runtime_<name>.txt.
func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "runtime_"+name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fixtureOutput is a fixture's command output, as Execute hands it to parsers.
func fixtureOutput(t testing.TB, name string) string {
	t.Helper()
	out, _, err := splitReply(fixture(t, name))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return out
}

// fakeHAProxy is a runtime API on a Unix socket that answers each command
// from a table of raw replies, the way HAProxy's stats socket does: one
// line in, the reply, then the connection is closed.
type fakeHAProxy struct {
	t       *testing.T
	path    string
	ln      net.Listener
	replies map[string]string
	unknown string // the reply to a command missing from replies
	// silent makes the fake read the command and never answer.
	silent atomic.Bool

	received chan string // each command, as it arrives
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	commands []string
}

// startFakeHAProxy serves replies until the test ends. A command missing
// from replies gets HAProxy's "Unknown command" reply.
func startFakeHAProxy(t *testing.T, replies map[string]string) (*fakeHAProxy, *Runtime) {
	t.Helper()
	f := &fakeHAProxy{
		t:        t,
		path:     filepath.Join(testutil.ShortTempDir(t), "admin.sock"),
		replies:  replies,
		unknown:  fixture(t, "err_unknown_command"),
		received: make(chan string, 64),
		stop:     make(chan struct{}),
	}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		close(f.stop)
		f.wg.Wait()
	})
	rt, err := NewRuntime("unix://"+f.path, WithRuntimeTimeout(waitLimit))
	if err != nil {
		t.Fatal(err)
	}
	return f, rt
}

func (f *fakeHAProxy) serve() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer conn.Close()
			f.answer(conn)
		}()
	}
}

func (f *fakeHAProxy) answer(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		f.t.Errorf("fake haproxy: reading the command: %v (got %q)", err, line)
		return
	}
	command, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "set severity-output number; ")
	if !ok {
		f.t.Errorf("fake haproxy: command line %q lacks the severity-output prefix", line)
		return
	}
	f.mu.Lock()
	f.commands = append(f.commands, command)
	f.mu.Unlock()
	select {
	case f.received <- command:
	default:
	}
	if f.silent.Load() {
		<-f.stop
		return
	}
	reply, ok := f.replies[command]
	if !ok {
		reply = f.unknown
	}
	_, _ = conn.Write([]byte(reply))
}

// sent lists the commands received so far, prefix removed.
func (f *fakeHAProxy) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

func TestNewRuntime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint     string
		wantEndpoint string
		wantLocal    bool
		wantErr      string
	}{
		{endpoint: "unix:///run/haproxy/admin.sock", wantEndpoint: "unix:///run/haproxy/admin.sock", wantLocal: true},
		{endpoint: "/run/haproxy/admin.sock", wantEndpoint: "unix:///run/haproxy/admin.sock", wantLocal: true},
		{endpoint: "./.dev/admin.sock", wantEndpoint: "unix://./.dev/admin.sock", wantLocal: true},
		{endpoint: "tcp://127.0.0.1:9999", wantEndpoint: "tcp://127.0.0.1:9999", wantLocal: true},
		{endpoint: "tcp://127.9.9.9:9999", wantEndpoint: "tcp://127.9.9.9:9999", wantLocal: true},
		{endpoint: "tcp://[::1]:9999", wantEndpoint: "tcp://[::1]:9999", wantLocal: true},
		{endpoint: "tcp://localhost:9999", wantEndpoint: "tcp://localhost:9999", wantLocal: true},
		{endpoint: "tcp://10.0.0.5:9999", wantEndpoint: "tcp://10.0.0.5:9999", wantLocal: false},
		{endpoint: "tcp://[2001:db8::1]:9999", wantEndpoint: "tcp://[2001:db8::1]:9999", wantLocal: false},
		{endpoint: "tcp://lb1.example.com:9999", wantEndpoint: "tcp://lb1.example.com:9999", wantLocal: false},
		{endpoint: "", wantErr: `haproxy runtime endpoint "": empty; want "unix:///path/to/admin.sock"`},
		{endpoint: "unix://", wantErr: "no socket path"},
		{endpoint: "admin.sock", wantErr: `want "unix:///path/to/admin.sock", "/path/to/admin.sock" or "tcp://127.0.0.1:9999"`},
		{endpoint: "http://127.0.0.1:9999", wantErr: "want \"unix:///path"},
		{endpoint: "tcp://127.0.0.1", wantErr: "want tcp://host:port"},
		{endpoint: "tcp://:9999", wantErr: "no host; write tcp://127.0.0.1:9999"},
		{endpoint: "tcp://127.0.0.1:0", wantErr: "port must be a number from 1 to 65535"},
		{endpoint: "tcp://127.0.0.1:70000", wantErr: "port must be a number from 1 to 65535"},
		{endpoint: "tcp://127.0.0.1:http", wantErr: "port must be a number from 1 to 65535"},
		{endpoint: "ipv4@127.0.0.1:9999", wantErr: `"ipv4@" form is for haproxy.cfg; write tcp://host:port here`},
		{endpoint: "/run/haproxy/admin.sock\n", wantErr: "control characters"},
		{endpoint: "/" + strings.Repeat("x", 107), wantErr: "socket path is 108 bytes, Unix sockets allow at most 107"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			t.Parallel()
			rt, err := NewRuntime(tt.endpoint)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewRuntime(%q) error = %v, want one containing %q", tt.endpoint, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRuntime(%q): %v", tt.endpoint, err)
			}
			if got := rt.Endpoint(); got != tt.wantEndpoint {
				t.Errorf("Endpoint() = %q, want %q", got, tt.wantEndpoint)
			}
			if got := rt.IsLoopbackOrUnix(); got != tt.wantLocal {
				t.Errorf("IsLoopbackOrUnix() = %v, want %v", got, tt.wantLocal)
			}
			again, err := NewRuntime(rt.Endpoint())
			if err != nil || again.Endpoint() != rt.Endpoint() {
				t.Errorf("NewRuntime(%q) = %v, %v; want the same endpoint", rt.Endpoint(), again, err)
			}
		})
	}
}

func TestRuntimeExecute(t *testing.T) {
	t.Parallel()
	fake, rt := startFakeHAProxy(t, map[string]string{
		"show cli level":                  fixture(t, "show_cli_level"),
		"get weight ws/ws2":               fixture(t, "get_weight"),
		"set server other/o1 state maint": fixture(t, "ok_set_state"),
		`set var proc.x str(a\;b)`:        "\n\n",
	})
	ctx := t.Context()
	tests := []struct {
		command string
		want    string
	}{
		// The "[6]: " HAProxy puts before informational replies goes.
		{command: "show cli level", want: "admin\n"},
		{command: "get weight ws/ws2", want: "50 (initial 100)\n"},
		{command: "set server other/o1 state maint", want: ""},
		{command: `set var proc.x str(a\;b)`, want: ""},
	}
	for _, tt := range tests {
		got, err := rt.Execute(ctx, tt.command)
		if err != nil {
			t.Errorf("Execute(%q): %v", tt.command, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Execute(%q) = %q, want %q", tt.command, got, tt.want)
		}
	}
	want := []string{"show cli level", "get weight ws/ws2", "set server other/o1 state maint", `set var proc.x str(a\;b)`}
	if diff := cmp.Diff(want, fake.sent()); diff != "" {
		t.Errorf("commands the fake received (-want +got):\n%s", diff)
	}
}

func TestRuntimeExecuteRefusesMoreThanOneCommand(t *testing.T) {
	t.Parallel()
	fake, rt := startFakeHAProxy(t, nil)
	for _, command := range []string{
		"",
		"   ",
		"show info; show stat",
		"show info;",
		"show info\nshow stat",
		"show info\r",
		"show info\x00",
		`show info \\; show stat`,
	} {
		if _, err := rt.Execute(t.Context(), command); err == nil || !strings.Contains(err.Error(), "haproxy "+rt.Endpoint()+": ") {
			t.Errorf("Execute(%q) error = %v, want one that names the endpoint", command, err)
		}
	}
	if got := fake.sent(); len(got) != 0 {
		t.Errorf("the fake received %q, want nothing", got)
	}
}

// TestRuntimeMethods checks the command each method sends and what it
// makes of HAProxy's real reply.
func TestRuntimeMethods(t *testing.T) {
	t.Parallel()
	ok := fixture(t, "ok_set_state")
	fake, rt := startFakeHAProxy(t, map[string]string{
		"show info":                       fixture(t, "show_info"),
		"show cli level":                  fixture(t, "show_cli_level_operator"),
		"show stat":                       fixture(t, "show_stat"),
		"show stat ws 4 -1":               fixture(t, "show_stat_ws"),
		"show servers state":              fixture(t, "show_servers_state"),
		"show servers state ws":           fixture(t, "show_servers_state_ws"),
		"show sess":                       fixture(t, "show_sess"),
		"get weight ws/ws2":               fixture(t, "get_weight"),
		"set server ws/ws1 weight 0":      ok,
		"set server ws/ws1 weight 256":    ok,
		"set server ws/ws1 state ready":   ok,
		"set server ws/ws1 state drain":   ok,
		"set server ws/ws1 state maint":   ok,
		"set maxconn server ws/ws1 0":     ok,
		"set maxconn server ws/ws1 300":   ok,
		"shutdown session 0x561777cc72d0": ok,
		"shutdown sessions server ws/ws1": ok,
	})
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}

	info, err := rt.Info(ctx)
	check("Info", err)
	if info.PID != 6190 || info.Version != "2.6.12-1+deb12u4" {
		t.Errorf("Info() = PID %d, version %q; want 6190, 2.6.12-1+deb12u4", info.PID, info.Version)
	}
	level, err := rt.CLILevel(ctx)
	check("CLILevel", err)
	if level != "operator" {
		t.Errorf("CLILevel() = %q, want operator", level)
	}
	all, err := rt.Stats(ctx, "")
	check("Stats all", err)
	ws, err := rt.Stats(ctx, "ws")
	check("Stats ws", err)
	if len(all) != 8 || len(ws) != 2 {
		t.Errorf("Stats: %d rows for all, %d for ws; want 8 and 2", len(all), len(ws))
	}
	states, err := rt.ServersState(ctx, "")
	check("ServersState all", err)
	wsStates, err := rt.ServersState(ctx, "ws")
	check("ServersState ws", err)
	if len(states) != 5 || len(wsStates) != 2 {
		t.Errorf("ServersState: %d rows for all, %d for ws; want 5 and 2", len(states), len(wsStates))
	}
	sessions, err := rt.Sessions(ctx)
	check("Sessions", err)
	if len(sessions) != 4 {
		t.Errorf("Sessions: %d, want 4", len(sessions))
	}
	cur, initial, err := rt.Weight(ctx, "ws", "ws2")
	check("Weight", err)
	if cur != 50 || initial != 100 {
		t.Errorf("Weight() = %d, %d; want 50, 100", cur, initial)
	}
	check("SetWeight 0", rt.SetWeight(ctx, "ws", "ws1", 0))
	check("SetWeight 256", rt.SetWeight(ctx, "ws", "ws1", 256))
	for _, a := range []Admin{AdminReady, AdminDrain, AdminMaint} {
		check("SetState "+a.String(), rt.SetState(ctx, "ws", "ws1", a))
	}
	check("SetMaxconn 0", rt.SetMaxconn(ctx, "ws", "ws1", 0))
	check("SetMaxconn 300", rt.SetMaxconn(ctx, "ws", "ws1", 300))
	check("ShutdownSession", rt.ShutdownSession(ctx, "0x561777cc72d0"))
	check("ShutdownServerSessions", rt.ShutdownServerSessions(ctx, "ws", "ws1"))

	want := []string{
		"show info", "show cli level", "show stat", "show stat ws 4 -1",
		"show servers state", "show servers state ws", "show sess", "get weight ws/ws2",
		"set server ws/ws1 weight 0", "set server ws/ws1 weight 256",
		"set server ws/ws1 state ready", "set server ws/ws1 state drain", "set server ws/ws1 state maint",
		"set maxconn server ws/ws1 0", "set maxconn server ws/ws1 300",
		"shutdown session 0x561777cc72d0", "shutdown sessions server ws/ws1",
	}
	if diff := cmp.Diff(want, fake.sent()); diff != "" {
		t.Errorf("commands sent (-want +got):\n%s", diff)
	}
}

// TestRuntimeErrors turns HAProxy's real error replies into errors that
// name the endpoint and command, say what to fix, and match sentinels.
func TestRuntimeErrors(t *testing.T) {
	t.Parallel()
	_, rt := startFakeHAProxy(t, map[string]string{
		"set server ws/nope state drain":  fixture(t, "err_no_such_server"),
		"set server nope/ws1 state drain": fixture(t, "err_no_such_backend"),
		"set server ws/ws1 state drain":   fixture(t, "err_permission"),
		"show sess":                       fixture(t, "err_permission_user_show_sess"),
		"shutdown session 0x1":            fixture(t, "err_no_such_session"),
		"show servers state nope":         fixture(t, "err_cant_find_backend"),
		"show stat nope 4 -1":             fixture(t, "err_no_such_proxy"),
		"set server ws/ws1 weight 7":      fixture(t, "err_weight_garbage"),
		"get weight ws/ws1":               fixture(t, "err_usage"),
		"set server ws/ws2 state ready":   "\nsomething unexpected\n\n",
		"show info":                       "no leading empty line\n\n",
		"show cli level":                  "\n[6]: superuser\n\n",
		"get weight ws/ws2":               "\nfifty\n\n",
		"shutdown sessions server ws/ws2": "\n[0]: out of memory\n\n",
	})
	ctx := t.Context()
	ep := rt.Endpoint()
	tests := []struct {
		name    string
		call    func() error
		wantIs  error
		wantErr string
	}{
		{
			name:    "no such server",
			call:    func() error { return rt.SetState(ctx, "ws", "nope", AdminDrain) },
			wantIs:  ErrNoSuchServer,
			wantErr: "haproxy " + ep + ": set server ws/nope state drain: No such server.",
		},
		{
			name:    "no such backend",
			call:    func() error { return rt.SetState(ctx, "nope", "ws1", AdminDrain) },
			wantIs:  ErrNoSuchBackend,
			wantErr: "haproxy " + ep + ": set server nope/ws1 state drain: No such backend.",
		},
		{
			name:    "permission needs admin",
			call:    func() error { return rt.SetState(ctx, "ws", "ws1", AdminDrain) },
			wantIs:  ErrPermission,
			wantErr: "haproxy " + ep + ": set server ws/ws1 state drain: Permission denied (the stats socket needs 'level admin' in haproxy.cfg; 'show cli level' shows the current one)",
		},
		{
			name: "permission needs operator",
			call: func() error {
				_, err := rt.Sessions(ctx)
				return err
			},
			wantIs:  ErrPermission,
			wantErr: "haproxy " + ep + ": show sess: Permission denied (the stats socket needs 'level operator' in haproxy.cfg; 'show cli level' shows the current one)",
		},
		{
			name:    "no such session",
			call:    func() error { return rt.ShutdownSession(ctx, "0x1") },
			wantIs:  ErrNoSuchSession,
			wantErr: "haproxy " + ep + ": shutdown session 0x1: No such session (use 'show sess').",
		},
		{
			name: "servers state of unknown backend",
			call: func() error {
				_, err := rt.ServersState(ctx, "nope")
				return err
			},
			wantIs:  ErrNoSuchBackend,
			wantErr: "haproxy " + ep + ": show servers state nope: Can't find backend.",
		},
		{
			name: "stats of unknown backend",
			call: func() error {
				_, err := rt.Stats(ctx, "nope")
				return err
			},
			wantIs:  ErrNoSuchBackend,
			wantErr: "haproxy " + ep + ": show stat nope 4 -1: No such proxy.",
		},
		{
			// 2.6 ends this one without the empty line.
			name:    "error without its empty line",
			call:    func() error { return rt.SetWeight(ctx, "ws", "ws1", 7) },
			wantErr: "haproxy " + ep + ": set server ws/ws1 weight 7: Empty weight string empty or preceded by garbage",
		},
		{
			name: "usage",
			call: func() error {
				_, _, err := rt.Weight(ctx, "ws", "ws1")
				return err
			},
			wantErr: "haproxy " + ep + ": get weight ws/ws1: usage: set server <backend>/<server> addr | agent | agent-addr | agent-port | agent-send | check-addr | check-port | fqdn | health | ssl | state | weight",
		},
		{
			name:    "unknown command",
			call:    func() error { return rt.SetMaxconn(ctx, "ws", "ws1", 1) },
			wantIs:  ErrUnknownCommand,
			wantErr: "haproxy " + ep + ": set maxconn server ws/ws1 1: Unknown command (this HAProxy does not know it; hafeed needs HAProxy 2.6 or later)",
		},
		{
			name:    "untagged text where nothing was expected",
			call:    func() error { return rt.SetState(ctx, "ws", "ws2", AdminReady) },
			wantErr: "haproxy " + ep + ": set server ws/ws2 state ready: something unexpected",
		},
		{
			name:    "emergency",
			call:    func() error { return rt.ShutdownServerSessions(ctx, "ws", "ws2") },
			wantErr: "haproxy " + ep + ": shutdown sessions server ws/ws2: out of memory",
		},
		{
			name: "reply without the severity-output line",
			call: func() error {
				_, err := rt.Info(ctx)
				return err
			},
			wantErr: "haproxy " + ep + ": show info: unexpected reply \"no leading empty line\\n\\n\": 'set severity-output number' was not accepted",
		},
		{
			name: "unknown level",
			call: func() error {
				_, err := rt.CLILevel(ctx)
				return err
			},
			wantErr: "haproxy " + ep + ": show cli level: unexpected reply \"superuser\"",
		},
		{
			name: "weight reply that does not parse",
			call: func() error {
				_, _, err := rt.Weight(ctx, "ws", "ws2")
				return err
			},
			wantErr: "haproxy " + ep + ": get weight ws/ws2: weight reply \"fifty\", want \"<weight> (initial <weight>)\"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); got != tt.wantErr {
				t.Errorf("error:\n got %s\nwant %s", got, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func TestRuntimeErrorFields(t *testing.T) {
	t.Parallel()
	_, rt := startFakeHAProxy(t, map[string]string{
		"set server ws/nope state maint": fixture(t, "err_no_such_server"),
	})
	err := rt.SetState(t.Context(), "ws", "nope", AdminMaint)
	var re *RuntimeError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *RuntimeError", err)
	}
	want := RuntimeError{Endpoint: rt.Endpoint(), Command: "set server ws/nope state maint", Severity: 3, Message: "No such server."}
	if diff := cmp.Diff(want, *re, cmpopts.IgnoreUnexported(RuntimeError{})); diff != "" {
		t.Errorf("RuntimeError (-want +got):\n%s", diff)
	}
}

// TestRuntimeValidatesBeforeSending checks that bad arguments never reach
// HAProxy.
func TestRuntimeValidatesBeforeSending(t *testing.T) {
	t.Parallel()
	fake, rt := startFakeHAProxy(t, nil)
	ctx := t.Context()
	badNames := []string{"", "ws;show", `ws\`, "ws 1", "ws\n", "ws/1", "ws\x01", "wé", "ws<<"}
	type validationCase struct {
		name    string
		call    func() error
		wantIs  error
		wantErr string
	}
	tests := []validationCase{
		{name: "weight 257", call: func() error { return rt.SetWeight(ctx, "ws", "ws1", 257) }, wantErr: "set server ws/ws1 weight 257: weight must be from 0 to 256"},
		{name: "weight -1", call: func() error { return rt.SetWeight(ctx, "ws", "ws1", -1) }, wantErr: "weight must be from 0 to 256"},
		{name: "maxconn -1", call: func() error { return rt.SetMaxconn(ctx, "ws", "ws1", -1) }, wantErr: "set maxconn server ws/ws1 -1: maxconn must be from 0 (no limit) to 2147483647"},
		{name: "maxconn too large", call: func() error { return rt.SetMaxconn(ctx, "ws", "ws1", 1<<31) }, wantErr: "maxconn must be from 0"},
		{name: "admin state", call: func() error { return rt.SetState(ctx, "ws", "ws1", Admin(9)) }, wantErr: "set server ws/ws1 state: unknown admin state admin(9)"},
		{name: "session id", call: func() error { return rt.ShutdownSession(ctx, "0x1;show info") }, wantIs: ErrInvalidName, wantErr: `shutdown session: invalid name: session id "0x1;show info": want 0x and hex digits, as in 'show sess'`},
		{name: "session id without 0x", call: func() error { return rt.ShutdownSession(ctx, "12345") }, wantIs: ErrInvalidName},
		{name: "session id too long", call: func() error { return rt.ShutdownSession(ctx, "0x"+strings.Repeat("f", 17)) }, wantIs: ErrInvalidName},
		{name: "server name message", call: func() error { return rt.SetState(ctx, "ws", "a;b", AdminDrain) }, wantIs: ErrInvalidName,
			wantErr: `haproxy ` + rt.Endpoint() + `: set server state: invalid name: server name "a;b": HAProxy names use only letters, digits, '.', ':', '_' and '-'`},
	}
	for _, name := range badNames {
		tests = append(tests,
			validationCase{name: fmt.Sprintf("backend %q", name), call: func() error { return rt.SetState(ctx, name, "ws1", AdminDrain) }, wantIs: ErrInvalidName},
			validationCase{name: fmt.Sprintf("server %q", name), call: func() error { return rt.SetWeight(ctx, "ws", name, 1) }, wantIs: ErrInvalidName},
		)
		if name != "" { // an empty backend means "all" for these two
			tests = append(tests,
				validationCase{name: fmt.Sprintf("stats %q", name), call: func() error { _, err := rt.Stats(ctx, name); return err }, wantIs: ErrInvalidName},
				validationCase{name: fmt.Sprintf("servers state %q", name), call: func() error { _, err := rt.ServersState(ctx, name); return err }, wantIs: ErrInvalidName},
			)
		}
	}
	for _, tt := range tests {
		err := tt.call()
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "haproxy "+rt.Endpoint()+": ") || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %q, want one naming the endpoint and containing %q", tt.name, err, tt.wantErr)
		}
		if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
			t.Errorf("%s: errors.Is(%v, %v) = false", tt.name, err, tt.wantIs)
		}
	}
	for _, call := range []func() error{
		func() error { _, _, err := rt.Weight(ctx, "ws", "a b"); return err },
		func() error { return rt.ShutdownServerSessions(ctx, "ws;", "ws1") },
	} {
		if err := call(); !errors.Is(err, ErrInvalidName) {
			t.Errorf("error %v, want ErrInvalidName", err)
		}
	}
	if got := fake.sent(); len(got) != 0 {
		t.Errorf("the fake received %q, want nothing", got)
	}
}

// TestRuntimeNoAnswer checks that a silent HAProxy costs no more than the
// context or the timeout allows.
func TestRuntimeNoAnswer(t *testing.T) {
	t.Parallel()

	t.Run("context deadline", func(t *testing.T) {
		t.Parallel()
		fake, rt := startFakeHAProxy(t, nil)
		fake.silent.Store(true)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := rt.Info(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "haproxy "+rt.Endpoint()+": show info: ") {
			t.Errorf("Info() error = %v, want context.DeadlineExceeded naming endpoint and command", err)
		}
	})

	t.Run("default timeout", func(t *testing.T) {
		t.Parallel()
		fake, _ := startFakeHAProxy(t, nil)
		fake.silent.Store(true)
		rt, err := NewRuntime(fake.path, WithRuntimeTimeout(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = rt.Execute(context.Background(), "show info")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Execute() error = %v, want context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed > waitLimit {
			t.Errorf("Execute() took %v", elapsed)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		fake, rt := startFakeHAProxy(t, nil)
		fake.silent.Store(true)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := rt.Sessions(ctx)
			done <- err
		}()
		select {
		case <-fake.received:
		case <-time.After(waitLimit):
			t.Fatal("the command never arrived")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), rt.Endpoint()) {
				t.Errorf("Sessions() error = %v, want context.Canceled naming the endpoint", err)
			}
		case <-time.After(waitLimit):
			t.Fatal("Sessions() did not return after cancel")
		}
	})
}

func TestRuntimeUnreachable(t *testing.T) {
	t.Parallel()

	t.Run("no socket file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(testutil.ShortTempDir(t), "admin.sock")
		rt, err := NewRuntime(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rt.Info(t.Context())
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Info() error = %v, want os.ErrNotExist", err)
		}
		want := "haproxy unix://" + path + ": show info: connecting: dial unix " + path + ": connect: no such file or directory (is HAProxy running with 'stats socket " + path + " level admin' in its global section?)"
		if err != nil && err.Error() != want {
			t.Errorf("error:\n got %s\nwant %s", err, want)
		}
	})

	t.Run("socket file nobody listens on", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(testutil.ShortTempDir(t), "admin.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		rt, err := NewRuntime("unix://" + path)
		if err != nil {
			t.Fatal(err)
		}
		err = rt.SetState(t.Context(), "ws", "ws1", AdminDrain)
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.HasPrefix(err.Error(), "haproxy unix://"+path+": set server ws/ws1 state drain: connecting: ") || !strings.HasSuffix(err.Error(), "is HAProxy running?)") {
			t.Errorf("SetState() error = %v, want ECONNREFUSED naming endpoint and command", err)
		}
	})

	t.Run("tcp port nobody listens on", func(t *testing.T) {
		t.Parallel()
		addr := refusingAddr(t)
		rt, err := NewRuntime("tcp://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rt.Info(t.Context())
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "haproxy tcp://"+addr+": show info: connecting: ") {
			t.Errorf("Info() error = %v, want ECONNREFUSED naming the endpoint", err)
		}
	})

	t.Run("closed without a reply", func(t *testing.T) {
		t.Parallel()
		_, rt := startFakeHAProxy(t, map[string]string{"show info": ""})
		_, err := rt.Info(t.Context())
		want := "haproxy " + rt.Endpoint() + ": show info: empty reply: HAProxy closed the connection without answering"
		if err == nil || err.Error() != want {
			t.Errorf("Info() error = %v, want %s", err, want)
		}
	})
}

func TestSplitReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		raw          string
		wantOut      string
		wantSeverity int
		wantErr      bool
	}{
		{name: "ok_set_state", raw: fixture(t, "ok_set_state"), wantOut: "", wantSeverity: -1},
		{name: "show_cli_level", raw: fixture(t, "show_cli_level"), wantOut: "admin\n", wantSeverity: 6},
		{name: "get_weight", raw: fixture(t, "get_weight"), wantOut: "50 (initial 100)\n", wantSeverity: -1},
		{name: "err_no_such_server", raw: fixture(t, "err_no_such_server"), wantOut: "No such server.\n", wantSeverity: 3},
		{name: "err_weight_garbage", raw: fixture(t, "err_weight_garbage"), wantOut: "Empty weight string empty or preceded by garbage\n", wantSeverity: 3},
		{name: "output ends without empty line", raw: "\nabc\n", wantOut: "abc\n", wantSeverity: -1},
		{name: "output without newline", raw: "\nabc", wantOut: "abc", wantSeverity: -1},
		{name: "severity 0", raw: "\n[0]: x\n\n", wantOut: "x\n"},
		{name: "not a severity", raw: "\n[8]: x\n\n", wantOut: "[8]: x\n", wantSeverity: -1},
		{name: "empty", raw: "", wantErr: true, wantSeverity: -1},
		{name: "no leading empty line", raw: "admin\n\n", wantErr: true, wantSeverity: -1},
	}
	for _, tt := range tests {
		out, severity, err := splitReply(tt.raw)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: splitReply() error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if out != tt.wantOut || severity != tt.wantSeverity {
			t.Errorf("%s: splitReply() = %q, %d; want %q, %d", tt.name, out, severity, tt.wantOut, tt.wantSeverity)
		}
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"ws", "ws1", "be_app-2.prod:v6", "A", "0"} {
		if err := ValidateName("server", name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", ";", `\`, " ", "a b", "a\tb", "a\nb", "a/b", "a#b", "a\x7f", "ü", "a<<"} {
		if err := ValidateName("server", name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestParseHostPort(t *testing.T) {
	t.Parallel()
	tests := map[string]netip.AddrPort{
		"127.0.0.1:51134":      netip.MustParseAddrPort("127.0.0.1:51134"),
		"::1:51450":            netip.MustParseAddrPort("[::1]:51450"),
		"2001:db8::7:443":      netip.MustParseAddrPort("[2001:db8::7]:443"),
		"::ffff:10.0.0.1:8080": netip.MustParseAddrPort("[::ffff:10.0.0.1]:8080"),
		"unix:1":               {},
		"":                     {},
		"127.0.0.1":            {},
		"127.0.0.1:99999":      {},
		"10.0.0.1:080":         {},
		"fe80::1%eth0:80":      {},
	}
	for in, want := range tests {
		if got := parseHostPort(in); got != want {
			t.Errorf("parseHostPort(%q) = %v, want %v", in, got, want)
		}
	}
}

// refusingAddr is a loopback address that refuses connections until the
// test ends: its port is bound, so no other test can take it, but nothing
// listens.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
