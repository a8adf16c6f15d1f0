package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/internal/wstest"
)

// farmConfig is the hafeed config of a WebSocket host in a farm: equal
// weights (no load signal), the HAProxy runtime API, and shedding.
const farmConfig = `
sources:
  cpu: none
  memory: none
policy:
  blackout: 0s
haproxy:
  - runtime: unix://{{.Sock}}
    backend: ws
    server: {{.Server}}
shed:
  via: {{.Via}}
  hook_url: http://{{.App}}/hafeed/shed
rebalance:
  enabled: {{.Rebalance}}
  margin: 0.1
  sustain: 3s
  max_rate: 0.02
  cooldown: 10s
`

type farmOptions struct {
	haproxy   haproxytest.Build // the system's when empty
	hosts     int
	clients   int
	via       string // runtime or hook
	rebalance bool
	// lastDisabled starts the last host out of service (HAProxy maint,
	// hafeed maint), to be brought in for a scale-up.
	lastDisabled bool
}

// farm is WebSocket echo servers, one hafeed each, an HAProxy leastconn
// backend in front and a population of reconnecting clients through it.
type farm struct {
	t       *testing.T
	servers []*wstest.Server
	agents  []*hafeed
	hp      *haproxyProc
	pop     *wstest.Population
}

func startFarm(t *testing.T, opts farmOptions) *farm {
	t.Helper()
	hb := opts.haproxy
	if hb.Path == "" {
		hb = systemHAProxy
	}
	f := &farm{t: t, hp: newHAProxyOf(t, hb)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	var servers []haproxyServer
	for i := range opts.hosts {
		srv, err := wstest.NewServer("127.0.0.1:0", wstest.ServerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Run(ctx)
		}()
		f.servers = append(f.servers, srv)
		name := fmt.Sprintf("ws%d", i+1)
		disabled := opts.lastDisabled && i == opts.hosts-1
		admin := ""
		if disabled {
			admin = "maint"
		}
		port := srv.Addr().String()
		h := startHafeed(t, hafeedOptions{
			config:  farmConfig,
			appPort: atoi(t, port[strings.LastIndexByte(port, ':')+1:]),
			admin:   admin,
			vars: map[string]string{
				"Sock": f.hp.sock, "Server": name, "Via": opts.via, "App": port,
				"Rebalance": fmt.Sprint(opts.rebalance),
			},
		})
		f.agents = append(f.agents, h)
		servers = append(servers, haproxyServer{Name: name, AppPort: h.appPort, AgentPort: h.agentPort()})
	}
	f.hp.start(agentInter, servers...)
	for i := range servers {
		if !opts.lastDisabled || i < len(servers)-1 {
			f.hp.waitPolled(servers[i].Name)
		}
	}
	if opts.lastDisabled {
		// hafeed starts in maint and pushes it: no client may land there.
		f.hp.waitFor(servers[len(servers)-1].Name, 5*time.Second, "maint", serverState.maint)
	}
	pop, err := wstest.NewPopulation("ws://"+f.hp.frontend+"/", wstest.PopulationOptions{Clients: opts.clients, Interval: time.Second, RampUp: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.pop = pop
	wg.Add(1)
	go func() {
		defer wg.Done()
		pop.Run(ctx)
	}()
	f.await("every client connected", 30*time.Second, func(s wstest.Stats) bool { return s.Connected == opts.clients })
	return f
}

func (f *farm) await(what string, limit time.Duration, cond func(wstest.Stats) bool) wstest.Stats {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	s, err := f.pop.Await(ctx, cond)
	if err != nil {
		f.t.Fatalf("%s: %v; stats %+v", what, err, s)
	}
	return s
}

// scur is HAProxy's count of current sessions on a server.
func (f *farm) scur(server string) int {
	f.t.Helper()
	return atoi(f.t, f.hp.stat(server)["scur"])
}

func (f *farm) counts() string {
	var parts []string
	for i := range f.servers {
		name := fmt.Sprintf("ws%d", i+1)
		parts = append(parts, fmt.Sprintf("%s=%d", name, f.scur(name)))
	}
	return strings.Join(parts, " ")
}

// checkNoClientLost fails the test if any message was lost or any client
// stayed disconnected for 5 s or more.
func (f *farm) checkNoClientLost() wstest.Stats {
	f.t.Helper()
	s := f.pop.Stats()
	if s.Lost != 0 || s.Mismatched != 0 {
		f.t.Errorf("clients lost %d and saw %d mismatched messages, want none", s.Lost, s.Mismatched)
	}
	if s.LongestDisconnect >= 5*time.Second {
		f.t.Errorf("a client was disconnected for %v, want under 5s", s.LongestDisconnect)
	}
	return s
}

// TestScaleDown drains one of three hosts to zero with shedding, through
// HAProxy's runtime API and through the application's hook. The newer
// HAProxy lines run the runtime variant, the one that depends on HAProxy
// (show sess, shutdown session), with fewer clients.
func TestScaleDown(t *testing.T) {
	for _, via := range []string{"runtime", "hook"} {
		t.Run(systemHAProxy.Name()+"/"+via, func(t *testing.T) {
			testScaleDown(t, farmOptions{haproxy: systemHAProxy, hosts: 3, clients: 600, via: via})
		})
	}
	for _, hb := range matrixHAProxies {
		t.Run(hb.Name()+"/runtime", func(t *testing.T) {
			testScaleDown(t, farmOptions{haproxy: hb, hosts: 3, clients: 150, via: "runtime"})
		})
	}
	if len(matrixHAProxies) == 0 {
		t.Run("haproxy-3.x", func(t *testing.T) { t.Skip(haproxytest.MatrixUnset) })
	}
}

func testScaleDown(t *testing.T, opts farmOptions) {
	f := startFarm(t, opts)
	before := f.counts()
	start := time.Now()
	out, code := f.agents[0].cli("drain", "--wait", "--shed-rate", "100", "--timeout", "60s")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("hafeed drain --wait: exit %d: %s\n%s", code, out, f.agents[0].logs())
	}
	if !strings.Contains(out, "drained: 0 connections left") {
		t.Errorf("drain output %q, want it to report 0 left", out)
	}
	f.hp.waitFor("ws1", 5*time.Second, "drain", serverState.drained)
	if n := f.scur("ws1"); n != 0 {
		t.Errorf("HAProxy scur of ws1 = %d after the drain, want 0", n)
	}
	s := f.await("every client reconnected elsewhere", 30*time.Second, func(s wstest.Stats) bool { return s.Connected == opts.clients })
	f.checkNoClientLost()
	t.Logf("FIGURE scale-down on %s via %s: %s -> %s; drain --wait --shed-rate 100 took %v; %d reconnects, %d closed with 1012, longest disconnect %v, lost %d",
		opts.haproxy.Name(), opts.via, before, f.counts(), took.Round(time.Millisecond), s.Reconnects, s.ServiceRestarts, s.LongestDisconnect.Round(time.Millisecond), s.Lost)
}

// TestScaleUp adds a fourth host to three holding 600 clients, first with
// rebalance off, then on: only rebalancing moves existing sockets to it.
func TestScaleUp(t *testing.T) {
	f := startFarm(t, farmOptions{hosts: 4, clients: 600, via: "runtime", lastDisabled: true})
	const window = 10 * time.Second
	fair := 150.0

	// The new host enters service: hafeed ready pushes it through the runtime API.
	f.agents[3].mustCLI("ready")
	f.hp.waitFor("ws4", 5*time.Second, "ws4 ready", func(s serverState) bool { return s.readyAdmin() && s.OpState == 2 })
	time.Sleep(window) // without rebalancing nothing moves: observe a while
	without := f.scur("ws4")
	t.Logf("FIGURE scale-up without rebalance: after %v ws4 holds %d of its fair %.0f (%s)", window, without, fair, f.counts())
	if float64(without) > 0.5*fair {
		t.Errorf("without rebalance ws4 got %d connections, want far below its fair share %.0f (there is no churn)", without, fair)
	}

	// Turn rebalance on in the three old hosts with a reload.
	for _, h := range f.agents[:3] {
		h.vars["Rebalance"] = "true"
		if err := writeFile(h.config, h.renderConfig(farmConfig)); err != nil {
			t.Fatal(err)
		}
		h.cmd.Process.Signal(syscall.SIGHUP)
	}
	took, err := testutil.Wait(30*time.Second, func() error {
		if n := f.scur("ws4"); float64(n) < 0.9*fair {
			return fmt.Errorf("ws4 holds %d", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("with rebalance ws4 holds %d after 30s, want at least %.0f (%s)\n%s", f.scur("ws4"), 0.9*fair, f.counts(), f.agents[0].logs())
	}
	s := f.await("every client connected", 30*time.Second, func(s wstest.Stats) bool { return s.Connected == 600 })
	f.checkNoClientLost()
	t.Logf("FIGURE scale-up with rebalance (sustain 3s, max_rate 2%%/s): ws4 reached 90%% of its fair share in %v; %s; %d reconnects, longest disconnect %v",
		took.Round(time.Millisecond), f.counts(), s.Reconnects, s.LongestDisconnect.Round(time.Millisecond))
	for i := range 3 {
		if n := f.scur(fmt.Sprintf("ws%d", i+1)); float64(n) < fair*0.9 {
			t.Errorf("ws%d shed below its fair share: %d", i+1, n)
		}
	}
}

// TestPushAndRestart checks that a runtime endpoint makes a drain visible
// at once, and that an HAProxy restart gets the state back. The server has
// no agent-check, so only the runtime API can explain what HAProxy shows.
func TestPushAndRestart(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, testPushAndRestart)
}

func testPushAndRestart(t *testing.T, hb haproxytest.Build) {
	a := startApp(t)
	hp := newHAProxyOf(t, hb)
	h := startHafeed(t, hafeedOptions{config: farmConfig, appPort: a.port(), vars: map[string]string{
		"Sock": hp.sock, "Server": "ws1", "Via": "runtime", "App": "127.0.0.1:1", "Rebalance": "false"}})
	hp.start(agentInter, haproxyServer{Name: "ws1", AppPort: a.port(), AgentPort: h.agentPort(), NoAgent: true})
	waitEndpoint(t, h)

	start := h.mustCLI("drain")
	returned := time.Now()
	if s := hp.serverState("ws1"); !s.drained() {
		t.Fatalf("ws1 not drained in HAProxy when hafeed drain returned: %v", s)
	}
	took := returned.Sub(start)
	t.Logf("PROPAGATION runtime push: drain visible in show servers state when the CLI returned, %v after it started", took.Round(time.Millisecond))
	if took > 200*time.Millisecond {
		t.Errorf("drain took %v to show, want under 200ms", took)
	}

	hp.restart()
	if s := hp.serverState("ws1"); s.drained() {
		t.Fatalf("a restarted HAProxy kept the drain by itself: %v", s)
	}
	took = hp.waitFor("ws1", 10*time.Second, "the drain re-applied after the restart", serverState.drained)
	t.Logf("PROPAGATION drain re-applied after an HAProxy restart: %v", took.Round(time.Millisecond))

	since := h.mustCLI("ready")
	took = hp.waitSince(since, "ws1", 200*time.Millisecond, "ready", serverState.readyAdmin)
	t.Logf("PROPAGATION runtime push: ready in %v", took.Round(time.Millisecond))
}

// waitEndpoint waits until the agent has reached its runtime endpoint.
func waitEndpoint(t *testing.T, h *hafeed) {
	t.Helper()
	testutil.Poll(t, 10*time.Second, "the agent reaching its runtime endpoint", func() error {
		if st := h.status(); len(st.HAProxy) == 0 || st.HAProxy[0].PID == 0 || st.HAProxy[0].Error != "" {
			return fmt.Errorf("endpoints %+v", st.HAProxy)
		}
		return nil
	})
}

// TestRuntimeErrors gives the agent an unreachable socket, an operator-level
// socket and a server name HAProxy does not have: each error names the
// endpoint and what to fix, and the agent-check reply keeps serving.
func TestRuntimeErrors(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	hp := newHAProxy(t)
	cfg := `
sources:
  cpu: none
  memory: none
policy:
  blackout: 0s
haproxy:
  - runtime: unix:///nonexistent/haproxy.sock
    backend: ws
    server: ws1
  - runtime: unix://{{.OperSock}}
    backend: ws
    server: ws1
  - runtime: unix://{{.Sock}}
    backend: ws
    server: nosuch
`
	h := startHafeed(t, hafeedOptions{config: cfg, appPort: a.port(), vars: map[string]string{"Sock": hp.sock, "OperSock": hp.operSock}})
	hp.start(agentInter, haproxyServer{Name: "ws1", AppPort: a.port(), AgentPort: h.agentPort()})
	hp.waitPolled("ws1")

	out, code := h.cli("drain")
	if code != 0 {
		t.Fatalf("hafeed drain: exit %d, want 0 (the drain is saved and the agent-check carries it): %s", code, out)
	}
	for _, want := range []string{"/nonexistent/haproxy.sock", hp.operSock, "nosuch"} {
		if !strings.Contains(out, want) {
			t.Errorf("drain output does not name %q:\n%s", want, out)
		}
	}
	hp.waitFor("ws1", propagationLimit, "drain through the agent-check", serverState.drained)
	if got := h.agentReply(); !strings.HasPrefix(got, "drain") {
		t.Errorf("agent reply %q, want drain", got)
	}
	statusOut, code := h.cli("status", "--json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, statusOut)
	}
	var st control.Status
	decodeJSON(t, statusOut, &st)
	if len(st.HAProxy) != 3 {
		t.Fatalf("status shows %d endpoints, want 3", len(st.HAProxy))
	}
	for i, hint := range []string{"no such file", "level admin", "nosuch"} {
		if e := st.HAProxy[i].Error; !strings.Contains(strings.ToLower(e), strings.ToLower(hint)) {
			t.Errorf("endpoint %d error %q, want it to mention %q", i, e, hint)
		}
	}
	t.Logf("runtime errors as status shows them:\n%s", indentJSON(st.HAProxy))
}

func indentJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// TestDiscovery leaves backend and server out of the config: the agent
// finds itself in "show servers state" by address and port.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	a, other := startApp(t), startApp(t)
	hp := newHAProxy(t)
	cfg := `
sources:
  cpu: none
  memory: none
haproxy:
  - runtime: unix://{{.Sock}}
`
	h := startHafeed(t, hafeedOptions{config: cfg, appPort: a.port(), vars: map[string]string{"Sock": hp.sock}})
	hp.start(agentInter,
		haproxyServer{Name: "other", AppPort: other.port(), AgentPort: testutil.FreePort(t), NoAgent: true},
		haproxyServer{Name: "mine", AppPort: a.port(), AgentPort: h.agentPort(), NoAgent: true})
	waitEndpoint(t, h)
	if got := h.status().HAProxy[0].Servers; len(got) != 1 || got[0] != "ws/mine" {
		t.Fatalf("discovered servers %q, want [ws/mine]", got)
	}
	h.mustCLI("drain")
	if !hp.serverState("mine").drained() || hp.serverState("other").drained() {
		t.Errorf("drain reached the wrong server: mine %v, other %v", hp.serverState("mine"), hp.serverState("other"))
	}
}
