package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hafeed/hafeed/bench/internal/procstat"
	"github.com/hafeed/hafeed/internal/hafeedbin"
	"github.com/hafeed/hafeed/internal/supervise"
)

// farm is every process of the run.
type farm struct {
	o    options
	plan plan
	self string
	bin  string
	dir  string
	sup  *supervise.Supervisor

	hosts         []*host
	haproxies     []*haproxyProc
	clients       []*supervise.Child
	clientReports []*supervise.Reports[clientsReport]
	frontend      string
	rec           *recorder
}

// bench runs the whole benchmark and tears everything down, also when it
// fails; the results so far come back with the error.
func bench(ctx context.Context, o options) (res *results, err error) {
	res = &results{Machine: machine(), Options: optionsOf(o), LoadBefore: procstat.ReadLoadAvg()}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return res, err
	}
	low, high := procstat.PortRange()
	if _, err := haproxyCheck(); err != nil {
		return res, err
	}
	res.Machine.HAProxy = haproxyVersion()
	res.Machine.Somaxconn = procstat.ReadInt("/proc/sys/net/core/somaxconn")

	// Not under TMPDIR's long paths: the sockets' paths must stay short.
	dir, err := os.MkdirTemp("", "hfarm")
	if err != nil {
		return res, err
	}
	f := &farm{o: o, dir: dir, sup: supervise.New(filepath.Join(dir, "logs"))}
	defer func() {
		t := time.Now()
		if serr := f.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		logf("every process stopped in %s", time.Since(t).Round(time.Millisecond))
		if o.keep {
			logf("kept %s (configurations and logs)", dir)
		} else if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return res, err
	}
	if f.self, err = os.Executable(); err != nil {
		return res, err
	}
	ports, err := freePorts(2*(o.hosts+1)+2, low)
	if err != nil {
		return res, err
	}
	f.frontend = frontendIP + ":" + strconv.Itoa(ports[0])
	probeFrontend := frontendIP + ":" + strconv.Itoa(ports[1])
	for i := range o.hosts + 1 {
		f.hosts = append(f.hosts, &host{name: fmt.Sprintf("ws%d", i+1), port: ports[2+2*i], agentPort: ports[3+2*i]})
	}
	reserved, err := f.reservedFDs(ctx, probeFrontend)
	if err != nil {
		return res, fmt.Errorf("measuring HAProxy's own descriptors: %w", err)
	}
	p, err := newPlan(o.conns, o.hosts, o.haproxies, int(rl.Max), reserved, low, high)
	if err != nil {
		return res, err
	}
	f.plan = p
	res.Plan, res.PortPairs = p, p.portPairs()
	logf("plan: %d clients over %d hosts (+1 joining), %d HAProxies of at most %d each (RLIMIT_NOFILE %d: 2 a connection + %d), %d application processes a host, %d client processes",
		p.Conns, p.Hosts, p.HAProxies, p.MaxPerHAProxy, p.NoFile, p.Reserved, p.AppProcs, p.ClientProcs)
	for _, pp := range res.PortPairs {
		logf("  source ports: %s: %d of %d (%.0f%%)", pp.What, pp.Peak, pp.Range, pp.Share()*100)
	}
	f.bin = o.hafeedBin
	if f.bin == "" {
		f.bin = filepath.Join(dir, "hafeed")
		logf("building hafeed (go build ./cmd/hafeed)")
		if err := hafeedbin.Build(ctx, f.bin); err != nil {
			if errors.Is(err, hafeedbin.ErrNoModule) {
				err = fmt.Errorf("%w, or give -hafeed PATH", err)
			}
			return res, err
		}
	}
	if err := procstat.WaitTimeWait(ctx, o.twWait, logf); err != nil {
		return res, err
	}
	logf("starting %d hosts × %d application processes", len(f.hosts), p.AppProcs)
	for _, h := range f.hosts {
		if err := h.startApps(ctx, f.sup, f.self, p.AppProcs); err != nil {
			return res, err
		}
	}
	if o.probe {
		if res.Probe, err = f.probeOne(ctx, probeFrontend); err != nil {
			return res, fmt.Errorf("probing one HAProxy: %w", err)
		}
	}
	if err := f.startFarm(ctx); err != nil {
		return res, err
	}
	f.rec = &recorder{f: f}
	rctx, stopRec := context.WithCancel(ctx)
	defer stopRec()

	phases := []func(context.Context, *results) error{f.connect, f.steady, f.drain, f.rebalance}
	for i, phase := range phases {
		if i == 0 {
			f.rec.start = time.Now()
			go f.rec.run(rctx)
		}
		err = phase(ctx, res)
		res.Samples = f.rec.all()
		if err == nil {
			err = f.failed()
		}
		if err != nil {
			return res, err
		}
	}
	res.End = f.clientTotals()
	res.LoadAfter = procstat.ReadLoadAvg()
	return res, nil
}

// haproxyCheck says how to install HAProxy when it is missing.
func haproxyCheck() (string, error) {
	if v := haproxyVersion(); v != "unknown" {
		return v, nil
	}
	return "", errors.New("haproxy not found: install it with `sudo apt-get install haproxy`")
}

// stop ends every process: the clients first, so that none of them sees
// the farm go away and reconnects, then the rest at once.
func (f *farm) stop() error {
	var errs []error
	for _, c := range f.clients {
		errs = append(errs, f.sup.Stop(c))
	}
	errs = append(errs, f.sup.StopAll())
	return errors.Join(errs...)
}

// failed reports the first process of the farm that exited by itself.
func (f *farm) failed() error {
	procs := append([]*supervise.Child(nil), f.clients...)
	for _, h := range f.hosts {
		procs = append(procs, h.apps...)
		if h.agent != nil {
			procs = append(procs, h.agent)
		}
	}
	for _, hp := range f.haproxies {
		procs = append(procs, hp.proc)
	}
	for _, c := range procs {
		if c.Exited() {
			return fmt.Errorf("%s exited during the run: %v\n%s", c.Name, c.Err(), c.Tail())
		}
	}
	return nil
}

// servers are the server lines of the hosts.
func (f *farm) servers() []haproxyServer {
	var out []haproxyServer
	for _, h := range f.hosts {
		out = append(out, haproxyServer{Name: h.name, Addr: h.addr(), AgentPort: h.agentPort})
	}
	return out
}

// startClients starts client processes for n clients over rampUp against
// target, from the given source addresses, and waits for their first
// reports.
func (f *farm) startClients(ctx context.Context, target string, n int, sources []string, rampUp time.Duration) error {
	for i, src := range sources {
		share := n / len(sources)
		if i < n%len(sources) {
			share++
		}
		cmd, err := roleCommand(f.self, roleClients, clientsArgs{
			Target: "ws://" + target + "/", Source: src, Clients: share, RampUp: rampUp, Interval: f.o.interval,
			DialTimeout: f.o.dialTimeout,
		})
		if err != nil {
			return err
		}
		c, r, err := supervise.StartReporting[clientsReport](f.sup, "clients-"+src, cmd)
		if err != nil {
			return err
		}
		f.clients, f.clientReports = append(f.clients, c), append(f.clientReports, r)
	}
	for i, r := range f.clientReports {
		if _, err := r.AwaitFirst(ctx, f.clients[i], 15*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// stopClients stops every client process.
func (f *farm) stopClients() error {
	var errs []error
	for _, c := range f.clients {
		errs = append(errs, f.sup.Stop(c))
	}
	f.clients, f.clientReports = nil, nil
	return errors.Join(errs...)
}

// probeOne measures the most one HAProxy holds: it checks that HAProxy
// refuses a maxconn one past what the descriptor limit allows, then runs
// one at that maxconn, alone, without agents, and sends it more clients
// than it can hold.
func (f *farm) probeOne(ctx context.Context, frontend string) (*probeResult, error) {
	m := f.plan.MaxPerHAProxy
	// The configuration of the farm's HAProxies (agent-check included: no
	// agent answers yet, which changes nothing), so that it holds what
	// each of them can.
	spec := haproxySpec{Name: "probe", Frontend: frontend, Source: probeSource, Maxconn: m + 1, Agent: true, Servers: f.servers()}
	r := &probeResult{Maxconn: m, Tried: m + 500}
	var err error
	if r.RefusedAt, err = refusesMaxconn(ctx, f.dir, spec); err != nil {
		return nil, err
	}
	logf("probe: HAProxy with maxconn %d refuses to start: %s", m+1, r.RefusedAt)
	spec.Maxconn = m
	hp, err := startHAProxy(ctx, f.sup, f.dir, spec)
	if err != nil {
		return nil, err
	}
	defer f.sup.Stop(hp.proc)
	in, err := hp.info(ctx)
	if err != nil {
		return nil, err
	}
	r.UlimitN, r.Maxsock = in["Ulimit-n"], in["Maxsock"]
	rate := f.o.connectRate
	ramp := time.Duration(float64(r.Tried) / float64(rate) * float64(time.Second))
	logf("probe: one HAProxy (maxconn %d, ulimit-n %d), %d clients at %d/s", m, r.UlimitN, r.Tried, rate)
	start := time.Now()
	if err := f.startClients(ctx, frontend, r.Tried, []string{probeClientSource}, ramp); err != nil {
		return nil, err
	}
	defer f.stopClients()
	// Until it holds maxconn, or has held the same for 10 s after the
	// ramp-up.
	last, since := -1, time.Now()
	for {
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
		in, err := hp.info(ctx)
		if err != nil {
			return nil, err
		}
		cur := in["CurrConns"]
		r.Held = max(r.Held, cur)
		if cur != last {
			last, since = cur, time.Now()
		}
		ramped := time.Since(start) > ramp
		if cur >= m || (ramped && time.Since(since) > 10*time.Second) || time.Since(start) > ramp+time.Minute {
			break
		}
	}
	r.Seconds = time.Since(start).Seconds()
	apps := 0
	for _, h := range f.hosts {
		apps += h.conns()
	}
	c := f.clientTotals()
	r.Connected, r.AppConns = c.Connected, apps
	r.HeldFDs = openFDs(hp.proc.PID())
	logf("probe: held %d connections (CurrConns; %d clients connected, the applications %d, HAProxy %d descriptors open)", r.Held, c.Connected, apps, r.HeldFDs)
	return r, nil
}

// reservedFDs measures what HAProxy needs beyond two descriptors a
// connection, with the farm's configuration: Maxsock (show info) less
// twice maxconn.
func (f *farm) reservedFDs(ctx context.Context, frontend string) (int, error) {
	const maxconn = 1000
	hp, err := startHAProxy(ctx, f.sup, f.dir, haproxySpec{Name: "calibrate", Frontend: frontend, Source: probeSource,
		Maxconn: maxconn, Agent: true, Servers: f.servers()})
	if err != nil {
		return 0, err
	}
	defer f.sup.Stop(hp.proc)
	in, err := hp.info(ctx)
	if err != nil {
		return 0, err
	}
	if in["Maxsock"] <= 2*maxconn {
		return 0, fmt.Errorf("show info says Maxsock %d for maxconn %d", in["Maxsock"], maxconn)
	}
	return in["Maxsock"] - 2*maxconn, nil
}

// probeClientSource is the probe's clients' source address.
const probeClientSource = "127.0.3.10"

// openFDs counts a process's open descriptors, -1 when it cannot.
func openFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// startFarm starts the HAProxies, then the agents (the last host in
// maint), and waits until every HAProxy has heard from every agent.
func (f *farm) startFarm(ctx context.Context) error {
	logf("starting %d HAProxies on %s (SO_REUSEPORT), maxconn %d each", f.plan.HAProxies, f.frontend, f.plan.MaxPerHAProxy)
	var socks []string
	for i := range f.plan.HAProxies {
		hp, err := startHAProxy(ctx, f.sup, f.dir, haproxySpec{
			Name: fmt.Sprintf("haproxy%d", i+1), Frontend: f.frontend, Source: haproxySource(i),
			Maxconn: f.plan.MaxPerHAProxy, Agent: true, Servers: f.servers(),
		})
		if err != nil {
			return err
		}
		f.haproxies = append(f.haproxies, hp)
		socks = append(socks, hp.sock)
	}
	logf("starting %d agents (%s in maint)", len(f.hosts), f.hosts[len(f.hosts)-1].name)
	for i, h := range f.hosts {
		if err := h.startAgent(ctx, f.sup, f.bin, f.dir, socks, i == len(f.hosts)-1); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		waiting := f.notReady(ctx)
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("HAProxies not ready within a minute: waiting for %s", strings.Join(waiting, ", "))
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// notReady lists what the HAProxies do not show yet: the hosts in
// service up and polled, the spare in maint.
func (f *farm) notReady(ctx context.Context) []string {
	var waiting []string
	for _, hp := range f.haproxies {
		servers, err := hp.servers(ctx)
		if err != nil {
			waiting = append(waiting, hp.name+": "+err.Error())
			continue
		}
		for i, h := range f.hosts {
			s := servers[h.name]
			spare := i == len(f.hosts)-1
			switch {
			case spare && !strings.HasPrefix(s.Status, "MAINT"):
				waiting = append(waiting, hp.name+"/"+h.name+" in maint")
			case !spare && (!strings.HasPrefix(s.Status, "UP") || !strings.HasPrefix(s.AgentStatus, "L7OK")):
				waiting = append(waiting, hp.name+"/"+h.name+" up and polled")
			}
		}
	}
	return waiting
}

// connect starts the clients and waits until every one is connected and
// every application counts its connection.
func (f *farm) connect(ctx context.Context, res *results) error {
	n := f.plan.Conns
	var sources []string
	for i := range f.plan.ClientProcs {
		sources = append(sources, clientSource(i))
	}
	ramp := time.Duration(float64(n) / float64(f.o.connectRate) * float64(time.Second))
	logf("connecting %d clients at %d/s (ramp-up %s) from %s..%s", n, f.o.connectRate, ramp, sources[0], sources[len(sources)-1])
	res.event(f.rec, "clients start")
	start := time.Now()
	if err := f.startClients(ctx, f.frontend, n, sources, ramp); err != nil {
		return err
	}
	deadline := start.Add(ramp + 2*time.Minute)
	lastLog := time.Now()
	for {
		c := f.clientTotals()
		apps := f.totalConns()
		if c.Connected >= n && apps >= n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d clients connected, the applications count %d, %s after the start", c.Connected, n, apps, time.Since(start).Round(time.Second))
		}
		if time.Since(lastLog) > 10*time.Second {
			logf("  %d connected, applications %d, dial failures %d", c.Connected, apps, c.DialFailures)
			lastLog = time.Now()
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	res.Connect = connectResult{Clients: n, Rate: f.o.connectRate, RampUp: ramp.Seconds(), Seconds: time.Since(start).Seconds(),
		DialFailures: f.clientTotals().DialFailures}
	res.event(f.rec, "all connected")
	logf("%d clients connected in %.1f s (dial failures %d)", n, res.Connect.Seconds, res.Connect.DialFailures)
	return nil
}

// totalConns is the connections every application counts.
func (f *farm) totalConns() int {
	n := 0
	for _, h := range f.hosts {
		n += h.conns()
	}
	return n
}

// steady measures the agents over the steady window: CPU from
// /proc/PID/stat, RSS sampled every second, and what each says of its
// counts; and the balance of the hosts and of the HAProxies.
func (f *farm) steady(ctx context.Context, res *results) error {
	logf("settling %s, then measuring the agents for %s", f.o.settle, f.o.window)
	if err := sleepCtx(ctx, f.o.settle); err != nil {
		return err
	}
	t0 := f.rec.now()
	before := f.snapCPU()
	sockBefore := procstat.ReadSockstat()
	load0 := procstat.ReadLoadAvg()
	if err := sleepCtx(ctx, f.o.window); err != nil {
		return err
	}
	after := f.snapCPU()
	t1 := f.rec.now()
	st := &steadyResult{From: t0, To: t1, Seconds: after.at.Sub(before.at).Seconds(), Sockstat: sockBefore,
		HostBusy: before.host.BusyTo(after.host), LoadStart: load0, LoadEnd: procstat.ReadLoadAvg()}
	hz := float64(procstat.ClockTicks())
	window := f.rec.between(t0, t1)
	for i, h := range f.hosts {
		a := agentCost{Host: h.name}
		a.UserSeconds = float64(after.agents[i][0]-before.agents[i][0]) / hz
		a.SysSeconds = float64(after.agents[i][1]-before.agents[i][1]) / hz
		a.CPUPercent = (a.UserSeconds + a.SysSeconds) / st.Seconds * 100
		var conns float64
		for _, s := range window {
			a.RSSMiB = max(a.RSSMiB, float64(s.AgentRSSKiB[i])/1024)
			conns += float64(s.Hosts[i])
		}
		if len(window) > 0 {
			a.Conns = int(math.Round(conns / float64(len(window))))
		}
		if hwm, err := procstat.StatusKB(h.agent.PID(), "VmHWM"); err == nil {
			a.HWMMiB = float64(hwm) / 1024
		}
		if s, err := h.status(ctx); err == nil {
			a.Weight = -1
			if s.Sample != nil {
				a.Counted = s.Sample.Connections
				a.Weight = s.Sample.Decision.WeightPercent
				if c, ok := s.Sample.Signals["connections"]; ok {
					a.CountMs = float64(c.Duration) / 1e6
					a.CountAge = s.Sample.At.Sub(c.At).Seconds()
				}
			}
			a.Peers = len(s.Peers)
			a.Endpoints = len(s.HAProxy)
		}
		st.Agents = append(st.Agents, a)
	}
	st.GroupCores, st.GroupMiB = map[string]float64{}, map[string]float64{}
	for g, v := range after.byGroup {
		st.GroupCores[g] = float64(v-before.byGroup[g]) / hz / st.Seconds
		st.GroupMiB[g] = float64(after.rssGroup[g]) / 1024
	}
	st.MemAvailableMiB = float64(procstat.MemAvailableKB()) / 1024
	st.Imbalance, st.PerHost = imbalance(window, f.plan.Hosts, func(s sample) []int { return s.Hosts[:f.plan.Hosts] })
	st.HAProxySpread, st.PerHAProxy = imbalance(window, f.plan.HAProxies, func(s sample) []int { return s.HAProxies })
	res.Steady = st
	logf("steady: hosts max/mean %.3f, HAProxies max/mean %.3f, agents %s", st.Imbalance, st.HAProxySpread, st.agentsLine())
	return nil
}

// imbalance is the mean over samples of max/mean of pick's values, and
// each value's mean.
func imbalance(samples []sample, n int, pick func(sample) []int) (float64, []int) {
	sums := make([]float64, n)
	total, counted := 0.0, 0
	for _, s := range samples {
		v := pick(s)
		if len(v) != n {
			continue
		}
		hi, sum := 0, 0
		for i, x := range v {
			hi = max(hi, x)
			sum += x
			sums[i] += float64(x)
		}
		if sum > 0 {
			total += float64(hi) / (float64(sum) / float64(n))
			counted++
		}
	}
	means := make([]int, n)
	for i := range sums {
		if counted > 0 {
			means[i] = int(math.Round(sums[i] / float64(counted)))
		}
	}
	if counted == 0 {
		return 0, means
	}
	return total / float64(counted), means
}

// drain drains the first host with hafeed drain --wait at the shed rate,
// as an operator would, and follows the clients.
func (f *farm) drain(ctx context.Context, res *results) error {
	h := f.hosts[0]
	before := f.clientTotals()
	tcpBefore := procstat.TCPExt()
	held := h.conns()
	args := []string{"drain", "--wait", "--shed-rate", strconv.Itoa(f.o.shedRate), "--timeout", shortDuration(f.o.drainTimeout)}
	logf("draining %s (%d connections): hafeed %s", h.name, held, strings.Join(args, " "))
	res.event(f.rec, "drain "+h.name)
	start := time.Now()
	type cliResult struct {
		out string
		err error
	}
	done := make(chan cliResult, 1)
	go func() {
		out, err := h.cli(ctx, f.bin, args...)
		done <- cliResult{out, err}
	}()
	d := &drainResult{Host: h.name, Held: held, ShedRate: f.o.shedRate, Command: "hafeed " + strings.Join(args, " ")}
	var cli cliResult
	for finished := false; !finished; {
		select {
		case cli = <-done:
			finished = true
			d.Seconds = time.Since(start).Seconds()
		case <-time.After(100 * time.Millisecond):
		}
		if d.EmptySeconds == 0 && h.conns() == 0 {
			d.EmptySeconds = time.Since(start).Seconds()
		}
	}
	d.Output = lastLine(cli.out)
	if cli.err != nil {
		// A drain that gives up is a result, not the end of the run: the
		// host stays drained, and the fifth host can still join.
		d.Error = cli.err.Error()
		logf("drain: %v", cli.err)
		res.event(f.rec, "drain gave up")
	} else {
		res.event(f.rec, "drained")
	}
	// Every client back before the next phase.
	deadline := time.Now().Add(30 * time.Second)
	for f.clientTotals().Connected < f.plan.Conns && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	d.AllBackSeconds = time.Since(start).Seconds()
	after := f.clientTotals()
	d.Reconnects = after.Reconnects - before.Reconnects
	d.LongestDisconnect = after.LongestDisconnect.Seconds()
	d.Failures = after.Failures - before.Failures
	d.Lost = after.Lost - before.Lost
	d.Connected = after.Connected
	d.TCP = tcpDelta(tcpBefore, procstat.TCPExt())
	if s, err := h.status(ctx); err == nil && s.Shed != nil {
		d.Shed = s.Shed.Closed
	}
	for _, o := range f.hosts[1:f.plan.Hosts] {
		d.Others = append(d.Others, o.conns())
	}
	res.Drain = d
	logf("drain: hafeed drain returned after %.1f s (host empty after %.1f s); %d reconnects, longest disconnect %.0f ms, %d clients over 5 s",
		d.Seconds, d.EmptySeconds, d.Reconnects, d.LongestDisconnect*1000, d.Failures)
	return nil
}

// rebalance puts the spare host in service with hafeed ready and follows
// it until it holds 90 % of its fair share, then for -after more.
func (f *farm) rebalance(ctx context.Context, res *results) error {
	spare := f.hosts[len(f.hosts)-1]
	inRotation := f.hosts[1:]
	before := f.clientTotals()
	shedBefore := f.rebalanceShed(ctx)
	tcpBefore := procstat.TCPExt()
	if err := sleepCtx(ctx, 5*time.Second); err != nil {
		return err
	}
	logf("%s joins: hafeed ready", spare.name)
	res.event(f.rec, spare.name+" ready")
	start := time.Now()
	if _, err := spare.cli(ctx, f.bin, "ready"); err != nil {
		return err
	}
	r := &rebalanceResult{Host: spare.name, Hosts: len(inRotation)}
	var reachedAt time.Time
	for {
		total := 0
		for _, h := range inRotation {
			total += h.conns()
		}
		fair := float64(total) / float64(len(inRotation))
		if reachedAt.IsZero() && float64(spare.conns()) >= 0.9*fair {
			reachedAt = time.Now()
			r.Seconds = reachedAt.Sub(start).Seconds()
			res.event(f.rec, spare.name+" at 90%")
			logf("%s holds %d, 90%% of its fair %0.f, after %.1f s", spare.name, spare.conns(), fair, r.Seconds)
		}
		if !reachedAt.IsZero() && time.Since(reachedAt) > f.o.after {
			break
		}
		if reachedAt.IsZero() && time.Since(start) > f.o.rebalanceMax {
			r.Seconds = -1
			logf("%s did not reach 90%% of its fair share within %s", spare.name, f.o.rebalanceMax)
			break
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.clientTotals().Connected < f.plan.Conns && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	after := f.clientTotals()
	r.Moved = after.Reconnects - before.Reconnects
	r.Shed = f.rebalanceShed(ctx) - shedBefore
	r.LongestDisconnect = after.LongestDisconnect.Seconds()
	r.Failures = after.Failures - before.Failures
	r.Lost = after.Lost - before.Lost
	r.TCP = tcpDelta(tcpBefore, procstat.TCPExt())
	for _, h := range inRotation {
		r.Final = append(r.Final, h.conns())
	}
	hi, sum := 0, 0
	for _, n := range r.Final {
		hi, sum = max(hi, n), sum+n
	}
	if sum > 0 {
		r.FinalImbalance = float64(hi) / (float64(sum) / float64(len(r.Final)))
	}
	r.Fair = sum / len(inRotation)
	res.Rebalance = r
	logf("rebalance: %d moved (agents shed %d), final %v", r.Moved, r.Shed, r.Final)
	return nil
}

// tcpCounters are the kernel's TCP counters a phase reports: SYNs sent
// again (a client or HAProxy whose SYN went unanswered waits 1, then 2,
// then 4 s more), listen queues that overflowed, and SYNs a TIME-WAIT
// socket took or refused.
var tcpCounters = []string{"TCPSynRetrans", "ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPTimeWaitOverflow", "TWRecycled", "TCPAbortOnClose"}

// tcpDelta is how much each of tcpCounters rose from before to after.
func tcpDelta(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, k := range tcpCounters {
		if a, ok := after[k]; ok {
			out[k] = a - before[k]
		}
	}
	return out
}

// rebalanceShed adds up what the agents have shed to rebalance.
func (f *farm) rebalanceShed(ctx context.Context) int {
	n := 0
	for _, h := range f.hosts {
		if s, err := h.status(ctx); err == nil && s.Rebalance != nil {
			n += s.Rebalance.Shed
		}
	}
	return n
}

// now is the recorder's clock.
func (r *recorder) now() float64 { return time.Since(r.start).Seconds() }

// shortDuration prints 2m rather than 2m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// machine describes where the run happened.
func machine() machineInfo {
	return machineInfo{NumCPU: runtime.NumCPU(), GoBuild: runtime.Version(),
		Kernel: strings.TrimSpace(procstat.ReadString("/proc/sys/kernel/osrelease"))}
}
