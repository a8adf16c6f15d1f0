package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// fleetConfig is an agent of a farm whose figures an autoscaler reads: a
// runtime endpoint, a metrics listener, and fleet.settle from the test.
const fleetConfig = `
sources:
  cpu: none
  memory: none
policy:
  reference_capacity: 1000
  blackout: 0s
haproxy:
  - runtime: unix://{{.Sock}}
    backend: ws
    server: {{.Server}}
fleet:
  settle: {{.Settle}}
metrics:
  listen: "{{.Metrics}}"
`

// TestFleetFigures runs three hosts, s3 drained, with 10, 20 and 5
// connections, and checks `hafeed fleet --json` against HAProxy's own
// show stat on 2.6, 3.0 and 3.2: each server's state, weight and
// connections, the totals of the servers in rotation, desired_servers by
// HPA's formula, and the scale-in candidate (the ready server with fewest
// connections, none that changed state within fleet.settle). Every agent
// computes the same figures, GET /fleet serves them, and /metrics carries
// them as hafeed_backend_*.
func TestFleetFigures(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		hp := newHAProxyOf(t, hb)
		var agents []*hafeed
		var servers []haproxyServer
		for i, conns := range []int{10, 20, 5} {
			app := startApp(t)
			name := fmt.Sprintf("s%d", i+1)
			settle := "1s"
			if i == 1 {
				settle = "1h" // s2's agent skips every server: all changed state at start
			}
			h := startHafeed(t, hafeedOptions{config: fleetConfig, appPort: app.port(),
				vars: map[string]string{"Sock": hp.sock, "Server": name, "Settle": settle, "Metrics": testutil.FreeAddr(t)}})
			agents = append(agents, h)
			servers = append(servers, haproxyServer{Name: name, AppPort: app.port(), AgentPort: h.agentPort()})
			defer app.connect(conns) // direct: counted by the agent, not by HAProxy
		}
		hp.start(agentInter, servers...)
		for _, s := range servers {
			hp.waitPolled(s.Name)
		}
		agents[2].mustCLI("drain")
		hp.waitFor("s3", 5*time.Second, "drained", serverState.drained)
		// Sessions through HAProxy: leastconn spreads them over s1 and s2.
		var clients []net.Conn
		t.Cleanup(func() {
			for _, c := range clients {
				c.Close()
			}
		})
		for range 30 {
			c, err := net.Dial("tcp", hp.frontend)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		time.Sleep(1500 * time.Millisecond) // past s1's and s3's fleet.settle
		var figures []control.Fleet
		testutil.Poll(t, 10*time.Second, "HAProxy and hafeed fleet agreeing", func() error {
			figures = figures[:0]
			for _, h := range agents {
				out, code := h.cli("fleet", "--json")
				if code != 0 {
					return fmt.Errorf("hafeed fleet on %s: exit %d: %s", h.agentAddr, code, out)
				}
				var f control.Fleet
				if err := json.Unmarshal([]byte(out), &f); err != nil {
					return err
				}
				figures = append(figures, f)
			}
			return fleetMatchesStat(t, hp, figures[0])
		})
		f := figures[0]
		t.Logf("FLEET %s: %d of %d in rotation, %d connections of %d, utilisation %.3f, desired %d, scale-in %q",
			hb.Name(), f.InRotation, len(f.Servers), f.Connections, f.CapacityConnections, f.Utilisation, f.DesiredServers, f.ScaleInCandidate)
		want := 1 // 30 connections on 2 hosts of ~1000: ceil(2 × 0.015/0.75)
		if f.InRotation != 2 || f.Connections != 30 || f.DesiredServers != want {
			t.Errorf("in rotation %d, connections %d, desired %d; want 2, 30, %d", f.InRotation, f.Connections, f.DesiredServers, want)
		}
		s1, s2 := atoi(t, hp.stat("s1")["scur"]), atoi(t, hp.stat("s2")["scur"])
		wantIn := "s1"
		if s2 < s1 {
			wantIn = "s2"
		}
		if f.ScaleInCandidate != wantIn {
			t.Errorf("scale-in candidate %q with s1 %d, s2 %d; want %s", f.ScaleInCandidate, s1, s2, wantIn)
		}
		// The same figures from every agent, fleet.settle aside.
		for i, g := range figures[1:] {
			if g.Connections != f.Connections || g.CapacityConnections != f.CapacityConnections || g.DesiredServers != f.DesiredServers {
				t.Errorf("agent %d computes %d/%d desired %d; agent 1 %d/%d desired %d", i+2, g.Connections, g.CapacityConnections, g.DesiredServers, f.Connections, f.CapacityConnections, f.DesiredServers)
			}
		}
		if g := figures[1]; g.ScaleInCandidate != "" || len(g.Skipped) != 2 || !strings.Contains(g.Skipped[0].Why, "fleet.settle") {
			t.Errorf("with fleet.settle 1h: candidate %q, skipped %+v; want none, both ready servers skipped as still settling", g.ScaleInCandidate, g.Skipped)
		}

		// GET /fleet and /metrics.
		resp, err := http.Get("http://" + agents[0].vars["Metrics"] + "/fleet")
		if err != nil {
			t.Fatal(err)
		}
		var web control.Fleet
		err = json.NewDecoder(resp.Body).Decode(&web)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || web.DesiredServers != f.DesiredServers || web.Backend != "ws" || len(web.Servers) != 3 {
			t.Errorf("GET /fleet = %d, %+v, %v; want the figures of hafeed fleet", resp.StatusCode, web, err)
		}
		metrics := scrape(t, agents[0].vars["Metrics"])
		for series, want := range map[string]float64{
			`hafeed_backend_connections{backend="ws"}`:                30,
			`hafeed_backend_servers{backend="ws",state="ready"}`:      2,
			`hafeed_backend_servers{backend="ws",state="drain"}`:      1,
			`hafeed_backend_desired_servers{backend="ws"}`:            float64(want),
			`hafeed_drain_cost_connections{backend="ws",server="s1"}`: float64(s1),
		} {
			if got, ok := metrics[series]; !ok || got != want {
				t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
			}
		}
		if got := metrics[`hafeed_backend_utilisation_ratio{backend="ws"}`]; math.Abs(got-f.Utilisation) > 0.01 {
			t.Errorf("hafeed_backend_utilisation_ratio = %v, want %v", got, f.Utilisation)
		}
		for _, s := range web.Servers {
			if want := "127.0.0.1:" + strconv.Itoa(atoi(t, strings.TrimPrefix(hp.stat(s.Name)["addr"], "127.0.0.1:"))); s.Address != want {
				t.Errorf("%s's address %q, want HAProxy's %q", s.Name, s.Address, want)
			}
		}
		checkAutoscalingDoc(t, agents[0].vars["Metrics"], metrics)
	})
}

// fleetMatchesStat checks a fleet's rows against HAProxy's show stat.
func fleetMatchesStat(t *testing.T, hp *haproxyProc, f control.Fleet) error {
	if len(f.Servers) != 3 {
		return fmt.Errorf("%d servers, want 3", len(f.Servers))
	}
	capacity := 0
	for _, s := range f.Servers {
		st := hp.stat(s.Name)
		state := map[bool]string{true: "drain", false: "ready"}[strings.HasPrefix(st["status"], "DRAIN")]
		if s.State != state || s.Connections != atoi(t, st["scur"]) || s.WeightPercent != atoi(t, st["uweight"]) {
			return fmt.Errorf("%s: %+v, HAProxy %s scur %s uweight %s", s.Name, s, st["status"], st["scur"], st["uweight"])
		}
		if s.CapacityConnections != s.WeightPercent*1000/100 {
			return fmt.Errorf("%s: capacity %d for weight %d%% of 1000", s.Name, s.CapacityConnections, s.WeightPercent)
		}
		if s.State == "ready" {
			capacity += s.CapacityConnections
		}
	}
	if f.CapacityConnections != capacity || f.Connections != 30 {
		return fmt.Errorf("totals %d of %d, want 30 of %d", f.Connections, f.CapacityConnections, capacity)
	}
	return nil
}

// scrape reads a /metrics page into series → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestAgentTextInShowStat checks what HAProxy shows of an agent reply's
// text in show stat's last_agt, on each tested version: the fleet figures
// could carry each host's measured utilisation there instead of deriving
// it from weights. An agent replies "up 100% u=0.42 #measured 0.42".
func TestAgentTextInShowStat(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() {
			ln.Close()
			wg.Wait()
		})
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, "up 100% u=0.42 #measured 0.42\n")
				c.Close()
			}
		})
		app := startApp(t)
		hp := newHAProxyOf(t, hb)
		hp.start(agentInter, haproxyServer{Name: "s1", AppPort: app.port(), AgentPort: ln.Addr().(*net.TCPAddr).Port})
		hp.waitPolled("s1")
		st := hp.stat("s1")
		t.Logf("AGENT TEXT %s: last_agt %q, agent_status %q, agent_desc %q", hb.Name(), st["last_agt"], st["agent_status"], st["agent_desc"])
		// What docs/AUTOSCALING.md says: an unknown word shows in last_agt,
		// the text after '#' does not (documented only after down, fail
		// and stopped).
		if !strings.Contains(st["last_agt"], "(u=0.42)") || strings.Contains(st["last_agt"], "measured") {
			t.Errorf("%s shows last_agt %q; docs/AUTOSCALING.md says an unknown word shows there, in parentheses, and the '#' text does not", hb.Name(), st["last_agt"])
		}
	})
}

// checkAutoscalingDoc checks docs/AUTOSCALING.md's recipes against a real
// agent: every JSON path they read from hafeed fleet --json or /fleet
// (jq's .field, KEDA's valueLocation, the fields of the servers filter)
// holds a value in the agent's /fleet, and every hafeed_ metric they name
// is on its /metrics. Their PromQL is run by TestPrometheusRules.
func checkAutoscalingDoc(t *testing.T, metricsAddr string, metrics map[string]float64) {
	t.Helper()
	doc, err := os.ReadFile("../docs/AUTOSCALING.md")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/fleet")
	if err != nil {
		t.Fatal(err)
	}
	var fleet map[string]any
	err = json.NewDecoder(resp.Body).Decode(&fleet)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range regexp.MustCompile(`jq -r \.([a-z_]+)`).FindAllStringSubmatch(string(doc), -1) {
		paths = append(paths, m[1])
	}
	for _, m := range regexp.MustCompile(`valueLocation: "([a-z_]+)"`).FindAllStringSubmatch(string(doc), -1) {
		paths = append(paths, m[1])
	}
	if len(paths) < 4 {
		t.Fatalf("found %d JSON paths in AUTOSCALING.md (%v): the patterns no longer match its recipes", len(paths), paths)
	}
	for _, p := range paths {
		if v, ok := fleet[p]; !ok || v == nil {
			t.Errorf("AUTOSCALING.md reads .%s, which /fleet does not have", p)
		}
	}
	servers, _ := fleet["servers"].([]any)
	if len(servers) == 0 {
		t.Fatal("/fleet has no servers")
	}
	first, _ := servers[0].(map[string]any)
	for _, field := range []string{"name", "address"} { // the pod-deletion-cost filter
		if _, ok := first[field]; !ok {
			t.Errorf("AUTOSCALING.md's servers filter reads .%s, which /fleet's servers do not have", field)
		}
	}
	names := map[string]bool{}
	for series := range metrics {
		names[strings.SplitN(series, "{", 2)[0]] = true
	}
	// Metric names, not recording rules (backend:hafeed_...:max).
	for _, m := range regexp.MustCompile(`(?:^|[^:a-z_])(hafeed_[a-z_]+)`).FindAllStringSubmatch(string(doc), -1) {
		if !names[m[1]] {
			t.Errorf("AUTOSCALING.md names the metric %s, which the agent does not export", m[1])
		}
	}
}
