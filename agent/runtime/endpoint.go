package runtime

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
)

const (
	// PushTimeout bounds every exchange with one HAProxy's runtime API: a
	// sync, a push a CLI command waits for, the backend view. Past it a push
	// is retried in the background.
	PushTimeout = 2 * time.Second
	// infoEvery is how often an endpoint checks whether HAProxy restarted.
	infoEvery  = 2 * time.Second
	maxBackoff = 30 * time.Second
)

// Target is this host as one backend's server.
type Target struct{ Backend, Server string }

func (t Target) String() string { return t.Backend + "/" + t.Server }

// Desired is the admin state the endpoints should hold, with a generation
// so that each endpoint knows whether it applied the latest.
type Desired struct {
	Admin haproxy.Admin
	Gen   uint64
	// Push is false for a state hafeed must not push: ready that hafeed was
	// not asked to set (an operator's runtime drain must stay).
	Push bool
}

// EndpointStatus is what the agent shows of one endpoint.
type EndpointStatus struct {
	Runtime   string
	Servers   []string
	PID       int
	Applied   string
	AppliedAt time.Time
	Error     string
	ErrorAt   time.Time
	// Errors counts failed runtime API calls since the endpoint started.
	Errors uint64
}

// EndpointOptions wires an Endpoint to the agent.
type EndpointOptions struct {
	// Ports are the ports by which discovery finds this host's servers.
	Ports func() []uint16
	// Wanted is the admin state to hold.
	Wanted func() Desired
	// ListenIP is the agent-check listener's address when it is a specific
	// one: an address of this host even when no interface lists it, such as
	// 127.0.0.2 on Linux's loopback.
	ListenIP netip.Addr
}

// Endpoint keeps one HAProxy's runtime API in step with the agent.
type Endpoint struct {
	// Set once by NewEndpoint.
	cfg  config.HAProxyConfig
	rt   *haproxy.Runtime
	log  zerolog.Logger
	opts EndpointOptions
	wake chan struct{}

	// mu serialises syncs (each bounded by PushTimeout) and guards the
	// fields below; nothing but a sync waits for it: readers use shown.
	mu      sync.Mutex
	targets []Target
	applied uint64
	// looked is set once discovery has read HAProxy's servers; newSlot when
	// it later found this host in servers it was not in before, whose admin
	// state belongs to their previous occupant, so that even ready is pushed.
	looked, newSlot bool
	pid             int
	uptime          int64
	status          EndpointStatus

	// shown is the status and targets as of the last sync: a status
	// request or a shedding round must not wait for a runtime API that
	// hangs.
	shown atomic.Pointer[shownState]
}

type shownState struct {
	status  EndpointStatus
	targets []Target
}

// NewEndpoint builds an endpoint for one haproxy[] entry; Run runs it.
func NewEndpoint(cfg config.HAProxyConfig, opts EndpointOptions, log zerolog.Logger) (*Endpoint, error) {
	rt, err := haproxy.NewRuntime(cfg.Runtime)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		cfg: cfg, rt: rt, opts: opts,
		log:    log.With().Str("component", "runtime").Str("endpoint", rt.Endpoint()).Logger(),
		wake:   make(chan struct{}, 1),
		status: EndpointStatus{Runtime: rt.Endpoint()},
	}
	if cfg.Backend != "" {
		e.targets = []Target{{cfg.Backend, cfg.Server}}
	}
	e.show()
	if !rt.IsLoopbackOrUnix() {
		e.log.Warn().Msg("runtime API over TCP off loopback: it has no authentication, keep it on a protected network")
	}
	return e, nil
}

// Run keeps the endpoint in step until ctx ends, retrying with backoff.
func (e *Endpoint) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	nextInfo := time.Time{}
	for {
		now := time.Now()
		err := e.sync(ctx, now.After(nextInfo))
		if !now.Before(nextInfo) {
			nextInfo = now.Add(infoEvery)
		}
		wait := time.Until(nextInfo)
		switch {
		case errors.Is(err, ErrNotInHAProxy):
			// Not an outage: the host is not (or no longer) a server, as in
			// a farm whose servers come and go; look again at the next check.
			backoff = 0
		case err != nil:
			backoff = min(max(2*backoff, time.Second), maxBackoff)
			wait = backoff + rand.N(backoff/4+1)
		default:
			backoff = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-e.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// sync finds the targets if needed, notices restarts and applies the
// wanted admin state when it is not applied yet, within PushTimeout.
func (e *Endpoint) sync(ctx context.Context, checkInfo bool) error {
	ctx, cancel := context.WithTimeout(ctx, PushTimeout)
	defer cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.show()
	if checkInfo {
		info, err := e.rt.Info(ctx)
		if err != nil {
			return e.fail(err)
		}
		if e.pid != 0 && (info.PID != e.pid || info.UptimeSec < e.uptime) {
			e.log.Info().Int("old_pid", e.pid).Int("pid", info.PID).Msg("HAProxy restarted or reloaded: re-applying the admin state")
			e.applied = 0
		}
		e.pid, e.uptime = info.PID, info.UptimeSec
		e.status.PID = info.PID
	}
	w := e.opts.Wanted()
	// Rediscover with every restart check and before every push: in a farm
	// of server-template slots or "add server", this host's slot can change.
	if err := e.resolve(ctx, checkInfo || e.applied != w.Gen); err != nil {
		return e.fail(err)
	}
	if e.applied == w.Gen {
		return nil
	}
	if w.Push || e.newSlot {
		for _, t := range e.targets {
			if err := e.rt.SetState(ctx, t.Backend, t.Server, w.Admin); err != nil {
				return e.fail(err)
			}
		}
		e.status.Applied, e.status.AppliedAt = w.Admin.String(), time.Now()
		e.log.Info().Str("admin", w.Admin.String()).Strs("servers", targetNames(e.targets)).Msg("pushed admin state")
		e.newSlot = false
	}
	e.applied = w.Gen
	e.status.Error = ""
	return nil
}

// fail records a failed call. The caller holds e.mu.
func (e *Endpoint) fail(err error) error {
	switch {
	case errors.Is(err, haproxy.ErrNoSuchServer), errors.Is(err, haproxy.ErrNoSuchBackend):
		err = fmt.Errorf("%w (check haproxy[].backend and haproxy[].server, or leave both empty to find this host by address and port)", err)
	}
	if e.status.Error != err.Error() {
		e.log.Warn().Err(err).Msg("runtime API")
	}
	e.status.Error, e.status.ErrorAt = err.Error(), time.Now()
	e.status.Errors++
	return err
}

// resolve finds this host's servers by its addresses and ports in
// "show servers state" when the config does not name them, again when
// refresh is set. When they changed, the wanted admin state is applied
// anew. The caller holds e.mu.
func (e *Endpoint) resolve(ctx context.Context, refresh bool) error {
	if e.cfg.Backend != "" || (len(e.targets) > 0 && !refresh) {
		return nil
	}
	states, err := e.rt.ServersState(ctx, "")
	if err != nil {
		return err
	}
	first := !e.looked
	e.looked = true
	local, err := localAddrs()
	if err != nil {
		return err
	}
	if ip := e.opts.ListenIP; ip.IsValid() && !ip.IsUnspecified() {
		local = append(local, ip.Unmap())
	}
	ports := e.opts.Ports()
	var found []Target
	for _, s := range states {
		if s.Port > 0 && s.Port < 65536 && slices.Contains(ports, uint16(s.Port)) && slices.Contains(local, s.Addr.Unmap()) {
			found = append(found, Target{s.Backend, s.Name})
		}
	}
	if len(found) == 0 {
		if len(e.targets) > 0 {
			e.log.Info().Strs("servers", targetNames(e.targets)).Msg("this host is no longer a server in HAProxy")
			e.targets = nil
		}
		return fmt.Errorf("%w: no server in %s has this host's addresses and ports %v (add it, or set haproxy[].backend and haproxy[].server)", ErrNotInHAProxy, e.rt.Endpoint(), ports)
	}
	if !slices.Equal(found, e.targets) {
		e.log.Info().Strs("servers", targetNames(found)).Strs("before", targetNames(e.targets)).Msg("found this host in HAProxy")
		e.targets = found
		e.applied = 0
		// At the first look these are the servers this host already had:
		// their admin state may be an operator's, which must stay.
		e.newSlot = !first
	}
	return nil
}

// ErrNotInHAProxy says that discovery found no server for this host.
var ErrNotInHAProxy = errors.New("this host is not a server in HAProxy")

// localAddrs lists this host's interface addresses.
func localAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing local addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// PushNow applies the wanted state at once, for a CLI command that waits;
// on failure the endpoint's Run retries with backoff.
func (e *Endpoint) PushNow(ctx context.Context) error {
	err := e.sync(ctx, false)
	if err != nil {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	return err
}

// show publishes the status and targets for Snapshot and Targets. The
// caller holds e.mu.
func (e *Endpoint) show() {
	st := e.status
	st.Servers = targetNames(e.targets)
	e.shown.Store(&shownState{status: st, targets: slices.Clone(e.targets)})
}

// Snapshot is the endpoint's status as of its last sync; it never waits.
func (e *Endpoint) Snapshot() EndpointStatus { return e.shown.Load().status }

// Targets are this host's servers as of the last sync; it never waits.
func (e *Endpoint) Targets() []Target { return slices.Clone(e.shown.Load().targets) }

// backendLoad reads this host's backends and returns each server's
// connections and weight, as weightOf reads it (effectiveWeight or
// userWeight); drained, down or maint servers have weight 0.
func (e *Endpoint) backendLoad(ctx context.Context, weightOf func(haproxy.Stat) int) (map[Target]policy.ServerLoad, error) {
	out := map[Target]policy.ServerLoad{}
	seen := map[string]bool{}
	for _, t := range e.Targets() {
		if seen[t.Backend] {
			continue
		}
		seen[t.Backend] = true
		stats, err := e.rt.Stats(ctx, t.Backend)
		if err != nil {
			return nil, err
		}
		for _, s := range stats {
			if s.Server == "FRONTEND" || s.Server == "BACKEND" {
				continue
			}
			w := weightOf(s)
			if !strings.HasPrefix(s.Status, "UP") && s.Status != "no check" {
				w = 0
			}
			out[Target{t.Backend, s.Server}] = policy.ServerLoad{Name: s.Server, Conns: s.Scur, Weight: w}
		}
	}
	return out, nil
}

// effectiveWeight is the weight leastconn balances on now: the user
// weight, throttled by slowstart for a while after the server leaves maint.
func effectiveWeight(s haproxy.Stat) int { return s.Weight }

// userWeight is the weight its agent (or an operator) set: the server's
// capacity, which slowstart does not change.
func userWeight(s haproxy.Stat) int { return s.UWeight }

// targetNames lists targets as "backend/server".
func targetNames(targets []Target) []string {
	names := make([]string, 0, len(targets))
	for _, t := range targets {
		names = append(names, t.String())
	}
	return names
}
