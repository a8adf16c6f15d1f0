package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// linesConfig is a host's agent that finds its server lines through
// discovery: a runtime endpoint without backend or server.
const linesConfig = `
sources:
  cpu: none
  memory: none
policy:
  blackout: 0s
haproxy:
  - runtime: unix://{{.Sock}}
`

// linesHAProxy is a leastconn backend where s1 is reached through two
// lines, each with its own source address (past 64k sockets per host),
// beside one-line hosts s2 and s3.
var linesHAProxy = template.Must(template.New("cfg").Parse(`global
    stats socket {{.Sock}} mode 600 level admin
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
    default-server weight 100 check inter 1s agent-check agent-addr 127.0.0.1 agent-inter 200ms
    server s1a 127.0.0.1:{{index .Ports 0}} source 127.0.0.2 agent-port {{index .Agents 0}}
    server s1b 127.0.0.1:{{index .Ports 0}} source 127.0.0.3 agent-port {{index .Agents 0}}
    server s2 127.0.0.1:{{index .Ports 1}} agent-port {{index .Agents 1}}
    server s3 127.0.0.1:{{index .Ports 2}} agent-port {{index .Agents 2}}
`))

// TestHostWithTwoLines runs three equal hosts, s1 behind two server lines
// with their own source addresses: s1's agent finds both lines, splits its
// weight between them, and s1 holds one host's share of 300 clients
// (within 1.2x), where it held two hosts' before; its drain then acts on
// both lines and empties them. On HAProxy 2.6, 3.0 and 3.2, whose agent
// checks come from each line's source address.
func TestHostWithTwoLines(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		hp := newHAProxyOf(t, hb)
		var agents []*hafeed
		var ports, agentPorts []int
		for range 3 {
			app := startApp(t)
			h := startHafeed(t, hafeedOptions{config: linesConfig, appPort: app.port(), vars: map[string]string{"Sock": hp.sock}})
			agents = append(agents, h)
			ports, agentPorts = append(ports, app.port()), append(agentPorts, h.agentPort())
		}
		// The frontend's port is chosen now, not before the three agents
		// and apps started: their ports and connections, taken from the
		// same ephemeral range meanwhile, once took it (HAProxy 3.0 could
		// not bind).
		hp.frontend = testutil.FreeAddr(t)
		var cfg bytes.Buffer
		if err := linesHAProxy.Execute(&cfg, map[string]any{"Sock": hp.sock, "Frontend": hp.frontend, "Ports": ports, "Agents": agentPorts}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp.cfgPath, cfg.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		hp.run()
		t.Cleanup(hp.stop)
		for _, s := range []string{"s1a", "s1b", "s2", "s3"} {
			hp.waitPolled(s)
		}
		testutil.Poll(t, 15*time.Second, "s1's agent splitting its weight over its two lines", func() error {
			if st := agents[0].status(); st.Lines != 2 {
				return fmt.Errorf("s1's agent counts %d lines", st.Lines)
			}
			a, b, w2 := atoi(t, hp.stat("s1a")["weight"]), atoi(t, hp.stat("s1b")["weight"]), atoi(t, hp.stat("s2")["weight"])
			if w2 == 0 || math.Abs(float64(a+b-w2)) > 0.05*float64(w2) {
				return fmt.Errorf("weights s1a %d + s1b %d, s2 %d", a, b, w2)
			}
			return nil
		})
		const n = 300
		var clients []net.Conn
		t.Cleanup(func() {
			for _, c := range clients {
				c.Close()
			}
		})
		for range n {
			c, err := net.Dial("tcp", hp.frontend)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		var s1, s2, s3 int
		testutil.Poll(t, 10*time.Second, "HAProxy holding every client", func() error {
			s1 = atoi(t, hp.stat("s1a")["scur"]) + atoi(t, hp.stat("s1b")["scur"])
			s2, s3 = atoi(t, hp.stat("s2")["scur"]), atoi(t, hp.stat("s3")["scur"])
			if s1+s2+s3 != n {
				return fmt.Errorf("s1 %d, s2 %d, s3 %d", s1, s2, s3)
			}
			return nil
		})
		t.Logf("LINES %s: s1 (two lines: %s and %s) holds %d, s2 %d, s3 %d of %d", hb.Name(), hp.stat("s1a")["scur"], hp.stat("s1b")["scur"], s1, s2, s3, n)
		if fair := float64(n) / 3; float64(s1) > 1.2*fair || float64(s1) < fair/1.2 {
			t.Errorf("s1 holds %d with two lines, want one host's share, %.0f within 1.2x", s1, fair)
		}
		// Each line's agent check comes from its source address: what
		// hafeed tells the lines apart by (per-source maxconn).
		var peers []string
		for _, p := range agents[0].status().Peers {
			peers = append(peers, p.Addr)
		}
		if !slices.Contains(peers, "127.0.0.2") || !slices.Contains(peers, "127.0.0.3") {
			t.Errorf("s1's agent was polled from %v, want each line's source address, 127.0.0.2 and 127.0.0.3", peers)
		}
		// The fleet figures count s1 once. s2's agent finds its line in
		// HAProxy within 2 s of starting.
		var f control.Fleet
		testutil.Poll(t, 10*time.Second, "hafeed fleet on s2's agent", func() error {
			out, code := agents[1].cli("fleet", "--json")
			if err := json.Unmarshal([]byte(out), &f); code != 0 || err != nil {
				return fmt.Errorf("exit %d, %v: %s", code, err, out)
			}
			return nil
		})
		if f.InRotation != 3 || len(f.Servers) != 3 || f.Connections != n {
			t.Errorf("fleet: %d servers, %d in rotation, %d connections; want s1's two lines counted as one host: 3, 3, %d", len(f.Servers), f.InRotation, f.Connections, n)
		}
		// The drain acts on both lines, and shedding empties both.
		out, code := agents[0].cli("drain", "--wait", "--shed-rate", "200", "--timeout", "30s")
		if code != 0 {
			t.Fatalf("drain --wait on s1: exit %d: %s\n%s", code, out, agents[0].logs())
		}
		for _, line := range []string{"s1a", "s1b"} {
			if s := hp.serverState(line); !s.drained() {
				t.Errorf("%s after s1's drain = %v, want drained", line, s)
			}
			if got := atoi(t, hp.stat(line)["scur"]); got != 0 {
				t.Errorf("%s holds %d after s1's drain --wait, want 0", line, got)
			}
		}
		if !strings.Contains(out, "drained: 0 connections left") {
			t.Errorf("drain --wait said %q", out)
		}
		// And ready, after the drain, puts both lines back with the
		// host's weight split between them again.
		if out, code := agents[0].cli("ready"); code != 0 {
			t.Fatalf("ready on s1: exit %d: %s", code, out)
		}
		testutil.Poll(t, 15*time.Second, "s1's two lines ready again, splitting its weight", func() error {
			for _, line := range []string{"s1a", "s1b"} {
				if s := hp.serverState(line); !s.readyAdmin() {
					return fmt.Errorf("%s = %v", line, s)
				}
			}
			a, b, w2 := atoi(t, hp.stat("s1a")["weight"]), atoi(t, hp.stat("s1b")["weight"]), atoi(t, hp.stat("s2")["weight"])
			if a == 0 || b == 0 || math.Abs(float64(a+b-w2)) > 0.05*float64(w2) {
				return fmt.Errorf("weights s1a %d + s1b %d, s2 %d", a, b, w2)
			}
			return nil
		})
	})
}
