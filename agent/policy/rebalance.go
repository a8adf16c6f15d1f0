package policy

import (
	"fmt"
	"math"
	"time"
)

// ServerLoad is one server of the backend as the runtime API shows it,
// summed over the HAProxy instances.
type ServerLoad struct {
	Name   string
	Conns  int
	Weight int
}

// RebalanceState is what the rebalancer remembers between steps.
type RebalanceState struct {
	// evidence is how sure the rebalancer is that the backend is out of
	// balance: seconds, each weighed by how far beyond the margin it was
	// (see decide); shedding starts at Sustain.
	evidence float64
	// shedding is true during a round, which ends at the fair share, or
	// early when the fair share moves by more than the margin (roundFair is
	// the share it started from).
	shedding  bool
	roundFair float64
	// rate is the round's shedding rate in connections per second.
	rate float64
	// carry accumulates fractional connections to shed.
	carry float64
	// cooldownUntil ends the pause after a round; shape is the backend as
	// the round ended: a change in it ends the pause at once.
	cooldownUntil time.Time
	shape         []share
	// entered is when the host last entered service, as Step was told;
	// filled is set once it has received its share since then.
	entered time.Time
	filled  bool
	// recent are this host's counts over the last risingWindow.
	recent []countAt
}

// share is a server's part of the backend's weight.
type share struct {
	name  string
	share float64
}

type countAt struct {
	at    time.Time
	conns int
}

// RebalanceDecision is one step's verdict.
type RebalanceDecision struct {
	Shed   int
	Fair   float64
	Excess float64
	// Deficit is the largest shortfall of another server in rotation under
	// its fair share, as a fraction of that share (1 for one that is
	// empty).
	Deficit float64
	// Kind names why the host sheds or not, in one word (see the
	// Rebalance* constants); Reason says it for a person.
	Kind   string
	Reason string
}

// The kinds of RebalanceDecision.
const (
	RebalanceNotInRotation = "not-in-rotation"
	RebalanceFilling       = "filling"
	RebalanceUnderShare    = "under-share"
	RebalanceWithinMargin  = "within-margin"
	RebalanceGathering     = "gathering-evidence"
	RebalanceCooldown      = "cooldown"
	RebalanceShedding      = "shedding"
	RebalanceDone          = "done"
)

// rebalanceSpread is the shortest time a round of shedding spreads the
// excess over, so that the hosts receiving the moved connections are not
// flooded even when max_rate would allow it.
const rebalanceSpread = 10 * time.Second

// risingWindow is how far back a host's count is compared to tell whether
// it is still receiving arrivals.
const risingWindow = 5 * time.Second

// Step decides how many connections this host sheds in a step of length
// dt, from the backend's view. Since weight tracks capacity, a server's
// fair share is its weight's share of the backend's connections. The
// backend is out of balance when this host is above its share by more
// than the margin, or another server is below its share by more than the
// margin (a host that joined empty is 100% below); once the evidence is in
// (see decide), every host above its share sheds its own excess, at most
// MaxRate of its connections per second and over at least
// rebalanceSpread, never below the fair share, re-reading the view at
// every step. Together they fill the joiners' shortfall once. No agent
// talks to another: HAProxy is the shared view.
//
// entered is when this host entered service (hafeed ready) if that was
// recently, zero otherwise. A host that entered service holds what it
// receives while it is filling (under its share, or its count still
// rising from arrivals); one that entered holding more than its share, or
// that has filled up since, sheds like any other.
//
// The cooldown after a round guards only against noise in this host's own
// count: a change in the backend (a server joining or leaving rotation, a
// weight's share moving by more than the margin, another server short of
// its share by more than the margin) ends it at once. When the fair share
// moves by more than the margin during a round, the round's rate follows
// the excess against the share as it is now.
func (rb RebalanceConfig) Step(st RebalanceState, servers []ServerLoad, self string, entered time.Time, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
	var total, weights float64
	var me *ServerLoad
	for i, s := range servers {
		if s.Weight <= 0 {
			continue // drained or down: out of rotation
		}
		total += float64(s.Conns)
		weights += float64(s.Weight)
		if s.Name == self {
			me = &servers[i]
		}
	}
	if me == nil || weights == 0 {
		st = RebalanceState{entered: st.entered, filled: st.filled}
		return st, RebalanceDecision{Kind: RebalanceNotInRotation, Reason: "this server is not in rotation"}
	}
	fair := float64(me.Weight) * total / weights
	d := RebalanceDecision{Fair: fair, Excess: float64(me.Conns) - fair}
	shape := make([]share, 0, len(servers))
	for _, s := range servers {
		if s.Weight <= 0 {
			continue
		}
		shape = append(shape, share{s.Name, float64(s.Weight) / weights})
		if s.Name == self {
			continue
		}
		if f := float64(s.Weight) * total / weights; f-float64(s.Conns) >= 1 {
			d.Deficit = max(d.Deficit, (f-float64(s.Conns))/f)
		}
	}

	// Filling: what a host receives after entering service stays.
	st.recent = append(st.recent, countAt{now, me.Conns})
	for len(st.recent) > 1 && now.Sub(st.recent[1].at) >= risingWindow {
		st.recent = st.recent[1:]
	}
	if !entered.Equal(st.entered) {
		st.entered, st.filled = entered, entered.IsZero()
	}
	rise := me.Conns - st.recent[0].conns
	rising := rise > max(2, int(0.02*fair))
	if !st.filled && float64(me.Conns) >= fair*(1-rb.Margin) && !rising {
		st.filled = true
	}
	if !st.filled {
		st.evidence, st.shedding, st.carry = 0, false, 0
		d.Kind = RebalanceFilling
		d.Reason = fmt.Sprintf("filling: %d of its fair share of %.0f, %v after entering service", me.Conns, fair, now.Sub(entered).Round(time.Second))
		if rising {
			d.Reason += fmt.Sprintf(", still receiving (%+d in %v)", rise, risingWindow)
		}
		return st, d
	}

	ownOver, deficitOver := d.Excess/fair-rb.Margin, d.Deficit-rb.Margin
	if now.Before(st.cooldownUntil) && (deficitOver > 0 || shapeMoved(st.shape, shape, rb.Margin)) {
		// The cooldown guards against noise in this host's own count after
		// a round; a server that joined or left, a weight's share that
		// moved, or another server short of its share by more than the
		// margin is the backend changing, and is evaluated at once.
		st.cooldownUntil, st.evidence = time.Time{}, 0
	}
	if st.shedding && st.roundFair > 0 && math.Abs(fair-st.roundFair) > rb.Margin*st.roundFair {
		// The fair share moved under the round (a weight settling, a
		// server joining): the round goes on at the rate of the excess
		// against the share as it is now.
		st.roundFair = fair
		st.rate = min(rb.MaxRate*float64(me.Conns), max(d.Excess/rebalanceSpread.Seconds(), 1))
	}
	over := max(ownOver, deficitOver)
	if d.Excess < 1 {
		over = 0 // nothing of this host's to shed
	}
	st, d = rb.decide(st, d, float64(me.Conns), over, d.Excess < 1, now, dt)
	if d.Kind == RebalanceDone {
		st.shape = shape
	}
	if d.Kind == RebalanceWithinMargin && d.Excess < 1 {
		d.Kind = RebalanceUnderShare
		d.Reason = fmt.Sprintf("at or under its fair share (%d of %.0f)", me.Conns, fair)
	}
	if st.shedding && st.roundFair == 0 {
		st.roundFair = fair
	}
	return st, d
}

// shapeMoved says whether the servers in rotation changed, or a weight's
// share moved by more than margin of itself.
func shapeMoved(before, now []share, margin float64) bool {
	if len(before) != len(now) {
		return true
	}
	for i := range now {
		if before[i].name != now[i].name || math.Abs(now[i].share-before[i].share) > margin*before[i].share {
			return true
		}
	}
	return false
}

// StepLocal is the fallback without a runtime endpoint: shed while the
// host's utilisation stays above the high-water mark.
func (rb RebalanceConfig) StepLocal(st RebalanceState, conns int, utilisation float64, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
	d := RebalanceDecision{}
	if utilisation > 0 {
		target := float64(conns) * rb.HighWater / utilisation
		d.Fair, d.Excess = target, float64(conns)-target
	}
	var over float64
	if d.Fair > 0 && d.Excess >= 1 {
		over = d.Excess / d.Fair
	}
	return rb.decide(st, d, float64(conns), over, utilisation <= rb.HighWater, now, dt)
}

// decide runs a round of shedding. over is how far beyond the margin the
// backend is out of balance (this host above its share, or another below
// its own), as a fraction of the share; done says this host has nothing
// left to shed. The wait before a round scales with the evidence: each
// second out of balance counts (over / margin)² seconds toward Sustain,
// the time a host at twice the margin waits. A host that just joined empty
// is 100% below its share and the others start within a second; noise of
// a few percent over the margin takes minutes and ends first; a second
// within the margin starts over. No single step brings more than half the
// evidence.
func (rb RebalanceConfig) decide(st RebalanceState, d RebalanceDecision, conns float64, over float64, done bool, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
	switch {
	case st.shedding && done:
		st.shedding, st.evidence, st.carry, st.roundFair = false, 0, 0, 0
		st.cooldownUntil = now.Add(rb.Cooldown)
		d.Kind = RebalanceDone
		d.Reason = fmt.Sprintf("back at the fair share (%.0f): cooling down for %v unless the backend changes", d.Fair, rb.Cooldown)
		return st, d
	case now.Before(st.cooldownUntil):
		d.Kind = RebalanceCooldown
		d.Reason = fmt.Sprintf("cooling down for %v after a round: the backend has not changed since", st.cooldownUntil.Sub(now).Round(time.Second))
		return st, d
	case !st.shedding && over <= 0:
		st.evidence = 0
		d.Kind = RebalanceWithinMargin
		d.Reason = "within the margin of the fair share"
		return st, d
	case !st.shedding:
		margin := max(rb.Margin, 0.01)
		// One sample is never the whole evidence, however far out it is:
		// a glitch in one view does not move connections.
		st.evidence += min(dt.Seconds()*(over/margin)*(over/margin), rb.Sustain.Seconds()/2)
		if st.evidence < rb.Sustain.Seconds() {
			d.Kind = RebalanceGathering
			d.Reason = fmt.Sprintf("%.0f above the fair share of %.0f: %.0f%% of the evidence to shed", d.Excess, d.Fair, 100*st.evidence/rb.Sustain.Seconds())
			if d.Deficit > rb.Margin {
				d.Reason += fmt.Sprintf(" (a server is %.0f%% under its share)", 100*d.Deficit)
			}
			return st, d
		}
		st.shedding = true
		st.rate = min(rb.MaxRate*conns, max(d.Excess/rebalanceSpread.Seconds(), 1))
	}
	st.carry += st.rate * dt.Seconds()
	n := math.Floor(st.carry)
	n = min(n, math.Floor(d.Excess))
	if n < 0 {
		n = 0
	}
	st.carry = min(st.carry-n, st.rate+1) // no backlog beyond a second's worth
	d.Shed = int(n)
	d.Kind = RebalanceShedding
	d.Reason = fmt.Sprintf("shedding the excess of %.0f over the fair share of %.0f at %.1f a second", d.Excess, d.Fair, st.rate)
	return st, d
}
