package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/internal/wstest"
)

// closedLoopApp is a WebSocket echo server whose CPU grows with its
// connections: each costs COST_US microseconds of CPU a second. The
// process's whole CPU time (process.cpuUsage), echoes and timers included,
// is held to what its connections are owed, so that its CPU is
// connections × cost, as on a host whose sockets cause its load; an idle
// server uses only what it needs.
const closedLoopApp = `'use strict';
const http = require('node:http');
const { WebSocketServer } = require('ws');
const costUs = Number(process.env.COST_US);
const server = http.createServer((req, res) => { res.writeHead(426); res.end(); });
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));

const tickMs = 20;
const cpu = () => { const u = process.cpuUsage(); return u.user + u.system; };
let owed = 0; // CPU microseconds the connections are owed and did not get yet
let lastCPU = cpu();
let lastAt = process.hrtime.bigint();
setInterval(() => {
  const now = process.hrtime.bigint();
  owed += wss.clients.size * costUs * Number(now - lastAt) / 1e9;
  lastAt = now;
  let used = cpu();
  owed -= used - lastCPU;
  // Burn what is owed, leaving a quarter of the tick to the sockets.
  const until = now + BigInt(Math.round(tickMs * 0.75 * 1e6));
  while (owed > 0 && process.hrtime.bigint() < until) {
    const c = cpu();
    owed -= c - used;
    used = c;
  }
  lastCPU = used;
  // Work beyond the cost is no credit, and a starved process catches up
  // at most 200 ms.
  owed = Math.min(Math.max(owed, 0), 200000);
}, tickMs);
// What it holds and burns, for the test's diagnostics.
let reportCPU = cpu();
setInterval(() => {
  const c = cpu();
  console.error(` + "`" + `${wss.clients.size} connections, ${((c - reportCPU) / 5000).toFixed(1)} ms of CPU a second` + "`" + `);
  reportCPU = c;
}, 5000);
process.on('SIGTERM', () => process.exit(0));
`

// closedLoopConfig is a host of the closed loop: its application's CPU
// against a target at which it holds loopCapacity connections, the runtime
// API without backend or server (a dynamic farm: the agent finds the
// server the autoscaler added), rebalancing so that a host added under
// load fills up, and every other key, fleet.* included, at its default.
const closedLoopConfig = `
sources:
  cpu: process
  pid: {{.Pid}}
  # The hosts share this machine: its memory is none of theirs.
  memory: none
policy:
  reference_capacity: {{.Reference}}
  targets:
    cpu: {{.CPUTarget}}
haproxy:
  - runtime: unix://{{.Sock}}
rebalance:
  enabled: true
`

// closedLoopHAProxy is a leastconn backend with no server: the autoscaler
// adds every one at run time.
var closedLoopHAProxy = template.Must(template.New("cfg").Parse(`global
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
`))

const (
	// loopCapacity is the connections a host holds at its CPU target, its
	// utilisation 1.0: reference_capacity.
	loopCapacity = 200
	// loopCostMicros is the CPU a connection costs a second. 200 of them
	// on 2 CPUs are 10% of the machine, the CPU target; 525 clients burn
	// half a core in all.
	loopCostMicros = 1000
	// loopTarget is fleet.target_utilisation's default: the load calls
	// for ceil(clients / (loopTarget × loopCapacity)) hosts.
	loopTarget = 0.75
	// loopMinHosts is the fewest hosts the autoscaler runs: the recipe's
	// min, as KEDA's minReplicaCount in docs/AUTOSCALING.md.
	loopMinHosts = 2
	// loopTick is how often the autoscaler reads the fleet figures (the
	// recipe's 15–30 s, shortened to fit the test).
	loopTick = time.Second
	// loopScaleInWindow is how long desired_servers must stay below the
	// hosts in rotation before one goes: the recipe's window, HPA's
	// scale-down stabilisation, 5 minutes by default, shortened to fit
	// steps 45 s apart, and long enough that clients leaving over a few
	// seconds count as one change.
	loopScaleInWindow = 10 * time.Second
	// loopFollowLimit and loopDisconnectLimit are issue 18's targets.
	loopFollowLimit     = 60 * time.Second
	loopDisconnectLimit = 5 * time.Second
	// loopHold is how long the farm must keep following before the next
	// step, and loopStep the least a step lasts.
	loopHold = 15 * time.Second
	loopStep = 45 * time.Second
)

// TestClosedLoop runs issue 18's closed loop: the autoscaler of
// docs/AUTOSCALING.md's VM-farm recipe (loopAutoscaler) drives a real
// HAProxy with add server / del server, in front of Node.js WebSocket
// servers whose CPU grows with their connections, each with a hafeed that
// measures that CPU. Reconnecting WebSocket clients step from 225 (two
// hosts' worth at the target utilisation) up to 525 (four) and back, 150 at
// a time.
//
// The farm follows the load when the autoscaler has nothing left to do on
// fresh figures, and they are right: every host in service is in rotation,
// in_rotation equals desired_servers, it is the count the load calls for,
// ceil(clients / (0.75 × 200)), and the utilisation is at or under the top
// of the target band, target × (1 + tolerance). It may sit under the band:
// HPA's formula rounds up, so 225 clients on two hosts are 0.56, and one
// host would be 1.1. Each step must be followed within 60 s of its start
// (the first client of a rise arriving, or the clients of a fall leaving)
// and stay so to the step's end, without ever running more hosts than the
// larger of the counts before and after. Every client stays connected, no
// message is lost, and no client is disconnected for more than 5 s.
//
// It runs alone (not parallel), one HAProxy line after another: the hosts'
// capacity is CPU, which other tests would share. Each line takes about
// four minutes, so it runs on the lines envClosedLoop names: unset, the
// system's only, and the others show as skipped subtests that say so.
func TestClosedLoop(t *testing.T) {
	choice := os.Getenv(envClosedLoop)
	ran := 0
	for _, hb := range append([]haproxytest.Build{systemHAProxy}, matrixHAProxies...) {
		t.Run(hb.Name(), func(t *testing.T) {
			if !closedLoopOn(hb, choice) {
				t.Skipf("NOT RUN on %s: %s=%q chooses the HAProxy lines (unset: the system's only); make test-closedloop runs every line", hb.Version, envClosedLoop, choice)
			}
			ran++
			closedLoop(t, hb)
		})
	}
	if len(matrixHAProxies) == 0 {
		t.Run("haproxy-3.x", func(t *testing.T) { t.Skip(haproxytest.MatrixUnset) })
	}
	if ran == 0 {
		t.Fatalf("%s=%q names no HAProxy build of this run (the system's %s and %s's)", envClosedLoop, choice, systemHAProxy.Version, haproxytest.EnvBins)
	}
}

// envClosedLoop names the HAProxy lines the closed loop runs on: "all", or
// major.minor versions separated by commas ("2.6,3.2"); unset, the
// system's only.
const envClosedLoop = "HAFEED_CLOSEDLOOP"

// closedLoopOn tells whether choice (envClosedLoop's value) names hb.
func closedLoopOn(hb haproxytest.Build, choice string) bool {
	switch choice {
	case "":
		return hb == systemHAProxy
	case "all":
		return true
	}
	for _, v := range strings.Split(choice, ",") {
		if strings.TrimSpace(v) == fmt.Sprintf("%d.%d", hb.Major, hb.Minor) {
			return true
		}
	}
	return false
}

// closedLoop is TestClosedLoop on one HAProxy build.
func closedLoop(t *testing.T, hb haproxytest.Build) {
	cpus := hostCPUs(t)
	dir := npmExample(t, "node-ws")
	if err := os.WriteFile(filepath.Join(dir, "closedloop.js"), []byte(closedLoopApp), 0o644); err != nil {
		t.Fatal(err)
	}
	hp := newHAProxyOf(t, hb)
	var cfg strings.Builder
	if err := closedLoopHAProxy.Execute(&cfg, map[string]string{"Sock": hp.sock, "Frontend": hp.frontend}); err != nil {
		t.Fatal(err)
	}
	hp.startConfig(cfg.String())

	// A host's CPU is a share of all the CPUs (sources.cpu: process), so
	// the target is what loopCapacity connections cost of them.
	cpuTarget := float64(loopCapacity) * loopCostMicros / 1e6 / float64(cpus)
	as := &loopAutoscaler{t: t, hp: hp, appDir: dir, start: time.Now(), next: 1, vars: map[string]string{
		"Sock": hp.sock, "Reference": strconv.Itoa(loopCapacity), "CPUTarget": strconv.FormatFloat(cpuTarget, 'f', -1, 64),
	}}
	t.Logf("CLOSED LOOP %s, %d CPUs (%s): a connection costs %d µs of CPU a second, policy.targets.cpu %.3f, reference_capacity %d",
		hb.Name(), cpus, machineLoad(), loopCostMicros, cpuTarget, loopCapacity)
	for range loopMinHosts {
		as.add()
	}
	load := &loopLoad{t: t, target: "ws://" + hp.frontend + "/"}

	type result struct {
		from, to, hostsBefore, hostsAfter int
		followed                          time.Duration
		fleet                             control.Fleet
		longest                           time.Duration
		// away are the clients not connected at the step's end; lost the
		// messages whose echo never came.
		away, lost, reconnects int
	}
	var results []result
	for i, clients := range []int{225, 375, 525, 375, 225} {
		from, hostsBefore := load.clients(), len(as.hosts)
		began := load.set(clients)
		minimum := loopStep
		if i == 0 {
			// The first fall then comes 130 s after the first hosts
			// joined, when they are about to leave fleet.settle (2
			// minutes from their last change of state in HAProxy, the
			// end of their 30 s slowstart): a farm that just grew is not
			// shrunk within minutes.
			minimum = 40 * time.Second
			load.awaitConnected(30 * time.Second)
		}
		want := int(math.Ceil(float64(clients) / (loopTarget * loopCapacity)))
		followed, f, peak := as.follow(want, began, minimum)
		if top := max(hostsBefore, want); peak > top {
			t.Errorf("step %d (%d→%d clients): the farm ran %d hosts, more than the %d before and after: it overshot the load", i, from, clients, peak, top)
		}
		r := result{from: from, to: clients, hostsBefore: hostsBefore, hostsAfter: len(as.hosts), followed: followed, fleet: f}
		if r.followed > loopFollowLimit {
			t.Errorf("step %d (%d→%d clients): the farm followed the load after %v, more than %v", i, from, clients, r.followed.Round(time.Millisecond), loopFollowLimit)
		}
		if r.hostsAfter != want {
			t.Errorf("step %d (%d→%d clients): %d hosts at the step's end, want %d", i, from, clients, r.hostsAfter, want)
		}
		for _, s := range load.check() {
			r.away += s.Clients - s.Connected
		}
		for _, s := range load.all() {
			r.longest = max(r.longest, s.LongestDisconnect)
			r.lost += s.Lost
			r.reconnects += s.Reconnects
		}
		results = append(results, r)
		t.Logf("CLOSED LOOP step %d (%d→%d clients): hosts %d→%d after %.1f s, utilisation %.3f (desired %d, band top %.3f); %s; longest disconnect %v, clients lost %d (messages lost %d), reconnects %d",
			i, from, clients, hostsBefore, r.hostsAfter, followed.Seconds(), f.Utilisation, f.DesiredServers,
			f.TargetUtilisation*(1+f.Tolerance), perHost(f), r.longest.Round(time.Millisecond), r.away, r.lost, r.reconnects)
	}
	var summary []string
	away := 0
	for i, r := range results {
		away = max(away, r.away)
		if i == 0 {
			continue // the start, not a step of the load
		}
		summary = append(summary, fmt.Sprintf("step %d %d→%d clients: hosts %d→%d in %.0f s, utilisation %.2f",
			i, r.from, r.to, r.hostsBefore, r.hostsAfter, r.followed.Seconds(), r.fleet.Utilisation))
	}
	t.Logf("CLOSED LOOP summary on %s: %s; longest disconnect %v, clients lost %d, messages lost %d",
		hb.Name(), strings.Join(summary, "; "), load.longest().Round(time.Millisecond), away, load.lost())
}

// perHost renders each server's connections and weight.
func perHost(f control.Fleet) string {
	var parts []string
	for _, s := range f.Servers {
		parts = append(parts, fmt.Sprintf("%s %s %d conns weight %d%%", s.Name, s.State, s.Connections, s.WeightPercent))
	}
	return strings.Join(parts, ", ")
}

// hostCPUs counts the CPUs as hafeed does (the cpuN lines of /proc/stat):
// a process's CPU is a share of all of them.
func hostCPUs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		name, _, _ := strings.Cut(line, " ")
		if num, ok := strings.CutPrefix(name, "cpu"); ok {
			if _, err := strconv.Atoi(num); err == nil {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no cpuN line in /proc/stat")
	}
	return n
}

// machineLoad is the machine's load average and TCP sockets in use: every
// host of the farm shares its CPUs, and every agent's connection count
// walks the kernel's one table of sockets, other tests' included (a count
// that takes long is taken less often: sources.count_budget).
func machineLoad() string {
	load, _ := os.ReadFile("/proc/loadavg")
	sockstat, _ := os.ReadFile("/proc/net/sockstat")
	tcp := "?"
	for line := range strings.Lines(string(sockstat)) {
		if rest, ok := strings.CutPrefix(line, "TCP: inuse "); ok {
			tcp, _, _ = strings.Cut(rest, " ")
		}
	}
	avg, _, _ := strings.Cut(string(load), " ")
	return fmt.Sprintf("load average %s, %s TCP sockets on the machine", avg, tcp)
}

// loopAutoscaler is docs/AUTOSCALING.md's recipe for a VM farm with add
// server / del server, as a test helper. Every tick it reads hafeed fleet
// --json from a host's agent; it adds a host (its app, then its hafeed in
// maint, add server, enable agent and health, hafeed ready) when
// desired_servers exceeds the hosts in service, and removes the
// scale_in_candidate (drain --wait, then maint and del server, then stops
// the host) once desired_servers has stayed below them for
// loopScaleInWindow. It acts only on figures read after its last change,
// and only while HAProxy has every host it runs in rotation, so that it
// never acts twice on one view; it removes one host at a time.
type loopAutoscaler struct {
	t      *testing.T
	hp     *haproxyProc
	appDir string
	// vars are the hosts' config values that all share.
	vars  map[string]string
	start time.Time // for the log's timestamps
	// hosts are in service, oldest first; next numbers the next one.
	hosts []*loopHost
	next  int
	// changed is when the last add or removal ended; below when
	// desired_servers went under the hosts in service (zero: it is not).
	changed, below time.Time
	// shown is when the figures were last logged.
	shown time.Time
	// waiting is the last reason logged for holding back, so that each is
	// logged once.
	waiting string
}

// loopHost is one host of the farm: its application and its agent.
type loopHost struct {
	name  string
	app   *loopApp
	agent *hafeed
}

func (a *loopAutoscaler) logf(format string, args ...any) {
	a.t.Helper()
	a.t.Logf("AUTOSCALER %6.1fs "+format, append([]any{time.Since(a.start).Seconds()}, args...)...)
}

// hold logs why the autoscaler does nothing, once per reason; the
// details of a reason (how long ago) do not count as a new one.
func (a *loopAutoscaler) hold(why string, details ...string) {
	a.t.Helper()
	if why != a.waiting {
		a.logf("waits: %s", strings.Join(append([]string{why}, details...), ": "))
		a.waiting = why
	}
}

// fleet reads hafeed fleet --json from the oldest host's agent that answers.
func (a *loopAutoscaler) fleet() (control.Fleet, error) {
	var errs []string
	for _, h := range a.hosts {
		out, code := h.agent.cli("fleet", "--json")
		if code != 0 {
			errs = append(errs, fmt.Sprintf("%s: exit %d: %s", h.name, code, strings.TrimSpace(out)))
			continue
		}
		var f control.Fleet
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", h.name, err))
			continue
		}
		return f, nil
	}
	return control.Fleet{}, fmt.Errorf("no agent gave the fleet figures: %s", strings.Join(errs, "; "))
}

// decide is one run of docs/AUTOSCALING.md's VM-farm recipe on figures f,
// with its names: running the hosts it runs, have in_rotation, want
// desired_servers.
func (a *loopAutoscaler) decide(f control.Fleet) {
	a.t.Helper()
	running, have, want := len(a.hosts), f.InRotation, f.DesiredServers
	switch {
	case !f.At.After(a.changed):
		a.hold("figures from before the last change")
	case have != running:
		a.hold(fmt.Sprintf("HAProxy has %d of the %d hosts in rotation", have, running))
	case want > have:
		a.below = time.Time{}
		a.logf("desired_servers %d > %d in rotation (utilisation %.3f, %d connections): adding a host", want, have, f.Utilisation, f.Connections)
		a.add()
	case want < have && have > loopMinHosts:
		if a.below.IsZero() {
			a.below = f.At
		}
		switch {
		case f.At.Sub(a.below) < loopScaleInWindow:
			a.hold(fmt.Sprintf("desired_servers %d < %d in rotation", want, have), fmt.Sprintf("for %v before a scale-in", loopScaleInWindow))
		case f.ScaleInCandidate == "":
			var skipped []string
			for _, s := range f.Skipped {
				skipped = append(skipped, s.Name+" "+s.Why)
			}
			a.hold(fmt.Sprintf("desired_servers %d < %d in rotation but no scale_in_candidate", want, have), strings.Join(skipped, "; "))
		default:
			a.logf("desired_servers %d < %d in rotation since %.1fs (utilisation %.3f, %d connections): removing %s",
				want, have, a.below.Sub(a.start).Seconds(), f.Utilisation, f.Connections, f.ScaleInCandidate)
			a.remove(f.ScaleInCandidate)
			a.below = time.Time{}
		}
	default:
		a.below = time.Time{}
		a.hold(fmt.Sprintf("desired_servers %d, %d in rotation", want, have))
	}
}

// add starts a host and brings it into service as docs/OPERATIONS.md's
// "add server and del server" says: its hafeed starts in maint (a state
// file), add server with every keyword, enable agent and health, then
// hafeed ready.
func (a *loopAutoscaler) add() {
	t := a.t
	t.Helper()
	name := fmt.Sprintf("ws%d", a.next)
	a.next++
	app := startLoopApp(t, a.appDir)
	vars := map[string]string{"Pid": strconv.Itoa(app.pid)}
	for k, v := range a.vars {
		vars[k] = v
	}
	agent := startHafeed(t, hafeedOptions{config: closedLoopConfig, appPort: app.port, admin: "maint", defaultInterval: true, vars: vars})
	cmds := []string{
		fmt.Sprintf("add server ws/%s 127.0.0.1:%d weight 100 agent-check agent-port %d agent-inter 1s check inter 2s slowstart 30s",
			name, app.port, agent.agentPort()),
		"enable agent ws/" + name,
		"enable health ws/" + name,
	}
	for _, c := range cmds {
		out := strings.TrimSpace(a.hp.mustRuntime(c))
		if out != "" && out != "New server registered." {
			t.Fatalf("%s: %q", c, out)
		}
	}
	agent.mustCLI("ready")
	a.hosts = append(a.hosts, &loopHost{name: name, app: app, agent: agent})
	a.changed = time.Now()
	a.logf("%s in service: app on 127.0.0.1:%d (pid %d), agent on %s", name, app.port, app.pid, agent.agentAddr)
}

// remove takes a host out of service as docs/AUTOSCALING.md's VM recipe
// does: hafeed drain --wait --shed-rate 50 on it, then "set server state
// maint; del server" in one line, then stops its agent and application.
func (a *loopAutoscaler) remove(name string) {
	t := a.t
	t.Helper()
	i := -1
	for j, h := range a.hosts {
		if h.name == name {
			i = j
		}
	}
	if i < 0 {
		t.Fatalf("scale_in_candidate %q is no host the autoscaler runs", name)
	}
	h := a.hosts[i]
	began := time.Now()
	out, code := h.agent.cli("drain", "--wait", "--shed-rate", "50", "--timeout", "30s", "--reason", "scale-in")
	if code != 0 {
		t.Fatalf("hafeed drain --wait on %s: exit %d: %s\n%s", name, code, out, h.agent.logs())
	}
	drained := time.Since(began)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	del := fmt.Sprintf("set server ws/%s state maint; del server ws/%s", name, name)
	if out := a.hp.mustRuntime(del); !strings.Contains(out, "Server deleted.") {
		t.Fatalf("%s: %q", del, out)
	}
	h.agent.stop()
	h.app.stop()
	a.hosts = append(a.hosts[:i], a.hosts[i+1:]...)
	a.changed = time.Now()
	a.logf("%s out of service: drain --wait took %v (%s), del server done, host stopped", name, drained.Round(time.Millisecond), lines[len(lines)-1])
}

// follow runs the autoscaler every loopTick until the farm follows the
// load (see TestClosedLoop) for want hosts and has done so for loopHold,
// and at least for minimum since began. It returns how long after began
// the farm followed for good, the last figures and the most hosts it ran;
// it fails the test if the farm did not follow within loopFollowLimit.
func (a *loopAutoscaler) follow(want int, began time.Time, minimum time.Duration) (time.Duration, control.Fleet, int) {
	t := a.t
	t.Helper()
	var since time.Time // when the farm last started following; zero: it does not
	var f control.Fleet
	var why string
	peak := len(a.hosts)
	for {
		now := time.Now()
		switch {
		case !since.IsZero() && now.Sub(since) >= loopHold && now.Sub(began) >= minimum:
			return since.Sub(began), f, peak
		case since.IsZero() && now.Sub(began) > loopFollowLimit:
			t.Fatalf("the farm did not follow the load for %d hosts within %v: %s\nlast figures: %s\n%s", want, loopFollowLimit, why, indentJSON(f), a.diagnose())
		}
		time.Sleep(loopTick)
		var err error
		if f, err = a.fleet(); err != nil {
			t.Fatal(err)
		}
		if f.At.Sub(a.shown) >= 5*time.Second {
			a.logf("fleet: utilisation %.3f, desired %d, in rotation %d: %s", f.Utilisation, f.DesiredServers, f.InRotation, perHost(f))
			a.shown = f.At
		}
		a.decide(f)
		peak = max(peak, len(a.hosts))
		switch top := f.TargetUtilisation * (1 + f.Tolerance); {
		case !f.At.After(a.changed):
			why = "figures from before the last change"
		case f.InRotation != len(a.hosts):
			why = fmt.Sprintf("%d of the %d hosts in rotation", f.InRotation, len(a.hosts))
		case f.DesiredServers != f.InRotation:
			why = fmt.Sprintf("desired_servers %d, in rotation %d", f.DesiredServers, f.InRotation)
		case f.InRotation != want:
			why = fmt.Sprintf("%d in rotation and desired, where the load calls for %d", f.InRotation, want)
		case f.Utilisation > top:
			why = fmt.Sprintf("utilisation %.3f above the band's top %.3f", f.Utilisation, top)
		default:
			why = ""
		}
		switch {
		case why != "":
			since = time.Time{}
		case since.IsZero():
			since = f.At
		}
	}
}

// diagnose is each host's view of itself, for a failure.
func (a *loopAutoscaler) diagnose() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", machineLoad())
	for _, h := range a.hosts {
		lines := strings.Split(strings.TrimSpace(h.app.out.String()), "\n")
		fmt.Fprintf(&b, "%s's app: %s\n", h.name, lines[len(lines)-1])
		resp, err := h.agent.call(control.CommandStatus)
		if err != nil || resp.Status == nil || resp.Status.Sample == nil {
			fmt.Fprintf(&b, "%s: no status (%v)\n", h.name, err)
			continue
		}
		s := resp.Status.Sample
		fmt.Fprintf(&b, "%s: %d connections (counted %v before the sample), utilisation %.3f, capacity %.0f, weight %d%%, model %+v: %s\n",
			h.name, s.Connections, s.At.Sub(s.Signals["connections"].At).Round(time.Millisecond), s.Utilisation, s.Capacity, s.WeightPercent, s.Model, s.Reason)
	}
	return b.String()
}

// loopApp is a closedLoopApp process.
type loopApp struct {
	cmd       *exec.Cmd
	pid, port int
	out       *syncBuffer
	exited    chan struct{}
	stopOnce  sync.Once
}

// startLoopApp runs closedLoopApp from dir, where npm installed ws.
func startLoopApp(t *testing.T, dir string) *loopApp {
	t.Helper()
	a := &loopApp{cmd: exec.Command("node", "closedloop.js"), out: &syncBuffer{}, exited: make(chan struct{})}
	a.cmd.Dir = dir
	a.cmd.Env = append(os.Environ(), "COST_US="+strconv.Itoa(loopCostMicros))
	a.cmd.Stderr = a.out
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(a.stop)
	stdout.(*os.File).SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("closedloop.js did not print its port within 10s: %v\n%s", err, a.out)
	}
	a.pid, a.port = a.cmd.Process.Pid, atoi(t, strings.TrimSpace(line))
	return a
}

// stop ends the application with SIGTERM, or SIGKILL after 5 s.
func (a *loopApp) stop() {
	a.stopOnce.Do(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(5 * time.Second):
			a.cmd.Process.Kill()
			<-a.exited
		}
	})
}

// loopLoad is the clients: layers of reconnecting WebSocket clients
// (wstest.Population), one pushed for each rise and the top one popped
// for each fall.
type loopLoad struct {
	t      *testing.T
	target string
	layers []*loopLayer
	// gone are the stats of the layers popped, when they were.
	gone []wstest.Stats
}

type loopLayer struct {
	pop    *wstest.Population
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *loopLoad) clients() int {
	n := 0
	for _, layer := range l.layers {
		n += layer.pop.Stats().Clients
	}
	return n
}

// set brings the clients to n and returns when the change began.
func (l *loopLoad) set(n int) time.Time {
	t := l.t
	t.Helper()
	cur := l.clients()
	switch {
	case n > cur:
		pop, err := wstest.NewPopulation(l.target, wstest.PopulationOptions{Clients: n - cur, RampUp: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		layer := &loopLayer{pop: pop, cancel: cancel, done: make(chan struct{})}
		began := time.Now()
		go func() {
			defer close(layer.done)
			pop.Run(ctx)
		}()
		t.Cleanup(func() {
			cancel()
			<-layer.done
		})
		l.layers = append(l.layers, layer)
		return began
	case n < cur:
		top := l.layers[len(l.layers)-1]
		if s := top.pop.Stats(); cur-s.Clients != n {
			t.Fatalf("the load falls from %d to %d clients, and its top layer holds %d", cur, n, s.Clients)
		}
		l.checkLayer(top.pop.Stats())
		began := time.Now()
		top.cancel()
		testutil.Recv(t, top.done, 30*time.Second, "the clients of the top layer to leave")
		l.gone = append(l.gone, top.pop.Stats())
		l.layers = l.layers[:len(l.layers)-1]
		return began
	}
	return time.Now()
}

// awaitConnected waits until every client is connected.
func (l *loopLoad) awaitConnected(limit time.Duration) {
	l.t.Helper()
	testutil.Poll(l.t, limit, "every client connected", func() error {
		for _, layer := range l.layers {
			if s := layer.pop.Stats(); s.Connected != s.Clients {
				return fmt.Errorf("%d of %d connected", s.Connected, s.Clients)
			}
		}
		return nil
	})
}

// check checks every layer in place and returns their stats.
func (l *loopLoad) check() []wstest.Stats {
	l.t.Helper()
	var stats []wstest.Stats
	for _, layer := range l.layers {
		s := layer.pop.Stats()
		l.checkLayer(s)
		stats = append(stats, s)
	}
	return stats
}

// checkLayer fails the test unless every client of a layer is connected,
// none lost a message or saw another's, and none was disconnected for
// more than loopDisconnectLimit.
func (l *loopLoad) checkLayer(s wstest.Stats) {
	l.t.Helper()
	if s.Connected != s.Clients {
		l.t.Errorf("%d of %d clients connected: %+v", s.Connected, s.Clients, s)
	}
	if s.Lost != 0 || s.Mismatched != 0 {
		l.t.Errorf("clients lost %d messages and saw %d mismatched, want none", s.Lost, s.Mismatched)
	}
	if s.LongestDisconnect > loopDisconnectLimit {
		l.t.Errorf("a client was disconnected for %v, more than %v", s.LongestDisconnect, loopDisconnectLimit)
	}
}

// longest is the longest disconnect of any client so far.
func (l *loopLoad) longest() time.Duration {
	var d time.Duration
	for _, s := range l.all() {
		d = max(d, s.LongestDisconnect)
	}
	return d
}

// lost is how many messages the clients lost so far.
func (l *loopLoad) lost() int {
	n := 0
	for _, s := range l.all() {
		n += s.Lost
	}
	return n
}

// all is the stats of every layer, in place or gone.
func (l *loopLoad) all() []wstest.Stats {
	stats := append([]wstest.Stats(nil), l.gone...)
	for _, layer := range l.layers {
		stats = append(stats, layer.pop.Stats())
	}
	return stats
}
