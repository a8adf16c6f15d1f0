package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
)

// Options wires an Agent.
type Options struct {
	Config config.Config
	// ConfigFile is shown in status; "" when running on defaults.
	ConfigFile string
	// Reload reads the configuration again (file and flags) on SIGHUP; nil
	// disables reloading.
	Reload func() (config.Config, error)
	// Hangups delivers SIGHUP, registered by the caller before anything
	// else starts so that one arriving during start-up is not fatal; nil:
	// the agent registers SIGHUP itself when Serve starts.
	Hangups <-chan os.Signal
	// LogLevel, when set, is changed by a reload that changes log.level.
	LogLevel *LevelFilter
	Log      zerolog.Logger
	Version  string
	// Ready is called once the state is loaded and every listener is open.
	Ready func()
	// Notify, when set, receives systemd notifications ("READY=1",
	// "WATCHDOG=1", "RELOADING=1", "STOPPING=1"); Watchdog is the interval
	// systemd expects keep-alives at (0: no watchdog). The keep-alives come
	// from the sampling loop, so a stuck loop stops them.
	Notify   func(state string)
	Watchdog time.Duration
}

// Agent is the hafeed daemon.
type Agent struct {
	opts    Options
	log     zerolog.Logger
	replies *replyBook
	started time.Time
	// baselineSaved is when the measured baseline was last written to the
	// state file (owned by the sampling loop).
	baselineSaved time.Time
	// reloads carries reload requests to the loop, which owns the sampler;
	// the channel sent is closed once the reload is applied.
	reloads chan chan struct{}

	// adminLock serialises admin changes, so that the order on disk is
	// the order HAProxy sees; a channel, so that a request gives up waiting
	// at its deadline. Lock order: adminLock, an endpoint's mu, mu, then
	// the reply book's.
	adminLock chan struct{}
	mu        sync.Mutex // guards the fields below
	// cfg is the configuration in effect; restartNeeded lists the keys a
	// reload changed that take effect only on restart.
	cfg           config.Config
	restartNeeded []string
	state         State
	stateErr      string
	sample        *control.Sample
	listen        string
	desired       desiredAdmin
	shed          *shedJob
	rebal         *control.RebalanceStatus
	runtime       *runtimeSet

	agentPort uint16
	shedJobs  chan *shedJob
	shedSeq   uint64 // numbers drain shedding jobs; guarded by mu
	// peersCapped is set while more peers poll than maxSharingPeers; the
	// sampling loop owns it.
	peersCapped bool
	// shedCount counts connections closed to move them, by reason.
	shedCount map[string]uint64
}

// New builds an agent; Serve runs it.
func New(opts Options) *Agent {
	return &Agent{
		opts:      opts,
		log:       opts.Log.With().Str("component", "agent").Logger(),
		cfg:       opts.Config,
		replies:   newReplyBook(time.Now, opts.Config.AgentCheck.ReadyTimeout),
		reloads:   make(chan chan struct{}),
		shedJobs:  make(chan *shedJob),
		adminLock: make(chan struct{}, 1),
	}
}

// Serve loads the persisted state, opens the control socket, the
// agent-check port and the metrics port, and samples load until ctx is
// done. When something fails before it runs, whatever it opened is closed
// again: the control socket is free for the next attempt.
func (a *Agent) Serve(ctx context.Context) (err error) {
	a.started = time.Now()
	hangups := a.opts.Hangups
	if hangups == nil && a.opts.Reload != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		hangups = hup
	}
	cfg := a.conf()
	if err := a.loadState(cfg.StateFile); err != nil {
		return err
	}
	var undo []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()
	ctl, err := control.Listen(cfg.ControlSocket, a, a.opts.Log)
	if err != nil {
		return err
	}
	undo = append(undo, ctl.Close)
	ln, err := net.Listen("tcp", cfg.AgentCheck.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("agent-check listener on %s: %w (is another agent running, or the port taken?)", cfg.AgentCheck.Listen, err)
		}
		return fmt.Errorf("agent-check listener on %s: %w (check agent_check.listen)", cfg.AgentCheck.Listen, err)
	}
	undo = append(undo, func() { ln.Close() })
	var metricsSrv *metricsServer
	if cfg.Metrics.Listen != "" {
		metricsSrv, err = newMetricsServer(cfg.Metrics.Listen, collector{a: a, version: a.opts.Version})
		if err != nil {
			return err
		}
		undo = append(undo, func() { metricsSrv.ln.Close() })
	}
	allow, _ := config.ParseAllow(cfg.AgentCheck.Allow) // validated with the config
	server := haproxy.NewAgentServer(ln, a.replies, haproxy.AgentServerOptions{
		Timeout:   cfg.AgentCheck.Timeout,
		MaxLinger: cfg.AgentCheck.MaxConns,
		Allow:     allow,
	}, a.opts.Log)
	a.agentPort = uint16(ln.Addr().(*net.TCPAddr).Port)
	a.mu.Lock()
	a.listen = ln.Addr().String()
	a.mu.Unlock()
	sampler, err := NewSampler(cfg.Sources, a.agentPort)
	if err != nil {
		return err
	}
	sampler.SetBaseline(a.currentState().Baseline)
	rs, err := a.newRuntimeSet(cfg)
	if err != nil {
		return err
	}
	a.publish(sampler.Sample(ctx, cfg.Policy, a.peerCount(), 0))

	a.log.Info().Str("agent_check", ln.Addr().String()).Str("control_socket", cfg.ControlSocket).
		Str("state_file", cfg.StateFile).Str("admin", a.currentState().Admin.String()).Msg("hafeed agent started")
	if metricsSrv != nil {
		a.log.Info().Str("listen", metricsSrv.ln.Addr().String()).Msg("serving Prometheus metrics on /metrics")
	}
	if a.opts.Ready != nil {
		a.opts.Ready()
	}
	a.notify("READY=1\nSTATUS=" + a.statusLine())

	undo = nil // from here on each task closes what it owns
	g, ctx := errgroup.WithContext(ctx)
	a.swapRuntime(ctx, rs)
	defer a.swapRuntime(ctx, nil)
	g.Go(func() error { return server.Run(ctx) })
	g.Go(func() error { return ctl.Run(ctx) })
	g.Go(func() error { return a.loop(ctx, sampler, server, hangups) })
	g.Go(func() error { return a.runShedJobs(ctx) })
	if metricsSrv != nil {
		g.Go(func() error { return metricsSrv.Run(ctx) })
	}
	g.Go(func() error { return a.rebalance(ctx) })
	g.Go(func() error {
		<-ctx.Done()
		a.notify("STOPPING=1")
		return nil
	})
	err = g.Wait()
	a.log.Info().Msg("hafeed agent stopped")
	return err
}

// runtimeSet is the HAProxy runtime endpoints and the way to shed that one
// configuration describes; a reload that changes haproxy[] or shed.*
// replaces the whole set, stopping the old one.
type runtimeSet struct {
	endpoints []*endpoint
	closer    closer // nil when shedding is not possible
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// newRuntimeSet builds the endpoints and the closer of cfg, not running yet.
func (a *Agent) newRuntimeSet(cfg config.Config) (*runtimeSet, error) {
	rs := &runtimeSet{}
	for _, hc := range cfg.HAProxy {
		e, err := newEndpoint(hc, a.targetPorts, a.wanted, a.opts.Log)
		if err != nil {
			return nil, err
		}
		if ap, err := netip.ParseAddrPort(a.listen); err == nil {
			e.listenIP = ap.Addr()
		}
		rs.endpoints = append(rs.endpoints, e)
	}
	switch {
	case cfg.Shed.Via == "hook":
		// The hook may take up to 5 s (shed.ShedTimeout) to answer. No
		// keep-alive: an idle connection to the application's port would
		// count as one the drain waits for.
		rs.closer = hookCloser{url: cfg.Shed.HookURL, client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		}}
	case len(rs.endpoints) > 0:
		rs.closer = &runtimeCloser{endpoints: rs.endpoints}
	}
	return rs, nil
}

// swapRuntime starts next (nil: none) and stops the set it replaces.
func (a *Agent) swapRuntime(ctx context.Context, next *runtimeSet) {
	if next != nil {
		rctx, cancel := context.WithCancel(ctx)
		next.cancel = cancel
		for _, e := range next.endpoints {
			next.wg.Go(func() { e.Run(rctx) })
		}
	}
	a.mu.Lock()
	prev := a.runtime
	a.runtime = next
	a.mu.Unlock()
	if prev != nil {
		prev.cancel()
		prev.wg.Wait()
		if s, ok := prev.closer.(interface{ stop() }); ok {
			s.stop()
		}
	}
}

// endpointsNow are the runtime endpoints in effect.
func (a *Agent) endpointsNow() []*endpoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runtime == nil {
		return nil
	}
	return a.runtime.endpoints
}

// closerNow is the way to shed in effect, nil if there is none.
func (a *Agent) closerNow() closer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runtime == nil {
		return nil
	}
	return a.runtime.closer
}

// targetPorts are the ports by which endpoints find this host in HAProxy:
// sources.ports, else the listening ports the last sample counted.
func (a *Agent) targetPorts() []uint16 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cfg.Sources.Ports) > 0 {
		return a.cfg.Sources.Ports
	}
	if a.sample != nil {
		return a.sample.Ports
	}
	return nil
}

func (a *Agent) wanted() desiredAdmin {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.desired
}

// loop owns the sampler: it samples on a ticker, persists the end of a
// ready announcement, and applies reloads.
// A SIGHUP that arrived during start-up waits in hangups and is applied
// here.
func (a *Agent) loop(ctx context.Context, sampler *Sampler, server *haproxy.AgentServer, hangups <-chan os.Signal) error {
	ticker := time.NewTicker(a.conf().Interval)
	defer ticker.Stop()
	var watchdog <-chan time.Time
	if a.opts.Watchdog > 0 {
		t := time.NewTicker(a.opts.Watchdog / 2)
		defer t.Stop()
		watchdog = t.C
	}
	reload := func() {
		if a.opts.Reload == nil {
			return
		}
		a.notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
		next, err := a.opts.Reload()
		if err != nil {
			a.log.Error().Err(err).Msg("reload rejected; the previous configuration keeps running")
		} else if a.applyConfig(ctx, next, sampler, server) {
			ticker.Reset(next.Interval)
		}
		a.notify("READY=1\nSTATUS=" + a.statusLine())
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-watchdog:
			a.notify("WATCHDOG=1")
		case <-ticker.C:
			var backendWeight float64
			if sampler.NeedsBackendWeight() {
				backendWeight = a.backendWeight(ctx)
			}
			a.publish(sampler.Sample(ctx, a.conf().Policy, a.peerCount(), backendWeight))
			a.persistBaseline(sampler.Baseline(), time.Now())
		case <-a.replies.announced:
			a.persistAnnounced()
		case <-hangups:
			reload()
		case done := <-a.reloads:
			reload()
			close(done)
		}
	}
}

// reload asks the loop to reload as SIGHUP does, and waits until it has.
func (a *Agent) reload(ctx context.Context) {
	done := make(chan struct{})
	select {
	case a.reloads <- done:
		<-done
	case <-ctx.Done():
	}
}

// restartOnly lists the keys a running agent cannot change: the listeners
// and files it holds open, and the log format of its logger.
func restartOnly(prev, next config.Config) map[string]bool {
	return map[string]bool{
		"agent_check.listen":    prev.AgentCheck.Listen != next.AgentCheck.Listen,
		"agent_check.timeout":   prev.AgentCheck.Timeout != next.AgentCheck.Timeout,
		"agent_check.max_conns": prev.AgentCheck.MaxConns != next.AgentCheck.MaxConns,
		"control_socket":        prev.ControlSocket != next.ControlSocket,
		"state_file":            prev.StateFile != next.StateFile,
		"log.format":            prev.Log.Format != next.Log.Format,
		"metrics.listen":        prev.Metrics.Listen != next.Metrics.Listen,
	}
}

// applyConfig applies every key of next it can; the others keep their
// running values, are logged, and are listed in status until a restart
// (or a reload that restores them). It says whether next was applied.
func (a *Agent) applyConfig(ctx context.Context, next config.Config, sampler *Sampler, server *haproxy.AgentServer) bool {
	prev := a.conf()
	var pending []string
	for key, changed := range restartOnly(prev, next) {
		if changed {
			pending = append(pending, key)
			a.log.Warn().Str("key", key).Msg("this setting changes only on restart; keeping the running value")
		}
	}
	slices.Sort(pending)
	next.AgentCheck.Listen, next.AgentCheck.Timeout, next.AgentCheck.MaxConns = prev.AgentCheck.Listen, prev.AgentCheck.Timeout, prev.AgentCheck.MaxConns
	next.ControlSocket, next.StateFile, next.Log.Format = prev.ControlSocket, prev.StateFile, prev.Log.Format
	next.Metrics.Listen = prev.Metrics.Listen

	var rs *runtimeSet
	if !slices.Equal(prev.HAProxy, next.HAProxy) || prev.Shed != next.Shed || !slices.Equal(prev.Sources.Ports, next.Sources.Ports) {
		var err error
		if rs, err = a.newRuntimeSet(next); err != nil {
			a.log.Error().Err(err).Msg("reload rejected; the previous configuration keeps running")
			return false
		}
	}
	if err := sampler.SetSources(next.Sources, a.agentPort); err != nil {
		a.log.Error().Err(err).Msg("reload rejected; the previous configuration keeps running")
		return false
	}
	allow, _ := config.ParseAllow(next.AgentCheck.Allow)
	server.SetAllow(allow)
	a.replies.SetReadyTimeout(next.AgentCheck.ReadyTimeout)
	if a.opts.LogLevel != nil {
		if lvl, err := config.ParseLevel(next.Log.Level); err == nil {
			a.opts.LogLevel.Set(lvl)
		}
	}
	a.mu.Lock()
	a.cfg, a.restartNeeded = next, pending
	a.mu.Unlock()
	if rs != nil {
		// Endpoints re-apply the admin state and find this host again;
		// the old ones stop once the new ones run.
		a.swapRuntime(ctx, rs)
		a.log.Info().Int("endpoints", len(rs.endpoints)).Str("shed_via", next.Shed.Via).Msg("runtime endpoints and shedding rebuilt")
	}
	a.log.Info().Strs("restart_needed", pending).Msg("configuration reloaded")
	return true
}

func (a *Agent) publish(s control.Sample) {
	a.mu.Lock()
	prev := a.sample
	a.sample = &s
	a.mu.Unlock()
	a.replies.SetWeight(s.WeightPercent, s.Maxconn, s.SendMaxconn)
	ev := a.log.Debug()
	switch {
	case prev == nil || prev.WeightPercent != s.WeightPercent:
		ev = a.log.Info()
	case prev.SendMaxconn != s.SendMaxconn || prev.Maxconn != s.Maxconn:
		ev = a.log.Info()
	}
	if s.SuggestedReference > 0 && (prev == nil || prev.SuggestedReference == 0) {
		a.log.Warn().Int("weight_percent", s.WeightPercent).Float64("capacity", s.Capacity).
			Int("suggested_reference_capacity", s.SuggestedReference).
			Msgf("the weight has been out of range (under 20%% or at the 256%% cap) for %v: policy.reference_capacity does not fit this host's capacity; set it near %d on every host", policy.ReferenceAdviceAfter, s.SuggestedReference)
	}
	ev = ev.Int("weight_percent", s.WeightPercent).Int("connections", s.Connections).
		Float64("utilisation", s.Utilisation).Str("bottleneck", s.Bottleneck).
		Float64("capacity", s.Capacity).Float64("baseline", s.Model.Baseline).
		Float64("cost", s.Model.Cost).Str("reason", s.Reason).Dur("took", s.Duration)
	if s.SendMaxconn {
		ev = ev.Int("maxconn", s.Maxconn)
	}
	if len(s.Errors) > 0 {
		ev = ev.Strs("errors", s.Errors)
	}
	ev.Msg("sampled load")
}

// maxSharingPeers caps the number of HAProxies maxconn is shared among,
// so that addresses polling the agent-check port cannot shrink the cap to
// nothing (agent_check.allow keeps them out altogether).
const maxSharingPeers = 32

// peerCount is the number of HAProxies polling at an agent-check cadence,
// at least 1 and at most maxSharingPeers; only allowed peers get replies,
// so only they count.
func (a *Agent) peerCount() int {
	n := a.replies.SharingPeers()
	if n > maxSharingPeers {
		if !a.peersCapped {
			a.log.Warn().Int("polling", n).Int("counted", maxSharingPeers).
				Msg("more addresses poll the agent-check port than HAProxies are likely to share this server; set agent_check.allow to your HAProxies")
		}
		a.peersCapped = true
		return maxSharingPeers
	}
	a.peersCapped = false
	return max(1, n)
}

func (a *Agent) conf() config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// PortOf returns the port of a host:port address, 0 if it has none.
func PortOf(addr string) uint16 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	return uint16(n)
}

// notify sends a systemd notification when running under systemd.
func (a *Agent) notify(state string) {
	if a.opts.Notify != nil {
		a.opts.Notify(state)
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd's
// RELOADING=1 wants it.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return strconv.FormatInt(ts.Nano()/1000, 10)
}
