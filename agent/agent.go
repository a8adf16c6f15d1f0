package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/agent/rebalance"
	"github.com/hafeed/hafeed/agent/runtime"
	"github.com/hafeed/hafeed/agent/sampler"
	"github.com/hafeed/hafeed/agent/shed"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/lockfile"
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

// Agent is the hafeed daemon: the sampling loop and the admin state, wired
// to the parts that each own their data and lock.
//
// Lock order, outermost first (a part never calls into one listed above it
// while holding its own lock):
//
//  1. admin.lock: one admin change at a time, held across the state file's
//     write and the pushes, each bounded by the request's deadline.
//  2. runtime.Endpoint's mu: one sync at a time, bounded by PushTimeout.
//  3. runtime.SessionCloser's turn: one close at a time, bounded by the
//     caller's deadline (a rebalance step's, or a job's closeTimeout).
//  4. the fleet cache's turn: one read of the backend at a time, bounded
//     by the caller's deadline and PushTimeout.
//  5. admin.mu, then the reply book's mu: the state and the reply change
//     together, so that a status shows the two in agreement.
//  6. leaves, never held across I/O nor around another lock: settings.mu,
//     rt.mu, the shed Runner's and Job's mu, the Tally's, the
//     Rebalancer's.
//
// TestLockOrder runs every path at once under -race.
type Agent struct {
	// Set once by New (stateHooks by tests, before Serve).
	opts       Options
	stateHooks *fileHooks
	log        zerolog.Logger
	replies    *replyBook
	admin      *adminState
	settings   *settings
	rt         runtimeBox
	tally      *shed.Tally
	shedder    *shed.Runner
	rebal      *rebalance.Rebalancer
	fleet      *fleetCache
	sources    *sourcePorts
	// sample is the last sample; baseline the load model's measured
	// baseline for the persister.
	sample   atomic.Pointer[sampler.Sample]
	baseline atomic.Pointer[policy.LoadModel]
	// persistWake asks the persister to write what changed.
	persistWake chan struct{}
	// countSoon asks the sampling loop to count the connections at its
	// next sample, outside sources.count_budget: a drain's shedding job
	// has ended, and hafeed drain --wait waits for a count taken since.
	countSoon atomic.Bool

	// Set by Serve before any task starts; read-only after. ownPorts are
	// the agent's own TCP listeners (agent-check, metrics): with
	// sources.ports empty every other listening port is counted, these
	// never are.
	started  time.Time
	ownPorts []uint16
	listen   string

	// Owned by the sampling loop.
	peersCapped bool
	// Owned by the persister: when the baseline was last written.
	baselineSaved time.Time
}

// settings is the configuration in effect.
type settings struct {
	mu  sync.Mutex // guards the fields below
	cfg config.Config
	// restartNeeded lists the keys a reload changed that take effect only
	// on restart.
	restartNeeded []string
}

func (s *settings) get() (config.Config, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg, slices.Clone(s.restartNeeded)
}

func (s *settings) set(cfg config.Config, restartNeeded []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.restartNeeded = cfg, restartNeeded
}

// New builds an agent; Serve runs it.
func New(opts Options) *Agent {
	a := &Agent{
		opts:        opts,
		log:         opts.Log.With().Str("component", "agent").Logger(),
		replies:     newReplyBook(time.Now, opts.Config.AgentCheck.ReadyTimeout),
		admin:       newAdminState(),
		settings:    &settings{cfg: opts.Config},
		tally:       &shed.Tally{},
		fleet:       newFleetCache(),
		sources:     newSourcePorts(),
		persistWake: make(chan struct{}, 1),
	}
	a.shedder = shed.NewRunner(shed.RunnerOptions{
		Closer: a.closer,
		Keep:   func() bool { return a.admin.current().Admin == haproxy.AdminDrain },
		Remaining: shed.NewSourcesCounter(func() shed.Sources {
			src := a.conf().Sources
			return shed.Sources{Ports: src.Ports, ProcRoot: src.ProcRoot, Exclude: a.ownPorts}
		}).Count,
		Ended: func(shed.JobStatus) { a.countSoon.Store(true) },
		Log:   opts.Log,
	})
	a.rebal = rebalance.New(rebalance.Options{
		Config: func() policy.RebalanceConfig { return a.conf().Rebalance },
		Ready:  func() bool { return a.admin.current().Admin == haproxy.AdminReady },
		View: func() rebalance.BackendView {
			if set := a.rt.set(); set != nil && len(set.Endpoints()) > 0 {
				return set
			}
			return nil
		},
		Local: func() (int, float64, bool) {
			s := a.sample.Load()
			if s == nil {
				return 0, 0, false
			}
			return s.Connections, s.Utilisation, true
		},
		Closer:  a.closer,
		Entered: a.enteredService,
		Log:     opts.Log,
	})
	return a
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
	// Here rather than at the first drain, mid-deploy.
	if err := a.stateFileAt(cfg.StateFile).CheckWritable(); err != nil {
		return fmt.Errorf("state directory %s is not writable: %w (a drain could not be saved: make it writable by the agent's user, as the packaged unit's StateDirectory= does for /var/lib/hafeed and ReadWritePaths= in a drop-in does elsewhere, or point state_file / --state-file at a writable directory)", filepath.Dir(cfg.StateFile), err)
	}
	// Two agents on one state file would each overwrite the other's
	// drain; the lock is held until Serve returns.
	lock, err := a.stateFileAt(cfg.StateFile).Lock()
	if errors.Is(err, lockfile.ErrLocked) {
		return fmt.Errorf("%w with state file %s (stop it first, or give this one another state_file / --state-file)", control.ErrAlreadyRunning, cfg.StateFile)
	}
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer lock.Close()
	if err := a.loadState(ctx, cfg.StateFile); err != nil {
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
	a.ownPorts = []uint16{uint16(ln.Addr().(*net.TCPAddr).Port)}
	if metricsSrv != nil {
		a.ownPorts = append(a.ownPorts, uint16(metricsSrv.ln.Addr().(*net.TCPAddr).Port))
	}
	a.listen = ln.Addr().String()
	smp := sampler.New(cfg.Sources, a.ownPorts...)
	smp.SetBaseline(a.admin.current().Baseline)
	rs, err := a.newRuntime(cfg)
	if err != nil {
		return err
	}
	a.publish(smp.Sample(ctx, cfg.Policy, a.peerCount(), 0))

	a.log.Info().Str("agent_check", a.listen).Str("control_socket", cfg.ControlSocket).
		Str("state_file", cfg.StateFile).Str("admin", a.admin.current().Admin.String()).Msg("hafeed agent started")
	if metricsSrv != nil {
		a.log.Info().Str("listen", metricsSrv.ln.Addr().String()).Msg("serving Prometheus metrics on /metrics")
	}
	if a.opts.Ready != nil {
		a.opts.Ready()
	}
	a.notify("READY=1\nSTATUS=" + a.statusLine())

	undo = nil // from here on each task closes what it owns
	g, ctx := errgroup.WithContext(ctx)
	a.rt.swap(ctx, rs)
	defer a.rt.swap(ctx, nil)
	g.Go(func() error { return server.Run(ctx) })
	g.Go(func() error { return ctl.Run(ctx) })
	g.Go(func() error { return a.loop(ctx, smp, server, hangups) })
	g.Go(func() error { return a.persist(ctx) })
	g.Go(func() error { return a.shedder.Run(ctx) })
	g.Go(func() error { return a.rebal.Run(ctx) })
	if metricsSrv != nil {
		g.Go(func() error { return metricsSrv.Run(ctx) })
	}
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
	endpoints *runtime.Set
	closer    shed.Closer // nil when shedding is not possible
}

// runtimeBox holds the runtime set in effect.
type runtimeBox struct {
	mu  sync.Mutex // guards cur
	cur *runtimeSet
}

// swap starts next (nil: none) and stops the set it replaces.
func (b *runtimeBox) swap(ctx context.Context, next *runtimeSet) {
	if next != nil {
		next.endpoints.Start(ctx)
	}
	b.mu.Lock()
	prev := b.cur
	b.cur = next
	b.mu.Unlock()
	if prev != nil {
		prev.endpoints.Stop()
		if s, ok := prev.closer.(interface{ Stop() }); ok {
			s.Stop()
		}
	}
}

func (b *runtimeBox) get() *runtimeSet {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

// set is the runtime endpoints in effect; nil before Serve starts them.
func (b *runtimeBox) set() *runtime.Set {
	if rs := b.get(); rs != nil {
		return rs.endpoints
	}
	return nil
}

// newRuntime builds the endpoints and the closer of cfg, not running yet.
func (a *Agent) newRuntime(cfg config.Config) (*runtimeSet, error) {
	opts := runtime.EndpointOptions{Ports: a.targetPorts, Wanted: a.admin.wanted}
	if ap, err := netip.ParseAddrPort(a.listen); err == nil {
		opts.ListenIP = ap.Addr()
	}
	set, err := runtime.NewSet(cfg.HAProxy, opts, a.opts.Log)
	if err != nil {
		return nil, err
	}
	rs := &runtimeSet{endpoints: set}
	switch via, _ := cfg.ShedWay(); via {
	case config.ShedViaHook:
		rs.closer = shed.NewHookCloser(cfg.Shed.HookURL)
	case config.ShedViaRuntime:
		rs.closer = set.Closer()
	case config.ShedViaKernel:
		// Checked here, so that the agent fails at start (or keeps its
		// old config on a reload) rather than at the first drain.
		k, err := shed.NewKernelCloser(cfg.Sources.Ports)
		if err != nil {
			return nil, err
		}
		rs.closer = k
	}
	return rs, nil
}

// closer is the way to shed in effect, counted in the tally; nil if there
// is none.
func (a *Agent) closer() shed.Closer {
	if rs := a.rt.get(); rs != nil && rs.closer != nil {
		return a.tally.Counted(rs.closer)
	}
	return nil
}

// targetPorts are the ports by which endpoints find this host in HAProxy:
// sources.ports, else the listening ports the last sample counted.
func (a *Agent) targetPorts() []uint16 {
	if ports := a.conf().Sources.Ports; len(ports) > 0 {
		return ports
	}
	if s := a.sample.Load(); s != nil {
		return s.Ports
	}
	return nil
}

// sampleTimeout bounds one sample's reads, so that a source that hangs
// cannot stall the loop (and with it systemd's watchdog keep-alives).
func sampleTimeout(interval time.Duration) time.Duration {
	return max(2*interval, 5*time.Second)
}

// loop owns the sampler: it samples on a ticker and applies reloads. It
// never waits for the admin lock or the disk: the persister writes what it
// learns. A SIGHUP that arrived during start-up waits in hangups and is
// applied here.
func (a *Agent) loop(ctx context.Context, smp *sampler.Sampler, server *haproxy.AgentServer, hangups <-chan os.Signal) error {
	ticker := time.NewTicker(a.conf().Interval)
	defer ticker.Stop()
	var watchdog <-chan time.Time
	if a.opts.Watchdog > 0 {
		t := time.NewTicker(a.opts.Watchdog / 2)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-watchdog:
			a.notify("WATCHDOG=1")
		case <-ticker.C:
			cfg := a.conf()
			sctx, cancel := context.WithTimeout(ctx, sampleTimeout(cfg.Interval))
			var backendWeight float64
			if smp.NeedsBackendWeight() {
				backendWeight = a.backendWeight(sctx)
			}
			if a.countSoon.Swap(false) {
				smp.CountSoon()
			}
			a.publish(smp.Sample(sctx, cfg.Policy, a.peerCount(), backendWeight))
			cancel()
			a.baseline.Store(smp.Baseline())
			a.wakePersister()
		case <-a.replies.announced:
			a.wakePersister()
		case <-hangups:
			if a.opts.Reload == nil {
				continue
			}
			a.notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
			next, err := a.opts.Reload()
			if err != nil {
				a.log.Error().Err(err).Msg("reload rejected; the previous configuration keeps running")
			} else if a.applyConfig(ctx, next, smp, server) {
				ticker.Reset(next.Interval)
			}
			a.notify("READY=1\nSTATUS=" + a.statusLine())
		}
	}
}

// wakePersister asks the persister to write what changed, without waiting.
func (a *Agent) wakePersister() {
	select {
	case a.persistWake <- struct{}{}:
	default:
	}
}

// applyConfig applies every key of next it can; the others keep their
// running values, are logged, and are listed in status until a restart
// (or a reload that restores them). It says whether next was applied.
func (a *Agent) applyConfig(ctx context.Context, next config.Config, smp *sampler.Sampler, server *haproxy.AgentServer) bool {
	prev := a.conf()
	next, pending := config.RestartOnly(prev, next)
	for _, key := range pending {
		a.log.Warn().Str("key", key).Msg("this setting changes only on restart; keeping the running value")
	}

	var rs *runtimeSet
	if !slices.Equal(prev.HAProxy, next.HAProxy) || prev.Shed != next.Shed || !slices.Equal(prev.Sources.Ports, next.Sources.Ports) {
		var err error
		if rs, err = a.newRuntime(next); err != nil {
			a.log.Error().Err(err).Msg("reload rejected; the previous configuration keeps running")
			return false
		}
	}
	smp.SetSources(next.Sources, a.ownPorts...)
	allow, _ := config.ParseAllow(next.AgentCheck.Allow)
	server.SetAllow(allow)
	a.replies.SetReadyTimeout(next.AgentCheck.ReadyTimeout)
	if a.opts.LogLevel != nil {
		if lvl, err := config.ParseLevel(next.Log.Level); err == nil {
			a.opts.LogLevel.Set(lvl)
		}
	}
	a.settings.set(next, pending)
	if rs != nil {
		// Endpoints re-apply the admin state and find this host again;
		// the old ones stop once the new ones run.
		a.rt.swap(ctx, rs)
		a.log.Info().Int("endpoints", len(rs.endpoints.Endpoints())).Str("shed_via", string(next.Shed.Via)).Msg("runtime endpoints and shedding rebuilt")
	}
	a.log.Info().Strs("restart_needed", pending).Msg("configuration reloaded")
	return true
}

func (a *Agent) publish(s sampler.Sample) {
	prev := a.sample.Swap(&s)
	// Each of this host's lines in an HAProxy polls for its own weight:
	// split, the lines together get one host's share. (maxconn is already
	// divided among the addresses polling, a line per source address.)
	// A line capped for its source's ports takes no more connections:
	// the others take its share (lineWeights).
	caps, changed := a.sources.update(a.conf(), s.Paths, a.log)
	others, perPeer := lineWeights(s.WeightPercent, a.lines(), a.peerCount(), a.sources.capped(), s.Connections)
	a.replies.SetWeight(others, s.Maxconn, s.SendMaxconn)
	a.replies.SetPeerWeights(perPeer)
	a.sources.setWeights(perPeer)
	if changed {
		a.replies.SetPeerMaxconn(caps)
	}
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
// so only they count. Called by the sampling loop only.
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

// backendWeightTimeout bounds the backend view the sampling loop asks for
// while a host has no estimate of its own, so a slow endpoint does not
// stall sampling.
const backendWeightTimeout = 500 * time.Millisecond

// backendWeight is the mean weight of this host's backend's other servers
// in rotation, from the runtime endpoints; 0 when none shows it.
func (a *Agent) backendWeight(ctx context.Context) float64 {
	set := a.rt.set()
	if set == nil || len(set.Endpoints()) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, backendWeightTimeout)
	defer cancel()
	w, err := set.MeanWeight(ctx)
	if err != nil {
		a.log.Debug().Err(err).Msg("no backend view for the starting weight")
		return 0
	}
	return w
}

// enteredService is when this host entered service (hafeed ready), if it
// did since the agent started and less than the policy's settle time ago:
// the rebalancer holds what such a host receives while it fills up.
func (a *Agent) enteredService(now time.Time) time.Time {
	a.admin.mu.Lock()
	entered := a.admin.enteredAt
	a.admin.mu.Unlock()
	if !entered.IsZero() && now.Sub(entered) < a.conf().Policy.SettleTime() {
		return entered
	}
	return time.Time{}
}

func (a *Agent) conf() config.Config {
	cfg, _ := a.settings.get()
	return cfg
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

// lines is how many server lines of each HAProxy point at this host: as
// the runtime endpoints find them, else agent_check.lines.
func (a *Agent) lines() int {
	if set := a.rt.set(); set != nil {
		if n := set.Lines(); n > 0 {
			return n
		}
	}
	return max(a.conf().AgentCheck.Lines, 1)
}

// splitWeight is each of n lines' share of weight, at least 1 (0 stays 0:
// no weight reported).
func splitWeight(weight, n int) int {
	if weight <= 0 || n <= 1 {
		return weight
	}
	return max((weight+n/2)/n, 1)
}
