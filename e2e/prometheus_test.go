package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/prometheustest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// prometheusFarmConfig is an agent whose backend figures Prometheus
// scrapes: a runtime endpoint and a metrics listener. reference_capacity
// is small, so that the test's few clients put the backend above
// fleet.target_utilisation.
const prometheusFarmConfig = `
sources:
  cpu: none
  memory: none
policy:
  reference_capacity: {{.Reference}}
  blackout: 0s
haproxy:
  - runtime: unix://{{.Sock}}
    backend: ws
    server: {{.Server}}
metrics:
  listen: "{{.Metrics}}"
`

// recorded maps each recording rule of deploy/prometheus/hafeed-rules.yml
// to the metric it takes the maximum of over the agents.
var recorded = map[string]string{
	"backend:hafeed_backend_connections:max":          "hafeed_backend_connections",
	"backend:hafeed_backend_capacity_connections:max": "hafeed_backend_capacity_connections",
	"backend:hafeed_backend_utilisation_ratio:max":    "hafeed_backend_utilisation_ratio",
	"backend:hafeed_backend_desired_servers:max":      "hafeed_backend_desired_servers",
	"backend_state:hafeed_backend_servers:max":        "hafeed_backend_servers",
}

// TestPrometheusRules runs Debian's Prometheus (HAFEED_PROMETHEUS) against
// two real agents and HAProxy, scraping and evaluating every second, with
// deploy/prometheus/hafeed-rules.yml loaded. The recording rules equal what
// the agents export, and the backend's connections what HAProxy's show stat
// counts for the servers in rotation, before and after s2 is drained, and
// after a1 is killed (a2's figures carry on alone). Then the alerts fire:
// HafeedAgentDown for a1, HafeedDrainNotFinishing for s2, which keeps its
// clients, and HafeedBackendAboveTarget, with the farm's figures in their
// annotations. The rules are loaded with each for: duration in seconds
// where the file has minutes (for: 2m becomes for: 2s), so that they fire
// within the test; nothing else of the file is changed. Last, the PromQL of
// docs/AUTOSCALING.md's recipes returns the agents' figures.
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	bins := prometheustest.Require(t)
	const clients, reference = 10, 4
	hp := newHAProxy(t)
	var agents []*hafeed
	var servers []haproxyServer
	for i := range 2 {
		app := startApp(t)
		name := fmt.Sprintf("s%d", i+1)
		h := startHafeed(t, hafeedOptions{config: prometheusFarmConfig, appPort: app.port(),
			vars: map[string]string{"Sock": hp.sock, "Server": name, "Reference": strconv.Itoa(reference), "Metrics": testutil.FreeAddr(t)}})
		agents = append(agents, h)
		servers = append(servers, haproxyServer{Name: name, AppPort: app.port(), AgentPort: h.agentPort()})
	}
	hp.start(agentInter, servers...)
	for _, s := range servers {
		hp.waitPolled(s.Name)
	}
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range clients {
		c, err := net.Dial("tcp", hp.frontend)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	a1, a2 := agents[0].vars["Metrics"], agents[1].vars["Metrics"]
	prom := startPrometheus(t, bins, shortenedRules(t), a1, a2)

	inRotation := func(names ...string) func() int {
		return func() int {
			n := 0
			for _, name := range names {
				n += atoi(t, hp.stat(name)["scur"])
			}
			return n
		}
	}
	took := recordedMatch(t, prom, []string{a1, a2}, inRotation("s1", "s2"), 2)
	t.Logf("PROMETHEUS %s: recording rules equal to both agents' figures %v after Prometheus started", bins.Version, took.Round(time.Millisecond))

	drainedAt := agents[1].mustCLI("drain")
	hp.waitFor("s2", 5*time.Second, "drained", serverState.drained)
	took = recordedMatch(t, prom, []string{a1, a2}, inRotation("s1"), 1)
	t.Logf("PROMETHEUS: s2 drained, recording rules follow within %v", took.Round(time.Millisecond))

	killedAt := time.Now()
	agents[0].kill9()
	down := waitAlert(t, prom, "HafeedAgentDown", map[string]string{"instance": a1, "job": "hafeed"}, 30*time.Second)
	t.Logf("PROMETHEUS: a1 killed, HafeedAgentDown firing %v later (for: 2s)", time.Since(killedAt).Round(time.Millisecond))
	if !strings.Contains(down.Annotations["summary"], a1) {
		t.Errorf("HafeedAgentDown's summary %q does not name %s", down.Annotations["summary"], a1)
	}
	// a1's series are stale now: the rules carry a2's figures alone.
	recordedMatch(t, prom, []string{a2}, inRotation("s1"), 1)

	above := waitAlert(t, prom, "HafeedBackendAboveTarget", map[string]string{"backend": "ws"}, 30*time.Second)
	a2m := scrape(t, a2)
	desired, ready := a2m[`hafeed_backend_desired_servers{backend="ws"}`], a2m[`hafeed_backend_servers{backend="ws",state="ready"}`]
	t.Logf("PROMETHEUS: HafeedBackendAboveTarget: %s", above.Annotations["description"])
	if above.Value != desired || desired <= ready {
		t.Errorf("HafeedBackendAboveTarget value %v, a2 exports desired %v for %v ready: want the value desired, above ready", above.Value, desired, ready)
	}
	if want := fmt.Sprintf("needs %v servers for fleet.target_utilisation and has %v in rotation (utilisation ", desired, ready); !strings.Contains(above.Annotations["description"], want) {
		t.Errorf("HafeedBackendAboveTarget's description %q, want it to contain %q", above.Annotations["description"], want)
	}

	drain := waitAlert(t, prom, "HafeedDrainNotFinishing", map[string]string{"instance": a2}, time.Until(drainedAt.Add(time.Minute)))
	t.Logf("PROMETHEUS: HafeedDrainNotFinishing firing %v after the drain (for: 30s), %v connections left",
		time.Since(drainedAt).Round(time.Millisecond), drain.Value)
	if held := atoi(t, hp.stat("s2")["scur"]); drain.Value != scrape(t, a2)["hafeed_connections"] || held == 0 {
		t.Errorf("HafeedDrainNotFinishing value %v; a2 counts %v connections, HAProxy %d on s2", drain.Value, scrape(t, a2)["hafeed_connections"], held)
	}
	for _, a := range prom.alerts(t) {
		if a.Labels["alertname"] == "HafeedWeightAtFloorOrCap" {
			t.Errorf("HafeedWeightAtFloorOrCap is %s for %v, with weights %v", a.State, a.Labels, scrape(t, a2)["hafeed_weight_percent"])
		}
	}

	checkAutoscalingQueries(t, prom, a2m)
}

// recordedMatch waits until every recording rule's series equals the
// maximum of the figures the live agents export, the backend's connections
// equal what HAProxy counts on the servers in rotation (scur), and
// ready servers are in rotation. It returns how long that took.
func recordedMatch(t *testing.T, prom *prometheusProc, live []string, scur func() int, ready int) time.Duration {
	t.Helper()
	return testutil.Poll(t, 30*time.Second, "Prometheus' recording rules equal to the agents' figures and HAProxy's", func() error {
		want := map[string]float64{}
		for _, addr := range live {
			for series, v := range scrape(t, addr) {
				name, labels, _ := strings.Cut(series, "{")
				for rule, metric := range recorded {
					if name == metric {
						key := rule + "{" + labels
						if old, ok := want[key]; !ok || v > old {
							want[key] = v
						}
					}
				}
			}
		}
		if len(want) != len(recorded)+3 { // servers: ready, drain, maint and down
			return fmt.Errorf("the agents export %d of the recorded figures: %v", len(want), want)
		}
		if c := want[`backend:hafeed_backend_connections:max{backend="ws"}`]; c != float64(scur()) {
			return fmt.Errorf("the agents export %v connections, HAProxy has %d on the servers in rotation", c, scur())
		}
		if r := want[`backend_state:hafeed_backend_servers:max{backend="ws",state="ready"}`]; r != float64(ready) {
			return fmt.Errorf("the agents export %v servers in rotation, want %d", r, ready)
		}
		got := map[string]float64{}
		for rule := range recorded {
			samples, err := prom.query(rule)
			if err != nil {
				return testutil.Stop(err)
			}
			for _, s := range samples {
				got[s.series()] = s.Value
			}
		}
		for series, w := range want {
			if g, ok := got[series]; !ok || math.Abs(g-w) > 1e-9 {
				return fmt.Errorf("Prometheus has %s = %v (present %v), the agents %v", series, g, ok, w)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("Prometheus records %v, the agents export %v", got, want)
		}
		return nil
	})
}

// checkAutoscalingQueries runs the PromQL of docs/AUTOSCALING.md on the
// real Prometheus: the KEDA recipes' query: lines and every series it
// names in backquotes (metrics and recording rules). Each must return
// something, and what names desired_servers the backend's figure.
func checkAutoscalingQueries(t *testing.T, prom *prometheusProc, metrics map[string]float64) {
	t.Helper()
	doc, err := os.ReadFile("../docs/AUTOSCALING.md")
	if err != nil {
		t.Fatal(err)
	}
	var queries []string
	for _, m := range regexp.MustCompile(`(?m)^\s*query: (.+)$`).FindAllStringSubmatch(string(doc), -1) {
		queries = append(queries, m[1])
	}
	for _, m := range regexp.MustCompile("`((?:[a-z_]+:)?hafeed_[a-z_]+(?::[a-z0-9_]+)?(?:\\{[^}`]*\\})?)`").FindAllStringSubmatch(string(doc), -1) {
		if !slices.Contains(queries, m[1]) {
			queries = append(queries, m[1])
		}
	}
	if !slices.ContainsFunc(queries, func(q string) bool { return strings.HasPrefix(q, "backend:") }) || len(queries) < 5 {
		t.Fatalf("found %v in AUTOSCALING.md: the patterns no longer match its queries and recording rules", queries)
	}
	desired := metrics[`hafeed_backend_desired_servers{backend="ws"}`]
	for _, q := range queries {
		samples, err := prom.query(q)
		switch {
		case err != nil:
			t.Errorf("AUTOSCALING.md's %s: %v", q, err)
		case len(samples) == 0:
			t.Errorf("AUTOSCALING.md's %s returns nothing from Prometheus with hafeed-rules.yml loaded", q)
		case strings.Contains(q, "desired_servers") && samples[0].Value != desired:
			t.Errorf("AUTOSCALING.md's %s = %v, the agent exports desired_servers %v", q, samples[0].Value, desired)
		}
	}
	t.Logf("PROMETHEUS: AUTOSCALING.md's %d queries run: %v", len(queries), queries)
}

// shortenedRules writes deploy/prometheus/hafeed-rules.yml with every
// "for: Nm" read as "for: Ns", into a temporary folder, and returns its path.
func shortenedRules(t *testing.T) string {
	t.Helper()
	rules, err := os.ReadFile("../deploy/prometheus/hafeed-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	forMinutes := regexp.MustCompile(`(?m)^(\s+for: \d+)m$`)
	if n := len(forMinutes.FindAll(rules, -1)); n != 4 {
		t.Fatalf("hafeed-rules.yml has %d alerts with for: in minutes, want 4: adjust shortenedRules", n)
	}
	path := filepath.Join(t.TempDir(), "hafeed-rules.yml")
	if err := os.WriteFile(path, forMinutes.ReplaceAll(rules, []byte("${1}s")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// --- prometheus ---

// prometheusProc is a Prometheus server that scrapes the agents and
// evaluates the rules every second, until the test ends.
type prometheusProc struct {
	addr    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when prometheus has exited
	exitErr error
	out     *syncBuffer
}

// startPrometheus runs Prometheus on a free loopback port with its storage
// in a temporary folder, scraping targets as job hafeed, and waits until
// it is ready.
func startPrometheus(t *testing.T, bins prometheustest.Bins, rules string, targets ...string) *prometheusProc {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: hafeed
    static_configs:
      - targets: ["%s"]
`, rules, strings.Join(targets, `", "`))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheusProc{addr: testutil.FreeAddr(t), out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bins.Prometheus,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("prometheus's log:\n%s", p.out)
		}
	})
	err := awaitStarted(p.exited, func() bool {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w: %v", err, p.exitErr)
		}
		t.Fatalf("prometheus on %s: %v\n%s", p.addr, err, p.out)
	}
	return p
}

// stop ends Prometheus with SIGTERM, and SIGKILL after 10 s.
func (p *prometheusProc) stop(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		testutil.Recv(t, p.exited, 10*time.Second, "prometheus to exit after SIGKILL")
		t.Errorf("prometheus did not stop within 10s of SIGTERM\n%s", p.out)
	}
}

// promSample is one series of an instant query's result.
type promSample struct {
	Labels map[string]string
	Value  float64
}

// series writes the sample as name{label="value",...}, labels sorted.
func (s promSample) series() string {
	var labels []string
	for k, v := range s.Labels {
		if k != "__name__" {
			labels = append(labels, fmt.Sprintf("%s=%q", k, v))
		}
	}
	slices.Sort(labels)
	return s.Labels["__name__"] + "{" + strings.Join(labels, ",") + "}"
}

// apiGet reads one reply of Prometheus' HTTP API into data.
func (p *prometheusProc) apiGet(path string, params url.Values, data any) error {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + p.addr + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var reply struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return fmt.Errorf("GET %s: %d: %v", path, resp.StatusCode, err)
	}
	if reply.Status != "success" {
		return fmt.Errorf("GET %s?%s: %s: %s", path, params.Encode(), reply.Status, reply.Error)
	}
	return json.Unmarshal(reply.Data, data)
}

// query runs an instant query: /api/v1/query.
func (p *prometheusProc) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.apiGet("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: a %s, not a vector", expr, data.ResultType)
	}
	var out []promSample
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %q: %v", expr, s, err)
		}
		out = append(out, promSample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// promAlert is one alert of /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       string
	Value       float64
}

func (p *prometheusProc) alerts(t *testing.T) []promAlert {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
			Value       string            `json:"value"`
		} `json:"alerts"`
	}
	if err := p.apiGet("/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	var out []promAlert
	for _, a := range data.Alerts {
		v, err := strconv.ParseFloat(a.Value, 64)
		if err != nil {
			t.Fatalf("alert %v: value %q: %v", a.Labels, a.Value, err)
		}
		out = append(out, promAlert{Labels: a.Labels, Annotations: a.Annotations, State: a.State, Value: v})
	}
	return out
}

// waitAlert waits until the alert with those labels fires, and returns it.
func waitAlert(t *testing.T, prom *prometheusProc, name string, labels map[string]string, limit time.Duration) promAlert {
	t.Helper()
	var found promAlert
	testutil.Poll(t, limit, name+" firing", func() error {
		var seen []string
		for _, a := range prom.alerts(t) {
			seen = append(seen, fmt.Sprintf("%s %v", a.State, a.Labels))
			match := a.Labels["alertname"] == name
			for k, v := range labels {
				match = match && a.Labels[k] == v
			}
			if match && a.State == "firing" {
				found = a
				return nil
			}
		}
		return fmt.Errorf("alerts: %v", seen)
	})
	return found
}
