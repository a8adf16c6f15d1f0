package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// agentInter is the agent-check interval the tests configure in HAProxy.
const agentInter = 200 * time.Millisecond

// hafeedBin is the agent built from the tree with the race detector;
// cliBin is the same tree without it, for the operator's commands, whose
// start-up time counts in the propagation figures.
var hafeedBin, cliBin string

// systemHAProxy is the haproxy on PATH, which every test runs against;
// matrixHAProxies are the newer lines of HAFEED_HAPROXY_BINS, which the
// core cases run against too (forEachHAProxy).
var (
	systemHAProxy   haproxytest.Build
	matrixHAProxies []haproxytest.Build
)

// envBinDir names the directory of hafeed binaries already built, for a
// run of the tests inside a network namespace (sourceports_test.go).
const envBinDir = "HAFEED_E2E_BIN_DIR"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var err error
	if systemHAProxy, err = haproxytest.System(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if matrixHAProxies, err = haproxytest.Matrix(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// A test that runs itself again in a network namespace hands the
	// binaries it built to the run inside.
	if dir := os.Getenv(envBinDir); dir != "" {
		hafeedBin, cliBin = filepath.Join(dir, "hafeed"), filepath.Join(dir, "hafeed-cli")
		os.Setenv("GORACE", "atexit_sleep_ms=0")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hafeed-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	hafeedBin, cliBin = filepath.Join(dir, "hafeed"), filepath.Join(dir, "hafeed-cli")
	for _, args := range [][]string{{"-race", "-o", hafeedBin}, {"-o", cliBin}} {
		build := exec.Command("go", append(append([]string{"build"}, args...), "../cmd/hafeed")...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building hafeed:", err)
			return 1
		}
	}
	// The race detector sleeps a second before a process exits by default,
	// which would count as propagation time of every CLI command.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	return m.Run()
}

// forEachHAProxy runs test as parallel subtests, one per HAProxy build and
// named by its version: the system's, then those of HAFEED_HAPROXY_BINS.
// Without that variable the newer lines show as one skipped subtest.
func forEachHAProxy(t *testing.T, test func(t *testing.T, hb haproxytest.Build)) {
	t.Helper()
	for _, hb := range append([]haproxytest.Build{systemHAProxy}, matrixHAProxies...) {
		t.Run(hb.Name(), func(t *testing.T) {
			t.Parallel()
			test(t, hb)
		})
	}
	if len(matrixHAProxies) == 0 {
		t.Run("haproxy-3.x", func(t *testing.T) { t.Skip(haproxytest.MatrixUnset) })
	}
}

// --- hafeed ---

type hafeed struct {
	t         *testing.T
	dir       string
	config    string
	agentAddr string
	ctlSock   string
	stateFile string
	appPort   int
	utilFile  string
	vars      map[string]string
	env       []string
	// defaultInterval, portsInConfig: see hafeedOptions.
	defaultInterval bool
	portsInConfig   bool
	cmd             *exec.Cmd
	exited          chan struct{} // closed when the process has exited
	exitErr         error
	log             *os.File
}

type hafeedOptions struct {
	// config is YAML written to the config file (policy etc.), a template
	// that may use {{.UtilFile}} and the keys of vars.
	config string
	vars   map[string]string
	// appPort is the port whose connections count as load.
	appPort int
	// admin, when set, is the state saved before the agent first starts.
	admin string
	// env is added to the agent's environment.
	env []string
	// listen is the agent-check address; 127.0.0.1 and a free port when empty.
	listen string
	// defaultInterval leaves the sampling interval at its default (1s)
	// instead of the tests' 100ms.
	defaultInterval bool
	// portsInConfig leaves --ports out, for a config that sets
	// sources.ports itself (and a reload that changes them).
	portsInConfig bool
}

// startHafeed starts `hafeed run` on a free loopback agent port.
func startHafeed(t *testing.T, opts hafeedOptions) *hafeed {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	h := &hafeed{
		t:         t,
		dir:       dir,
		config:    filepath.Join(dir, "hafeed.yaml"),
		agentAddr: "127.0.0.1:0",
		ctlSock:   filepath.Join(dir, "control.sock"),
		stateFile: filepath.Join(dir, "state", "state.json"),
		appPort:   opts.appPort,
	}
	if opts.listen != "" {
		h.agentAddr = opts.listen
	}
	h.utilFile = filepath.Join(dir, "util")
	h.vars, h.env, h.defaultInterval, h.portsInConfig = opts.vars, opts.env, opts.defaultInterval, opts.portsInConfig
	h.setUtil(0) // an application with no connections yet is idle
	if opts.admin != "" {
		os.MkdirAll(filepath.Dir(h.stateFile), 0o755)
		state := fmt.Sprintf(`{"version": 1, "admin": %q, "since": "2026-01-01T00:00:00Z"}`, opts.admin)
		if err := os.WriteFile(h.stateFile, []byte(state), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(h.config, []byte(h.renderConfig(opts.config)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.agentAddr = h.status().AgentListen // the real port, kept across restarts
	t.Cleanup(h.stop)
	return h
}

// renderConfig fills {{.UtilFile}} in a config template.
func (h *hafeed) renderConfig(cfg string) string {
	var b bytes.Buffer
	data := map[string]string{"UtilFile": h.utilFile}
	for k, v := range h.vars {
		data[k] = v
	}
	if err := template.Must(template.New("hafeed").Option("missingkey=error").Parse(cfg)).Execute(&b, data); err != nil {
		h.t.Fatal(err)
	}
	return b.String()
}

// setUtil writes the utilisation the application reports, atomically.
func (h *hafeed) setUtil(u float64) {
	h.t.Helper()
	tmp := h.utilFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatFloat(u, 'f', -1, 64)+"\n"), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.utilFile); err != nil {
		h.t.Fatal(err)
	}
}

// relaunch starts the agent, as start does, without waiting for it to answer.
func (h *hafeed) relaunch() { h.relaunchWith(hafeedBin) }

// relaunchWith is relaunch with another build of hafeed.
func (h *hafeed) relaunchWith(bin string) {
	h.t.Helper()
	log, err := os.OpenFile(filepath.Join(h.dir, "hafeed.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	h.log = log
	args := []string{"run",
		"--config", h.config,
		"--agent-listen", h.agentAddr,
		"--control-socket", h.ctlSock,
		"--state-file", h.stateFile,
		"--log-format", "json", "--log-level", "debug"}
	if !h.portsInConfig {
		args = append(args, "--ports", strconv.Itoa(h.appPort))
	}
	if !h.defaultInterval {
		args = append(args, "--interval", "100ms")
	}
	h.cmd = exec.Command(bin, args...)
	h.cmd.Stdout, h.cmd.Stderr = log, log
	h.cmd.Env = append(os.Environ(), h.env...)
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	exited := make(chan struct{})
	h.exited = exited
	go func(c *exec.Cmd) {
		h.exitErr = c.Wait()
		close(exited)
	}(h.cmd)
}

// exitState is how the agent ended, or that it still runs; unlike exitErr
// it may be read before the process has exited.
func (h *hafeed) exitState() string {
	select {
	case <-h.exited:
		if h.exitErr == nil {
			return "exited 0"
		}
		return h.exitErr.Error()
	default:
		return "still running"
	}
}

// start launches the agent and waits until its control socket answers.
func (h *hafeed) start() {
	h.t.Helper()
	h.relaunch()
	if err := awaitStarted(h.exited, func() bool { _, err := h.call(control.CommandStatus); return err == nil }); err != nil {
		if errors.Is(err, errExited) {
			h.cmd = nil
			err = fmt.Errorf("%w: %v", err, h.exitErr)
		}
		h.t.Fatalf("hafeed on control socket %s: %v\n%s", h.ctlSock, err, h.logs())
	}
}

var errExited = errors.New("exited during start")

// awaitStarted polls answers until it is true, for 10 s at most or until
// the process exits.
func awaitStarted(exited <-chan struct{}, answers func() bool) error {
	_, err := testutil.Wait(10*time.Second, func() error {
		if answers() {
			return nil
		}
		select {
		case <-exited:
			return testutil.Stop(errExited)
		default:
			return errNoAnswer
		}
	})
	return err
}

var errNoAnswer = errors.New("no answer within 10s")

// stop ends hafeed with SIGTERM and checks it exits cleanly.
func (h *hafeed) stop() {
	if h.cmd == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
		if h.exitErr != nil {
			h.t.Errorf("hafeed exited with %v after SIGTERM\n%s", h.exitErr, h.logs())
		}
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		testutil.Recv(h.t, h.exited, 10*time.Second, "hafeed to exit after SIGKILL")
		h.t.Errorf("hafeed did not stop within 10s of SIGTERM\n%s", h.logs())
	}
	h.cmd = nil
	h.log.Close()
}

// kill9 kills hafeed without giving it a chance to clean up.
func (h *hafeed) kill9() {
	h.t.Helper()
	h.cmd.Process.Kill()
	testutil.Recv(h.t, h.exited, 10*time.Second, "hafeed to exit after SIGKILL")
	h.cmd = nil
	h.log.Close()
}

func (h *hafeed) logs() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "hafeed.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (h *hafeed) call(command string) (*control.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return control.Call(ctx, h.ctlSock, control.Request{Command: command})
}

func (h *hafeed) status() *control.Status {
	h.t.Helper()
	resp, err := h.call(control.CommandStatus)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.Status
}

// cli runs the hafeed binary as an operator would, against this agent.
func (h *hafeed) cli(args ...string) (string, int) {
	h.t.Helper()
	c := exec.Command(cliBin, append(args, "--control-socket", h.ctlSock)...)
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(out), 0
}

// mustCLI runs the CLI and fails the test unless it exits 0. It returns
// when the command started, since propagation is measured from there.
func (h *hafeed) mustCLI(args ...string) time.Time {
	h.t.Helper()
	start := time.Now()
	out, code := h.cli(args...)
	if code != 0 {
		h.t.Fatalf("hafeed %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return start
}

// agentReply polls the agent-check port like HAProxy does.
func (h *hafeed) agentReply() string {
	h.t.Helper()
	c, err := net.DialTimeout("tcp", h.agentAddr, time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		h.t.Fatalf("reading agent reply: %v", err)
	}
	return line
}

func (h *hafeed) agentPort() int {
	_, p, _ := net.SplitHostPort(h.agentAddr)
	n, _ := strconv.Atoi(p)
	return n
}

// --- an application port with connections the agent counts ---

type app struct {
	t       *testing.T
	ln      net.Listener
	clients []net.Conn
	done    chan struct{}
}

func startApp(t *testing.T) *app {
	t.Helper()
	return startAppOn(t, "127.0.0.1:0")
}

// startAppOn is startApp on a given address.
func startAppOn(t *testing.T, addr string) *app {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{t: t, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(a.close)
	return a
}

func (a *app) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

// connect opens n client connections to the application port.
func (a *app) connect(n int) {
	a.t.Helper()
	for range n {
		c, err := net.Dial("tcp", a.ln.Addr().String())
		if err != nil {
			a.t.Fatal(err)
		}
		a.clients = append(a.clients, c)
	}
}

// disconnect closes n client connections; their server sides move to
// CLOSE_WAIT and stop counting as established.
func (a *app) disconnect(n int) {
	for _, c := range a.clients[len(a.clients)-n:] {
		c.Close()
	}
	a.clients = a.clients[:len(a.clients)-n]
}

func (a *app) close() {
	for _, c := range a.clients {
		c.Close()
	}
	a.ln.Close()
	testutil.Recv(a.t, a.done, 10*time.Second, "the app's accept loop to end")
}

// --- haproxy ---

type haproxyServer struct {
	Name      string
	AppPort   int
	AgentPort int
	// Disabled starts the server in maintenance (a host not yet in service).
	Disabled bool
	// NoAgent turns agent-check off, so only the runtime API changes it.
	NoAgent bool
	// NoCheck turns the health check off: the agent is the only check.
	NoCheck bool
}

type haproxyProc struct {
	t        *testing.T
	build    haproxytest.Build
	dir      string
	sock     string
	operSock string // a stats socket of level operator
	cfgPath  string
	frontend string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when haproxy has exited
	exitErr  error
	out      *syncBuffer
}

var haproxyConfig = template.Must(template.New("cfg").Parse(`global
    stats socket {{.Sock}} mode 600 level admin
    stats socket {{.OperSock}} mode 600 level operator
    stats timeout 10s

defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s

frontend fe
    bind {{.Frontend}}
    default_backend ws

backend ws
    balance leastconn
    default-server weight 100 check inter 1s agent-check agent-addr 127.0.0.1 agent-inter {{.Inter}}
{{- range .Servers}}
    server {{.Name}} 127.0.0.1:{{.AppPort}} agent-port {{.AgentPort}}{{if .Disabled}} disabled{{end}}{{if .NoAgent}} no-agent-check{{end}}{{if .NoCheck}} no-check{{end}}
{{- end}}
`))

// startHAProxy runs the system's haproxy in the foreground with a leastconn
// backend whose servers are polled by the given agents every agentInter.
func startHAProxy(t *testing.T, servers ...haproxyServer) *haproxyProc {
	t.Helper()
	return startHAProxyOf(t, systemHAProxy, servers...)
}

// startHAProxyOf is startHAProxy with a given HAProxy build.
func startHAProxyOf(t *testing.T, hb haproxytest.Build, servers ...haproxyServer) *haproxyProc {
	t.Helper()
	h := newHAProxyOf(t, hb)
	h.start(agentInter, servers...)
	return h
}

// newHAProxy picks the paths and frontend address of a system HAProxy that
// start then runs, so that agents can be configured before it starts.
func newHAProxy(t *testing.T) *haproxyProc {
	t.Helper()
	return newHAProxyOf(t, systemHAProxy)
}

// newHAProxyOf is newHAProxy with a given HAProxy build.
func newHAProxyOf(t *testing.T, hb haproxytest.Build) *haproxyProc {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	return &haproxyProc{t: t, build: hb, dir: dir, sock: filepath.Join(dir, "admin.sock"), operSock: filepath.Join(dir, "oper.sock"),
		cfgPath: filepath.Join(dir, "haproxy.cfg"), frontend: testutil.FreeAddr(t), out: &syncBuffer{}}
}

// start writes the configuration and runs haproxy until the test ends.
func (h *haproxyProc) start(inter time.Duration, servers ...haproxyServer) {
	t := h.t
	t.Helper()
	var cfg bytes.Buffer
	err := haproxyConfig.Execute(&cfg, map[string]any{
		"Sock":     h.sock,
		"OperSock": h.operSock,
		"Frontend": h.frontend,
		"Inter":    fmt.Sprintf("%dms", inter.Milliseconds()),
		"Servers":  servers,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.cfgPath, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	h.run()
	t.Cleanup(h.stop)
}

// run starts the haproxy process and waits for its stats socket.
func (h *haproxyProc) run() {
	t := h.t
	t.Helper()
	h.cmd = exec.Command(h.build.Path, "-db", "-f", h.cfgPath)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func() {
		h.exitErr = h.cmd.Wait()
		close(h.exited)
	}()
	if err := awaitStarted(h.exited, func() bool { _, err := h.runtime("show info"); return err == nil }); err != nil {
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w: %v", err, h.exitErr)
		}
		t.Fatalf("%s stats socket %s: %v\n%s", h.build.Name(), h.sock, err, h.out)
	}
}

// restart stops haproxy and starts it again with the same configuration:
// every runtime change is lost, as on a real restart.
func (h *haproxyProc) restart() {
	h.t.Helper()
	h.stop()
	h.run()
}

func (h *haproxyProc) stop() {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		testutil.Recv(h.t, h.exited, 10*time.Second, "haproxy to exit after SIGKILL")
	}
}

// runtime sends one command to HAProxy's runtime API.
func (h *haproxyProc) runtime(command string) (string, error) {
	c, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(c)
	return string(out), err
}

func (h *haproxyProc) mustRuntime(command string) string {
	h.t.Helper()
	out, err := h.runtime(command)
	if err != nil {
		h.t.Fatalf("runtime API %q: %v", command, err)
	}
	return out
}

// serverState is one row of `show servers state`.
type serverState struct {
	OpState    int
	AdminState int
	UWeight    int
}

// Admin flag bits of srv_admin_state.
const (
	adminForcedMaint = 0x01
	adminForcedDrain = 0x08
)

func (s serverState) drained() bool { return s.AdminState&adminForcedDrain != 0 }
func (s serverState) maint() bool   { return s.AdminState&adminForcedMaint != 0 }
func (s serverState) String() string {
	return fmt.Sprintf("op=%d admin=0x%02x uweight=%d", s.OpState, s.AdminState, s.UWeight)
}
func (s serverState) readyAdmin() bool { return s.AdminState == 0 }

func (h *haproxyProc) serverState(server string) serverState {
	h.t.Helper()
	rows := parseTable(h.t, h.mustRuntime("show servers state ws"), " ", 1)
	for _, r := range rows {
		if r["srv_name"] == server {
			return serverState{OpState: atoi(h.t, r["srv_op_state"]), AdminState: atoi(h.t, r["srv_admin_state"]), UWeight: atoi(h.t, r["srv_uweight"])}
		}
	}
	h.t.Fatalf("server %s not in show servers state", server)
	return serverState{}
}

// stat is the `show stat` row of a server in backend ws, by column name.
func (h *haproxyProc) stat(server string) map[string]string {
	h.t.Helper()
	for _, r := range parseTable(h.t, h.mustRuntime("show stat"), ",", 0) {
		if r["pxname"] == "ws" && r["svname"] == server {
			return r
		}
	}
	h.t.Fatalf("server %s not in show stat", server)
	return nil
}

// parseTable parses HAProxy's "# col col" tables; skip leading lines first.
func parseTable(t *testing.T, out, sep string, skip int) []map[string]string {
	t.Helper()
	rows, err := splitTable(out, sep, skip)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// splitTable is parseTable for goroutines other than the test's own.
func splitTable(out, sep string, skip int) ([]map[string]string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) <= skip || !strings.HasPrefix(lines[skip], "# ") {
		return nil, fmt.Errorf("unexpected runtime API output:\n%s", out)
	}
	header := strings.Split(strings.TrimPrefix(lines[skip], "# "), sep)
	var rows []map[string]string
	for _, l := range lines[skip+1:] {
		if l == "" {
			continue
		}
		fields := strings.Split(l, sep)
		row := map[string]string{}
		for i, h := range header {
			if i < len(fields) {
				row[h] = fields[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// waitFor polls HAProxy's view of a server until ok holds and returns how
// long that took; it fails the test after limit.
func (h *haproxyProc) waitFor(server string, limit time.Duration, what string, ok func(serverState) bool) time.Duration {
	h.t.Helper()
	return h.waitSince(time.Now(), server, limit, what, ok)
}

// waitSince is waitFor for a change that began at since (an operator's
// command): it returns the time from since until HAProxy showed it, and
// fails the test unless HAProxy showed it within limit of now.
func (h *haproxyProc) waitSince(since time.Time, server string, limit time.Duration, what string, ok func(serverState) bool) time.Duration {
	h.t.Helper()
	testutil.Poll(h.t, limit, server+": HAProxy showing "+what, func() error {
		if last := h.serverState(server); !ok(last) {
			return fmt.Errorf("state %v", last)
		}
		return nil
	})
	return time.Since(since)
}

// waitPolled waits until HAProxy has polled the server's agent and the
// server is up, so that later changes are timed from a steady state.
func (h *haproxyProc) waitPolled(server string) {
	h.t.Helper()
	var st map[string]string
	if _, err := testutil.Wait(10*time.Second, func() error {
		st = h.stat(server)
		if strings.HasPrefix(st["agent_status"], "L7OK") && st["status"] == "UP" {
			return nil
		}
		return errors.New("not polled")
	}); err != nil {
		h.t.Fatalf("%s: no successful agent check within 10s: status %q agent_status %q last_agt %q\n%s",
			server, st["status"], st["agent_status"], st["last_agt"], h.out)
	}
}

// holds checks that ok stays true in HAProxy's view for the whole period.
func (h *haproxyProc) holds(server string, period time.Duration, what string, ok func(serverState) bool) {
	h.t.Helper()
	start := time.Now()
	for time.Since(start) < period {
		if s := h.serverState(server); !ok(s) {
			h.t.Fatalf("%s: after %v HAProxy stopped showing %s: %v", server, time.Since(start).Round(time.Millisecond), what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
