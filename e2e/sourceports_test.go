package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// envInNetns marks the run of TestSourcePortsRunOut inside its network
// namespace.
const envInNetns = "HAFEED_E2E_IN_NETNS"

// sourcePortsHAProxy is a leastconn backend whose lines have their own
// source addresses: s1, of weight 100, through 127.0.0.2; s2, of weight 5,
// through 127.0.0.3. leastconn sends s1 20 times what s2 gets, more than
// one source's 1,000 ports in the namespace.
var sourcePortsHAProxy = template.Must(template.New("cfg").Parse(`global
    stats socket {{.Sock}} mode 600 level admin
    maxconn 5000

defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout queue 10s

frontend fe
    bind {{.Frontend}}
    default_backend ws

backend ws
    balance leastconn
    # Each check from a line's source address leaves a socket in TIME_WAIT
    # on one of its ports for 60 s: at these intervals about 80 of the
    # namespace's 1,000.
    default-server check inter 3s agent-check agent-addr 127.0.0.1 agent-inter 1s
    server s1 127.0.0.1:{{index .Ports 0}} source 127.0.0.2 weight 100 agent-port {{index .Agents 0}}
    server s2 127.0.0.1:{{index .Ports 1}} source 127.0.0.3 weight 5 agent-port {{index .Agents 1}}
`))

// sourcePortsConfig is the agents' config: the defaults of source_ports
// (the range read here, warn at 0.8, maxconn at 0.9 of it) unless the
// test sets cap.
const sourcePortsConfig = `
sources:
  cpu: none
  memory: none
policy:
  blackout: 0s
source_ports:
  cap: {{.Cap}}
`

// TestSourcePortsRunOut runs, in a network namespace of its own whose
// net.ipv4.ip_local_port_range holds 1,000 ports, a backend where
// leastconn sends s1's source address 20 times what s2's gets, and 1,200
// clients. With hafeed's defaults s1's agent warns when its source passes
// 80% of its ports and caps its line at 900, so HAProxy sends the rest to
// s2: every client stays connected and no connect fails. With
// source_ports.cap: 0, as before, s1's source runs out and HAProxy's
// connects fail. It needs root for the namespace; without it, it is
// skipped and says so.
func TestSourcePortsRunOut(t *testing.T) {
	if os.Getenv(envInNetns) != "" {
		sourcePortsInNetns(t)
		return
	}
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: a network namespace with its own ip_local_port_range needs root (unshare --net)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("SKIPPED, NOT PASSED: unshare (util-linux) is not installed")
	}
	run := func(t *testing.T, hb haproxytest.Build, capped bool) {
		cmd := exec.Command(unshare, "--net", os.Args[0], "-test.run", "^TestSourcePortsRunOut$", "-test.v", "-test.count=1", "-test.timeout=3m")
		cmd.Env = append(os.Environ(), envInNetns+"=1", envBinDir+"="+filepath.Dir(hafeedBin),
			"HAFEED_E2E_CAP="+strconv.FormatBool(capped), "HAFEED_E2E_HAPROXY="+hb.Version)
		out, err := cmd.CombinedOutput()
		t.Logf("in the namespace:\n%s", out)
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestSourcePortsRunOut")) || !bytes.Contains(out, []byte("SOURCE PORTS")) {
			t.Fatalf("the run in the network namespace failed: %v", err)
		}
	}
	// hafeed's defaults on every tested HAProxy; the contrast, without the
	// cap, on the system's.
	t.Run("cap=true", func(t *testing.T) {
		t.Parallel()
		forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) { run(t, hb, true) })
	})
	t.Run("cap=false", func(t *testing.T) {
		t.Parallel()
		run(t, systemHAProxy, false)
	})
}

// sourcePortsInNetns is the test inside the namespace.
func sourcePortsInNetns(t *testing.T) {
	for _, c := range [][]string{{"ip", "link", "set", "lo", "up"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("60000 60999"), 0o644); err != nil {
		t.Fatalf("setting the namespace's port range: %v", err)
	}
	capped := os.Getenv("HAFEED_E2E_CAP") == "true"
	capShare := "0.9"
	if !capped {
		capShare = "0"
	}
	hb := systemHAProxy
	for _, b := range matrixHAProxies {
		if b.Version == os.Getenv("HAFEED_E2E_HAPROXY") {
			hb = b
		}
	}
	if hb.Version != os.Getenv("HAFEED_E2E_HAPROXY") {
		t.Fatalf("HAProxy %s is not among the builds (HAFEED_HAPROXY_BINS)", os.Getenv("HAFEED_E2E_HAPROXY"))
	}
	hp := newHAProxyOf(t, hb)
	var agents []*hafeed
	var ports, agentPorts []int
	for range 2 {
		app := startApp(t)
		h := startHafeed(t, hafeedOptions{config: sourcePortsConfig, appPort: app.port(), vars: map[string]string{"Cap": capShare}})
		agents = append(agents, h)
		ports, agentPorts = append(ports, app.port()), append(agentPorts, h.agentPort())
	}
	var cfg bytes.Buffer
	if err := sourcePortsHAProxy.Execute(&cfg, map[string]any{"Sock": hp.sock, "Frontend": hp.frontend, "Ports": ports, "Agents": agentPorts}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hp.cfgPath, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	hp.run()
	t.Cleanup(hp.stop)
	for _, s := range []string{"s1", "s2"} {
		if _, err := testutil.Wait(15*time.Second, func() error {
			if st := hp.stat(s); !strings.HasPrefix(st["agent_status"], "L7OK") {
				return errors.New("not polled")
			}
			return nil
		}); err != nil {
			t.Fatalf("%s not polled: %v", s, err)
		}
	}

	// 1,200 clients from four addresses, 50 a second: within a poll (1 s) of passing 80%, s1's
	// source is capped before it runs out.
	const n = 1200
	var clients []net.Conn
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
	})
	for i := range n {
		// A port of their own, outside the ephemeral range, which
		// HAProxy's connects share with every other connect here.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i%4)), Port: 20000 + i}}
		c, err := d.Dial("tcp", hp.frontend)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		clients = append(clients, c)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	// A client whose server-side connect failed has been closed by HAProxy.
	open := 0
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
	}
	s1, s2 := hp.stat("s1"), hp.stat("s2")
	econ := atoi(t, s1["econ"]) + atoi(t, s2["econ"])
	st := agents[0].status()
	t.Logf("SOURCE PORTS %s cap=%v: s1 (via 127.0.0.2) holds %s, s2 (via 127.0.0.3) %s; %d of %d clients connected; connect errors %d; s1's agent: %+v",
		hb.Name(), capped, s1["scur"], s2["scur"], open, n, econ, st.SourcePorts)
	if !capped {
		// The contrast: without the cap, s1's source runs out.
		if econ == 0 && open == n {
			t.Errorf("with source_ports.cap 0 no connect failed and every client stayed: the test did not run s1's source out of ports")
		}
		return
	}
	if open != n || econ != 0 {
		t.Errorf("%d of %d clients connected, %d connect errors; want every client connected and none", open, n, econ)
	}
	var row *struct{ usage float64 }
	for _, sp := range st.SourcePorts {
		if sp.Peer == "127.0.0.2" {
			row = &struct{ usage float64 }{sp.Usage}
			if sp.Maxconn != 900 || sp.Local != fmt.Sprintf("127.0.0.1:%d", ports[0]) || sp.Range != "60000-60999" || !strings.Contains(sp.RangeFrom, "ip_local_port_range") {
				t.Errorf("s1's agent's row for its source: %+v; want maxconn 900 toward s1's port over the namespace's range 60000-60999, read from ip_local_port_range", sp)
			}
		}
	}
	if row == nil || row.usage < 0.8 {
		t.Errorf("s1's agent shows no source 127.0.0.2 past 80%%: %+v", st.SourcePorts)
	}
	if got := atoi(t, s1["scur"]); got > 900 {
		t.Errorf("s1 holds %d, over the 900 its line was capped at", got)
	}
	// The whole log: logs() keeps only its tail, and the warning is logged
	// once, early.
	log, _ := os.ReadFile(filepath.Join(agents[0].dir, "hafeed.log"))
	if want := fmt.Sprintf("of its 1000 source ports toward 127.0.0.1:%d", ports[0]); !bytes.Contains(log, []byte(want)) {
		t.Errorf("s1's agent logged no warning about its source's ports:\n%s", agents[0].logs())
	}
}
