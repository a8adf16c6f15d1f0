package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/haproxy"
)

// Options wires an Agent.
type Options struct {
	Config Config
	// ConfigFile is shown in status; "" when running on defaults.
	ConfigFile string
	// Reload reads the configuration again (file and flags) on SIGHUP; nil
	// disables reloading.
	Reload func() (Config, error)
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

	// adminMu serialises admin changes, so that the order on disk is the
	// order HAProxy sees. Lock order: adminMu, an endpoint's mu, then mu.
	adminMu  sync.Mutex
	mu       sync.Mutex // guards the fields below
	cfg      Config
	state    State
	stateErr string
	sample   *Sample
	listen   string
	desired  desiredAdmin
	shed     *shedJob
	rebal    *RebalanceStatus

	endpoints []*endpoint
	closer    closer // nil when shedding is not possible
	agentPort uint16
	shedJobs  chan *shedJob
	// shed counts connections closed to move them, by reason.
	shedCount map[string]uint64
}

// New builds an agent; Serve runs it.
func New(opts Options) *Agent {
	return &Agent{
		opts:    opts,
		log:     opts.Log.With().Str("component", "agent").Logger(),
		cfg:     opts.Config,
		replies: newReplyBook(time.Now, opts.Config.AgentCheck.ReadyTimeout),
	}
}

// Serve loads the persisted state, opens the control socket and the
// agent-check port, and samples load until ctx is done.
func (a *Agent) Serve(ctx context.Context) error {
	a.started = time.Now()
	cfg := a.config()
	if err := a.loadState(cfg.StateFile); err != nil {
		return err
	}
	ctl, err := listenControl(cfg.ControlSocket, a, a.opts.Log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.AgentCheck.Listen)
	if err != nil {
		ctl.close()
		return fmt.Errorf("agent-check listener on %s: %w (is another agent running, or the port taken?)", cfg.AgentCheck.Listen, err)
	}
	allow, _ := ParseAllow(cfg.AgentCheck.Allow) // validated with the config
	server := haproxy.NewAgentServer(ln, a.replies, haproxy.AgentServerOptions{
		Timeout:   cfg.AgentCheck.Timeout,
		MaxLinger: cfg.AgentCheck.MaxConns,
		Allow:     allow,
	}, a.opts.Log)
	agentPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	a.mu.Lock()
	a.listen = ln.Addr().String()
	a.mu.Unlock()
	a.agentPort = agentPort
	sampler, err := NewSampler(cfg.Sources, agentPort)
	if err == nil {
		err = a.buildEndpoints(cfg)
	}
	if err != nil {
		ln.Close()
		ctl.close()
		return err
	}
	a.publish(sampler.Sample(ctx, cfg.Policy, a.peerCount()))

	a.log.Info().Str("agent_check", ln.Addr().String()).Str("control_socket", cfg.ControlSocket).
		Str("state_file", cfg.StateFile).Str("admin", a.currentState().Admin.String()).Msg("hafeed agent started")
	if a.opts.Ready != nil {
		a.opts.Ready()
	}
	a.notify("READY=1\nSTATUS=" + a.statusLine())

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return server.Run(ctx) })
	g.Go(func() error { return ctl.Run(ctx) })
	g.Go(func() error { return a.loop(ctx, sampler, server, agentPort) })
	for _, e := range a.endpoints {
		g.Go(func() error { return e.Run(ctx) })
	}
	g.Go(func() error { return a.runShedJobs(ctx) })
	if cfg.Metrics.Listen != "" {
		m, err := newMetricsServer(cfg.Metrics.Listen, collector{a: a, version: a.opts.Version})
		if err != nil {
			return err
		}
		a.log.Info().Str("listen", m.ln.Addr().String()).Msg("serving Prometheus metrics on /metrics")
		g.Go(func() error { return m.Run(ctx) })
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

func (a *Agent) loadState(path string) error {
	state, err := StateFile{Path: path}.Load()
	switch {
	case errors.Is(err, ErrCorruptState):
		// Fail safe: a host whose operator drained it must not come back
		// as ready because its state file was damaged.
		state = State{Admin: haproxy.AdminDrain, Since: time.Now()}
		a.stateErr = fmt.Sprintf("%v; serving drain until an operator decides: run `hafeed ready` or `hafeed drain` to rewrite it", err)
		a.log.Error().Str("state_file", path).Err(err).Msg("state file cannot be parsed; serving drain until `hafeed ready` or `hafeed drain` rewrites it")
	case err != nil:
		return fmt.Errorf("%w (check the permissions of %s, or set --state-file)", err, path)
	case state.Since.IsZero():
		state.Since = time.Now() // no state file yet: ready since this start
	}
	a.mu.Lock()
	a.state = state
	a.mu.Unlock()
	a.replies.Expect(state.Peers)
	a.replies.SetAdmin(state.Admin, state.ReadyPending)
	// A drain or maint is re-applied through the runtime API; ready is not
	// pushed at start, so an operator's runtime drain stays.
	a.desired = desiredAdmin{admin: state.Admin, gen: 1, push: state.Admin != haproxy.AdminReady}
	return nil
}

// buildEndpoints sets up the runtime endpoints and the way to shed.
func (a *Agent) buildEndpoints(cfg Config) error {
	a.shedJobs = make(chan *shedJob)
	ports := func() []uint16 {
		if len(cfg.Sources.Ports) > 0 {
			return cfg.Sources.Ports
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.sample != nil {
			return a.sample.Ports
		}
		return nil
	}
	wanted := func() desiredAdmin {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.desired
	}
	for _, hc := range cfg.HAProxy {
		e, err := newEndpoint(hc, ports, wanted, a.opts.Log)
		if err != nil {
			return err
		}
		a.endpoints = append(a.endpoints, e)
	}
	switch {
	case cfg.Shed.Via == "hook":
		// The hook may take up to 5 s (shed.ShedTimeout) to answer. No
		// keep-alive: an idle connection to the application's port would
		// count as one the drain waits for.
		a.closer = hookCloser{url: cfg.Shed.HookURL, client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		}}
	case len(a.endpoints) > 0:
		a.closer = &runtimeCloser{endpoints: a.endpoints}
	}
	return nil
}

// loop owns the sampler: it samples on a ticker, persists the end of a
// ready announcement, and applies reloads.
func (a *Agent) loop(ctx context.Context, sampler *Sampler, server *haproxy.AgentServer, agentPort uint16) error {
	cfg := a.config()
	ticker := time.NewTicker(cfg.Interval)
	defer ticker.Stop()
	hup := make(chan os.Signal, 1)
	if a.opts.Reload != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
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
			a.publish(sampler.Sample(ctx, a.config().Policy, a.peerCount()))
		case <-a.replies.announced:
			a.persistAnnounced()
		case <-hup:
			a.notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
			next, err := a.opts.Reload()
			if err != nil {
				a.log.Error().Err(err).Msg("reload rejected; the previous configuration keeps running")
			} else {
				a.applyConfig(next, sampler, server, agentPort)
				ticker.Reset(next.Interval)
			}
			a.notify("READY=1\nSTATUS=" + a.statusLine())
		}
	}
}

func (a *Agent) applyConfig(next Config, sampler *Sampler, server *haproxy.AgentServer, agentPort uint16) {
	prev := a.config()
	for key, changed := range map[string]bool{
		"agent_check.listen":    prev.AgentCheck.Listen != next.AgentCheck.Listen,
		"agent_check.timeout":   prev.AgentCheck.Timeout != next.AgentCheck.Timeout,
		"agent_check.max_conns": prev.AgentCheck.MaxConns != next.AgentCheck.MaxConns,
		"control_socket":        prev.ControlSocket != next.ControlSocket,
		"state_file":            prev.StateFile != next.StateFile,
		"log.format":            prev.Log.Format != next.Log.Format,
	} {
		if changed {
			a.log.Warn().Str("key", key).Msg("this setting changes only on restart; keeping the running value")
		}
	}
	next.AgentCheck.Listen, next.AgentCheck.Timeout, next.AgentCheck.MaxConns = prev.AgentCheck.Listen, prev.AgentCheck.Timeout, prev.AgentCheck.MaxConns
	next.ControlSocket, next.StateFile, next.Log.Format = prev.ControlSocket, prev.StateFile, prev.Log.Format

	if err := sampler.SetSources(next.Sources, agentPort); err != nil {
		a.log.Error().Err(err).Msg("reload rejected; the previous configuration keeps running")
		return
	}
	allow, _ := ParseAllow(next.AgentCheck.Allow)
	server.SetAllow(allow)
	a.replies.SetReadyTimeout(next.AgentCheck.ReadyTimeout)
	if a.opts.LogLevel != nil {
		if lvl, err := parseLevel(next.Log.Level); err == nil {
			a.opts.LogLevel.Set(lvl)
		}
	}
	a.mu.Lock()
	a.cfg = next
	a.mu.Unlock()
	a.log.Info().Msg("configuration reloaded")
}

func (a *Agent) publish(s Sample) {
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
	ev = ev.Int("weight_percent", s.WeightPercent).Int("connections", s.Connections).
		Float64("utilisation", s.Utilisation).Str("bottleneck", s.Bottleneck).
		Float64("capacity", s.Capacity).Str("reason", s.Reason).Dur("took", s.Duration)
	if s.SendMaxconn {
		ev = ev.Int("maxconn", s.Maxconn)
	}
	if len(s.Errors) > 0 {
		ev = ev.Strs("errors", s.Errors)
	}
	ev.Msg("sampled load")
}

// peerCount is the number of HAProxy addresses polling, at least 1.
func (a *Agent) peerCount() int { return max(1, len(a.replies.RecentPeers())) }

func (a *Agent) persistAnnounced() {
	a.adminMu.Lock()
	defer a.adminMu.Unlock()
	cur := a.currentState()
	if _, announcing := a.replies.Current(); announcing || !cur.ReadyPending {
		return
	}
	cur.ReadyPending, cur.Peers = false, nil
	if err := a.stateFile().Save(cur); err != nil {
		// Harmless: a restart would announce "ready" once more.
		a.log.Warn().Err(err).Msg("recording the end of the ready announcement")
		return
	}
	a.mu.Lock()
	a.state = cur
	a.mu.Unlock()
	a.log.Info().Msg("every polling HAProxy has heard ready; replying with the weight only")
}

// SetAdmin changes the admin state, persisting it before it is served.
func (a *Agent) SetAdmin(admin haproxy.Admin) (warning string, err error) {
	a.adminMu.Lock()
	defer a.adminMu.Unlock()
	a.mu.Lock()
	cur, corrupt := a.state, a.stateErr != ""
	a.mu.Unlock()
	if cur.Admin == admin && !corrupt {
		return "", nil
	}
	next := State{
		Admin:        admin,
		Since:        time.Now(),
		ReadyPending: admin == haproxy.AdminReady && (cur.Admin != haproxy.AdminReady || cur.ReadyPending),
	}
	if next.ReadyPending {
		next.Peers = a.replies.RecentPeers()
	}
	if err := a.stateFile().Save(next); err != nil {
		return "", fmt.Errorf("persisting state, so it stays %s: %w", cur.Admin, err)
	}
	a.mu.Lock()
	a.state, a.stateErr = next, ""
	a.desired = desiredAdmin{admin: admin, gen: a.desired.gen + 1, push: true}
	a.mu.Unlock()
	a.replies.SetAdmin(admin, next.ReadyPending)
	a.log.Info().Str("from", cur.Admin.String()).Str("to", admin.String()).Str("reason", "requested on the control socket (hafeed "+admin.String()+")").Msg("admin state changed")
	var warnings []string
	if cur.Admin == haproxy.AdminMaint && admin == haproxy.AdminDrain && len(a.endpoints) == 0 {
		warnings = append(warnings, "HAProxy keeps this server in MAINT as well: the agent-check protocol cannot lift maint without also lifting drain; run `hafeed ready` to leave both")
	}
	warnings = append(warnings, a.pushAll()...)
	return strings.Join(warnings, "; "), nil
}

// pushAll applies the admin state through every runtime endpoint at once,
// waiting at most pushTimeout; endpoints that fail keep retrying.
func (a *Agent) pushAll() []string {
	if len(a.endpoints) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
	defer cancel()
	errs := make([]error, len(a.endpoints))
	var wg sync.WaitGroup
	for i, e := range a.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.pushNow(ctx)
		}()
	}
	wg.Wait()
	var warnings []string
	for _, err := range errs {
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("not pushed yet, retrying in the background (the agent-check reply carries it too): %v", err))
		}
	}
	return warnings
}

func (a *Agent) handle(ctx context.Context, req Request) Response {
	var warning string
	switch req.Command {
	case CommandStatus:
	case CommandReady, CommandDrain, CommandMaint:
		if req.ShedRate != 0 && req.Command != CommandDrain {
			return Response{Error: "shed_rate goes with drain only"}
		}
		if req.ShedRate < 0 || req.Min < 0 {
			return Response{Error: "shed_rate and min must not be negative"}
		}
		if req.ShedRate > 0 && a.closer == nil {
			return Response{Error: "shedding needs a way to close connections: configure haproxy[].runtime (shed.via: runtime) or shed.hook_url (shed.via: hook)"}
		}
		admin, _ := haproxy.ParseAdmin(req.Command)
		w, err := a.SetAdmin(admin)
		if err != nil {
			return Response{Error: err.Error()}
		}
		warning = w
		if req.ShedRate > 0 {
			a.startShed(ctx, req)
		}
	default:
		return Response{Error: fmt.Sprintf("unknown command %q: want status, ready, drain or maint", req.Command)}
	}
	st := a.Status()
	st.Warning = warning
	return Response{OK: true, Status: &st}
}

// Status is what `hafeed status` shows.
type Status struct {
	Admin           string       `json:"admin"`
	Since           time.Time    `json:"since"`
	Reply           string       `json:"reply"`
	AnnouncingReady bool         `json:"announcing_ready"`
	StateError      string       `json:"state_error,omitempty"`
	Warning         string       `json:"warning,omitempty"`
	Sample          *Sample      `json:"sample,omitempty"`
	Peers           []PeerStatus `json:"peers"`
	PID             int          `json:"pid"`
	Version         string       `json:"version"`
	// HAProxy lists the runtime endpoints, Shed the last shedding job and
	// Rebalance the rebalancer's last step.
	HAProxy       []EndpointStatus `json:"haproxy,omitempty"`
	Shed          *ShedStatus      `json:"shed,omitempty"`
	Rebalance     *RebalanceStatus `json:"rebalance,omitempty"`
	StartedAt     time.Time        `json:"started_at"`
	ConfigFile    string           `json:"config_file,omitempty"`
	AgentListen   string           `json:"agent_listen"`
	ControlSocket string           `json:"control_socket"`
	StateFile     string           `json:"state_file"`
}

// Status reports the agent's current state.
func (a *Agent) Status() Status {
	line, announcing := a.replies.Current()
	// Endpoints lock their own mutex and then a.mu: read them first.
	var endpoints []EndpointStatus
	for _, e := range a.endpoints {
		endpoints = append(endpoints, e.snapshot())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		Admin:           a.state.Admin.String(),
		Since:           a.state.Since,
		Reply:           trimNewline(line),
		AnnouncingReady: announcing,
		StateError:      a.stateErr,
		Peers:           a.replies.Peers(),
		PID:             os.Getpid(),
		Version:         a.opts.Version,
		StartedAt:       a.started,
		ConfigFile:      a.opts.ConfigFile,
		AgentListen:     a.listen,
		ControlSocket:   a.cfg.ControlSocket,
		StateFile:       a.cfg.StateFile,
		HAProxy:         endpoints,
	}
	if a.sample != nil {
		s := *a.sample
		st.Sample = &s
	}
	if a.shed != nil {
		j := a.shed.snapshot()
		st.Shed = &j
	}
	if a.rebal != nil {
		r := *a.rebal
		st.Rebalance = &r
	}

	if st.Peers == nil {
		st.Peers = []PeerStatus{}
	}
	return st
}

func trimNewline(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		return s[:n-1]
	}
	return s
}

func (a *Agent) config() Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func (a *Agent) currentState() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

func (a *Agent) stateFile() StateFile { return StateFile{Path: a.config().StateFile} }

var _ controlHandler = (*Agent)(nil)

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

// statusLine is the one-line status systemctl shows.
func (a *Agent) statusLine() string {
	line, _ := a.replies.Current()
	return fmt.Sprintf("admin %s, reply %q", a.currentState().Admin, trimNewline(line))
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

// countShed adds closed connections to the shed totals.
func (a *Agent) countShed(reason string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shedCount == nil {
		a.shedCount = map[string]uint64{}
	}
	a.shedCount[reason] += uint64(n)
}

func (a *Agent) shedTotals() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]uint64{"drain": 0, "rebalance": 0}
	for k, v := range a.shedCount {
		out[k] = v
	}
	return out
}
