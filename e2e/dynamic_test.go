package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hafeed/hafeed/internal/testutil"
)

// dynamicConfig is the hafeed config of a host in a dynamic farm: the
// runtime API without backend or server, so that the agent finds its
// server by address and port, and shedding through HAProxy.
const dynamicConfig = `
sources:
  cpu: none
  memory: none
policy:
  blackout: 0s
haproxy:
  - runtime: unix://{{.Sock}}
shed:
  via: runtime
`

// templateConfig is an HAProxy whose backend is server-template slots
// filled from DNS, as in a farm registered in service discovery.
var templateConfig = template.Must(template.New("cfg").Parse(`global
    stats socket {{.Sock}} mode 600 level admin
    stats timeout 10s

resolvers farm
    nameserver local {{.DNS}}
    # Re-resolve every 200 ms and drop a vanished address after 1 s, so
    # that the test runs in seconds; real farms use seconds to minutes.
    timeout resolve 200ms
    timeout retry 200ms
    hold valid 1s
    hold obsolete 1s
    hold nx 1s

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
    default-server weight 100 check inter 1s agent-check agent-port {{.AgentPort}} agent-inter {{.Inter}}
    server-template ws {{.Slots}} farm.test:{{.AppPort}} resolvers farm init-addr none resolve-prefer ipv4
`))

// startConfig writes cfg as the configuration and runs haproxy until the
// test ends.
func (h *haproxyProc) startConfig(cfg string) {
	h.t.Helper()
	if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.run()
	h.t.Cleanup(h.stop)
}

// slotOf is the name of the server whose address is addr in HAProxy, or "".
func (h *haproxyProc) slotOf(addr string) string {
	h.t.Helper()
	for _, r := range parseTable(h.t, h.mustRuntime("show servers state ws"), " ", 1) {
		if r["srv_addr"] == addr {
			return r["srv_name"]
		}
	}
	return ""
}

// waitSlot waits until a server slot has addr and HAProxy got an answer
// from its agent, and returns the slot's name.
func (h *haproxyProc) waitSlot(addr string) string {
	h.t.Helper()
	var slot string
	testutil.Poll(h.t, 10*time.Second, "a server slot with a polled agent taking "+addr, func() error {
		if slot = h.slotOf(addr); slot == "" {
			return fmt.Errorf("no slot has it:\n%s", h.mustRuntime("show servers state ws"))
		}
		// L7OK, or CHECKED when the reply changed nothing (drain again).
		if st := h.stat(slot); !strings.HasPrefix(st["agent_status"], "L7OK") && st["agent_status"] != "CHECKED" {
			return fmt.Errorf("%s agent_status %q", slot, st["agent_status"])
		}
		return nil
	})
	return slot
}

// waitDiscovered waits until the agent names exactly want (backend/server)
// as its servers in HAProxy, or none when want is empty, and returns how
// long that took.
func waitDiscovered(t *testing.T, h *hafeed, want string) time.Duration {
	t.Helper()
	return testutil.Poll(t, 10*time.Second, "the agent on "+h.agentAddr+" finding ["+want+"]", func() error {
		st := h.status()
		if len(st.HAProxy) == 0 {
			return errors.New("no runtime endpoint in status")
		}
		got := st.HAProxy[0].Servers
		if (want == "" && len(got) == 0) || slices.Equal(got, []string{want}) {
			return nil
		}
		return fmt.Errorf("servers %q", got)
	})
}

// commonPort is a port free on every one of ips at the time of the call,
// other than the ports in taken.
func commonPort(t *testing.T, ips []string, taken ...int) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		free := !slices.Contains(taken, port)
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		ln.Close()
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return 0
}

// TestServerTemplateDNS runs a backend of server-template slots filled by
// DNS: hosts join and leave by their A records, each slot's agent-check
// reaches the host at its address, and each host's hafeed finds its slot by
// address and port, follows it when it changes, and pushes to it alone.
// Each host is a loopback address of its own with the same application and
// agent ports, as hosts of a farm are.
func TestServerTemplateDNS(t *testing.T) {
	t.Parallel()
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	hostA, hostB, hostC := ips[0], ips[1], ips[2]
	appPort := commonPort(t, ips)
	agentPort := commonPort(t, ips, appPort)
	dns := startDNS(t)
	hp := newHAProxy(t)
	agents := map[string]*hafeed{}
	for _, ip := range ips {
		startAppOn(t, net.JoinHostPort(ip, strconv.Itoa(appPort)))
		agents[ip] = startHafeed(t, hafeedOptions{
			config: dynamicConfig, appPort: appPort,
			listen: net.JoinHostPort(ip, strconv.Itoa(agentPort)),
			vars:   map[string]string{"Sock": hp.sock},
		})
	}
	setHosts := func(hosts ...string) {
		var addrs []netip.Addr
		for _, h := range hosts {
			addrs = append(addrs, netip.MustParseAddr(h))
		}
		dns.set("farm.test", addrs...)
	}
	setHosts(hostA, hostB)
	var cfg strings.Builder
	if err := templateConfig.Execute(&cfg, map[string]any{
		"Sock": hp.sock, "DNS": dns.addr(), "Frontend": hp.frontend, "Slots": 3,
		"AppPort": appPort, "AgentPort": agentPort, "Inter": fmt.Sprintf("%dms", agentInter.Milliseconds()),
	}); err != nil {
		t.Fatal(err)
	}
	hp.startConfig(cfg.String())

	// A and B join: each gets a slot, polled at its own address.
	slotA, slotB := hp.waitSlot(hostA), hp.waitSlot(hostB)
	for ip, slot := range map[string]string{hostA: slotA, hostB: slotB} {
		took := waitDiscovered(t, agents[ip], "ws/"+slot)
		t.Logf("DYNAMIC %s took slot %s; its agent found it %v after HAProxy polled it", ip, slot, took.Round(time.Millisecond))
	}
	// C is not in DNS: its agent says so and keeps answering.
	testutil.Poll(t, 10*time.Second, "the agent of "+hostC+", not in DNS, saying so", func() error {
		if st := agents[hostC].status().HAProxy[0]; len(st.Servers) != 0 || !strings.Contains(st.Error, "not a server") {
			return fmt.Errorf("servers %q, error %q", st.Servers, st.Error)
		}
		return nil
	})

	// hafeed drain on A is pushed to A's slot only.
	agents[hostA].mustCLI("drain")
	if s := hp.serverState(slotA); !s.drained() {
		t.Errorf("%s (A) not drained when hafeed drain returned: %v", slotA, s)
	}
	if s := hp.serverState(slotB); !s.readyAdmin() {
		t.Errorf("%s (B) changed by A's drain: %v", slotB, s)
	}

	// A leaves DNS: its slot empties and its agent sees it is out.
	setHosts(hostB)
	hp.waitFor(slotA, 10*time.Second, "the slot emptied", func(s serverState) bool { return hp.slotOf(hostA) == "" })
	waitDiscovered(t, agents[hostA], "")
	t.Logf("DYNAMIC slot %s after A left: %v, show stat status %q", slotA, hp.serverState(slotA), hp.stat(slotA)["status"])

	// C joins and takes the freed slot; A comes back into another one.
	setHosts(hostB, hostC)
	var inherited serverState
	testutil.Until(t, 10*time.Second, "a slot taking "+hostC, func() bool {
		seen := hp.slotOf(hostC)
		if seen != "" {
			inherited = hp.serverState(seen)
		}
		return seen != ""
	})
	joined := time.Now()
	slotC := hp.waitSlot(hostC)
	waitDiscovered(t, agents[hostC], "ws/"+slotC)
	// HAProxy keeps a slot's admin state when its address goes: C got A's
	// drain with the slot, and C's agent, new in this slot, pushed ready.
	took := hp.waitSince(joined, slotC, 5*time.Second, "C ready in A's old slot", serverState.readyAdmin)
	t.Logf("DYNAMIC C took slot %s in state %v; ready %v after it had the address", slotC, inherited, took.Round(time.Millisecond))
	setHosts(hostB, hostC, hostA)
	slotA2 := hp.waitSlot(hostA)
	took = waitDiscovered(t, agents[hostA], "ws/"+slotA2)
	t.Logf("DYNAMIC A came back in slot %s (was %s); its agent followed in %v", slotA2, slotA, took.Round(time.Millisecond))
	if slotA2 == slotA {
		t.Fatalf("A came back into its old slot %s: the test wants a slot change", slotA)
	}
	// A is still drained, in its new slot, and C is not.
	hp.waitFor(slotA2, propagationLimit, "A's drain in its new slot", serverState.drained)

	// ready on A reaches A's new slot and nothing else.
	agents[hostA].mustCLI("ready")
	if s := hp.serverState(slotA2); !s.readyAdmin() {
		t.Errorf("%s (A) not ready when hafeed ready returned: %v", slotA2, s)
	}
	agents[hostC].mustCLI("drain")
	if s := hp.serverState(slotC); !s.drained() {
		t.Errorf("%s (C) not drained when hafeed drain returned: %v", slotC, s)
	}
	hp.holds(slotA2, 3*agentInter, "A ready while C drains", serverState.readyAdmin)
	hp.holds(slotB, agentInter, "B ready", serverState.readyAdmin)
}

// TestAddDelServer scales a backend up and down through HAProxy's runtime
// API: "add server" a new host (it starts in maint), let its agent in with
// hafeed ready, then empty it with hafeed drain --wait, put it in maint and
// "del server" it. The agents find their servers by address and port.
func TestAddDelServer(t *testing.T) {
	t.Parallel()
	hp := newHAProxy(t)
	vars := map[string]string{"Sock": hp.sock}
	oldApp, newApp := startApp(t), startApp(t)
	oldAgent := startHafeed(t, hafeedOptions{config: dynamicConfig, appPort: oldApp.port(), vars: vars})
	newAgent := startHafeed(t, hafeedOptions{config: dynamicConfig, appPort: newApp.port(), vars: vars, admin: "maint"})
	hp.start(agentInter, haproxyServer{Name: "ws1", AppPort: oldApp.port(), AgentPort: oldAgent.agentPort()})
	hp.waitPolled("ws1")
	waitDiscovered(t, oldAgent, "ws/ws1")

	// Scale up: the new server starts in maint, with its checks off.
	add := fmt.Sprintf("add server ws/ws2 127.0.0.1:%d weight 100 check inter 1s agent-check agent-addr 127.0.0.1 agent-port %d agent-inter %dms",
		newApp.port(), newAgent.agentPort(), agentInter.Milliseconds())
	out := hp.mustRuntime(add)
	t.Logf("DYNAMIC %s -> %q; state %v, show stat status %q", add, strings.TrimSpace(out), hp.serverState("ws2"), hp.stat("ws2")["status"])
	if !hp.serverState("ws2").maint() {
		t.Fatalf("a server added at run time is not in maint: %v", hp.serverState("ws2"))
	}
	for _, c := range []string{"enable agent ws/ws2", "enable health ws/ws2"} {
		if out := strings.TrimSpace(hp.mustRuntime(c)); out != "" {
			t.Fatalf("%s: %q", c, out)
		}
	}
	took := waitDiscovered(t, newAgent, "ws/ws2")
	t.Logf("DYNAMIC the new host's agent found ws/ws2 %v after its checks were enabled", took.Round(time.Millisecond))
	hp.holds("ws2", 3*agentInter, "maint while the new host's agent is in maint", serverState.maint)

	newAgent.mustCLI("ready")
	if s := hp.serverState("ws2"); !s.readyAdmin() {
		t.Fatalf("ws2 not ready when hafeed ready returned: %v", s)
	}
	hp.waitPolled("ws2")

	// Clients spread over both servers.
	const n = 20
	for range n {
		c, err := net.Dial("tcp", hp.frontend)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	var onNew int
	testutil.Poll(t, 5*time.Second, fmt.Sprintf("HAProxy holding the %d client connections", n), func() error {
		onNew = atoi(t, hp.stat("ws2")["scur"])
		if old := atoi(t, hp.stat("ws1")["scur"]); onNew+old != n {
			return fmt.Errorf("ws1 %d, ws2 %d", old, onNew)
		}
		return nil
	})
	if onNew == 0 {
		t.Fatalf("no client connection went to the added server")
	}

	// Scale down: empty it, maint, delete.
	start := time.Now()
	out, code := newAgent.cli("drain", "--wait", "--shed-rate", "50", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("hafeed drain --wait: exit %d: %s\n%s", code, out, newAgent.logs())
	}
	t.Logf("DYNAMIC drain --wait --shed-rate 50 emptied ws2 of %d connections in %v", onNew, time.Since(start).Round(time.Millisecond))
	if got := atoi(t, hp.stat("ws2")["scur"]); got != 0 {
		t.Errorf("ws2 scur %d after the drain, want 0", got)
	}
	newAgent.mustCLI("maint")
	if s := hp.serverState("ws2"); !s.maint() {
		t.Fatalf("ws2 not in maint when hafeed maint returned: %v", s)
	}
	out = hp.mustRuntime("del server ws/ws2")
	t.Logf("DYNAMIC del server ws/ws2 -> %q", strings.TrimSpace(out))
	for _, r := range parseTable(t, hp.mustRuntime("show servers state ws"), " ", 1) {
		if r["srv_name"] == "ws2" {
			t.Fatalf("ws2 still in show servers state after del server")
		}
	}
	waitDiscovered(t, newAgent, "")
	if got := atoi(t, hp.stat("ws1")["scur"]); got != n-onNew {
		t.Errorf("ws1 scur %d, want its %d connections untouched", got, n-onNew)
	}
	if s := hp.serverState("ws1"); !s.readyAdmin() {
		t.Errorf("ws1 changed by the scale-down of ws2: %v", s)
	}
}
