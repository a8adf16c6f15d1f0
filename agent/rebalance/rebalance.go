package rebalance

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/agent/shed"
	hook "github.com/hafeed/hafeed/shed"
)

// Status is what the agent shows of the rebalancer's last step.
type Status struct {
	At     time.Time
	Fair   float64
	Excess float64
	// Kind names why the host sheds or not (policy.Rebalance*), Reason
	// says it for a person.
	Kind   string
	Reason string
	// Shed is how many connections the rebalancer closed since it started.
	Shed  int
	Error string
}

// BackendView is the backend as the HAProxies see it (agent/runtime.Set).
type BackendView interface {
	BackendView(ctx context.Context) (servers []policy.ServerLoad, self string, err error)
}

// Options wires a Rebalancer to the agent; each is read at every step, so
// that a reload takes effect at the next one.
type Options struct {
	Config func() policy.RebalanceConfig
	// Ready says whether the host is in service (admin state ready).
	Ready func() bool
	// View is the backend view in effect; nil without runtime endpoints,
	// when Local stands in for it.
	View func() BackendView
	// Local is this host's connections and utilisation from the last
	// sample; false before the first.
	Local func() (connections int, utilisation float64, ok bool)
	// Closer is the way to shed in effect; nil when there is none.
	Closer func() shed.Closer
	// Entered is when this host entered service (hafeed ready) if it was
	// recently enough for what it receives to be held; zero otherwise.
	Entered func(now time.Time) time.Time
	Log     zerolog.Logger
}

// Rebalancer sheds this host's excess over its fair share.
type Rebalancer struct {
	// Set once by New.
	opts Options
	log  zerolog.Logger

	mu     sync.Mutex // guards status
	status *Status
}

// New builds a rebalancer; Run runs it.
func New(opts Options) *Rebalancer {
	return &Rebalancer{opts: opts, log: opts.Log.With().Str("component", "rebalance").Logger()}
}

// Status is the last step's; false while rebalancing is off.
func (r *Rebalancer) Status() (Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == nil {
		return Status{}, false
	}
	return *r.status, true
}

func (r *Rebalancer) setStatus(s *Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = s
}

// stepEvery is how often the rebalancer steps; stepTimeout bounds the
// runtime API calls and closes of one step, so that a hung HAProxy holds
// the closer (which a drain's job shares) at most that long.
const (
	stepEvery   = time.Second
	stepTimeout = 2 * time.Second
)

// Run steps once a second until ctx ends.
func (r *Rebalancer) Run(ctx context.Context) error {
	ticker := time.NewTicker(stepEvery)
	defer ticker.Stop()
	var st policy.RebalanceState
	last := time.Now()
	total := 0
	lastKind := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		now := time.Now()
		dt := now.Sub(last)
		last = now
		rb := r.opts.Config()
		if !rb.Enabled {
			// A reload turned it off: status shows no step of a rebalancer
			// that does not run.
			st = policy.RebalanceState{}
			r.setStatus(nil)
			continue
		}
		status := Status{At: now, Shed: total}
		if !r.opts.Ready() {
			st = policy.RebalanceState{}
			status.Reason = "not ready: the drain moves connections instead"
			r.setStatus(&status)
			continue
		}
		var closed int
		st, closed = r.step(ctx, rb, st, &status, now, dt)
		total += closed
		status.Shed = total
		r.setStatus(&status)
		if status.Kind != lastKind && status.Kind != policy.RebalanceShedding {
			// Why a host does not shed, once each time it changes, so that
			// the log tells why a new host stays empty.
			r.log.Info().Str("kind", status.Kind).Float64("fair", status.Fair).Float64("excess", status.Excess).Msg(status.Reason)
		}
		lastKind = status.Kind
	}
}

// step decides and sheds once, within stepTimeout; it fills status and
// returns the new state and how many connections it closed.
func (r *Rebalancer) step(ctx context.Context, rb policy.RebalanceConfig, st policy.RebalanceState, status *Status, now time.Time, dt time.Duration) (policy.RebalanceState, int) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var d policy.RebalanceDecision
	if view := r.opts.View(); view != nil {
		servers, self, err := view.BackendView(ctx)
		if err != nil {
			status.Error = err.Error()
			return st, 0
		}
		own, _, ok := r.opts.Local()
		if !ok {
			status.Reason = "no count of this host's own connections yet, which bounds what it sheds"
			return st, 0
		}
		st, d = rb.Step(st, boundSelf(servers, self, own), self, r.opts.Entered(now), now, dt)
	} else {
		conns, util, ok := r.opts.Local()
		if !ok {
			status.Reason = "no sample yet"
			return st, 0
		}
		st, d = rb.StepLocal(st, conns, util, now, dt)
	}
	status.Fair, status.Excess, status.Kind, status.Reason = d.Fair, d.Excess, d.Kind, d.Reason
	c := r.opts.Closer()
	if d.Shed <= 0 || c == nil {
		return st, 0
	}
	closed, err := c.Close(ctx, d.Shed, hook.ReasonRebalance)
	ev := r.log.Info()
	if err != nil {
		status.Error = err.Error()
		ev = r.log.Warn().Err(err)
	}
	ev.Int("closed", closed).Float64("fair", d.Fair).Float64("excess", d.Excess).Str("reason", d.Reason).Msg("rebalance shed connections")
	return st, closed
}

// boundSelf is servers with this host's count, as the HAProxies report it,
// bounded by its own count of its connections: the excess and the rate a
// host sheds at are shares of what it holds, whatever an HAProxy reports
// (one that listed this host at a million sessions while it held 50 made
// it shed 50,000 a second). A count that lags arrivals bounds it low, which
// sheds less, never more.
func boundSelf(servers []policy.ServerLoad, self string, own int) []policy.ServerLoad {
	out := slices.Clone(servers)
	for i := range out {
		if out[i].Name == self {
			out[i].Conns = min(out[i].Conns, own)
		}
	}
	return out
}
