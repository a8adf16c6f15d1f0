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
	// evidence is how sure the rebalancer is that the host is above its
	// share: seconds, each weighed by how far above the margin the host
	// was (see decide); shedding starts at Sustain.
	evidence float64
	// shedding is true during a round, which ends at the fair share.
	shedding bool
	// rate is the round's shedding rate in connections per second.
	rate float64
	// carry accumulates fractional connections to shed.
	carry         float64
	cooldownUntil time.Time
}

// RebalanceDecision is one step's verdict.
type RebalanceDecision struct {
	Shed   int
	Fair   float64
	Excess float64
	Reason string
}

// rebalanceSpread is the shortest time a round of shedding spreads the
// excess over, so that the hosts receiving the moved connections are not
// flooded even when max_rate would allow it.
const rebalanceSpread = 10 * time.Second

// Step decides how many connections this host sheds in a step of length
// dt, from the backend's view. Since weight tracks capacity, a server's
// fair share is its weight's share of the backend's connections; a host
// above it by more than the margin sheds its excess once the evidence is
// in (see decide), at most MaxRate of its connections per second and over
// at least rebalanceSpread, never below the fair share, then cools down.
// No agent talks to another: HAProxy is the shared view. hold, when not
// empty, says why the host must not shed now (it has just joined and is
// still receiving connections): the evidence starts again afterwards.
func (rb RebalanceConfig) Step(st RebalanceState, servers []ServerLoad, self string, hold string, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
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
		st.evidence, st.shedding, st.carry = 0, false, 0
		return st, RebalanceDecision{Reason: "this server is not in rotation"}
	}
	fair := float64(me.Weight) * total / weights
	excess := float64(me.Conns) - fair
	d := RebalanceDecision{Fair: fair, Excess: excess}
	if hold != "" {
		st.evidence, st.shedding, st.carry = 0, false, 0
		d.Reason = hold
		return st, d
	}
	return rb.decide(st, d, float64(me.Conns), rb.Margin, excess < 1, now, dt)
}

// StepLocal is the fallback without a runtime endpoint: shed while the
// host's utilisation stays above the high-water mark.
func (rb RebalanceConfig) StepLocal(st RebalanceState, conns int, utilisation float64, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
	d := RebalanceDecision{}
	if utilisation > 0 {
		target := float64(conns) * rb.HighWater / utilisation
		d.Fair, d.Excess = target, float64(conns)-target
	}
	return rb.decide(st, d, float64(conns), 0, utilisation <= rb.HighWater, now, dt)
}

// decide runs a round of shedding. The host is above its share when its
// excess is more than threshold of the fair share (and at least one
// connection). The wait before a round scales with the evidence: each
// second above counts ((excess/fair - threshold) / margin)² seconds toward
// Sustain, the time a host at twice the margin waits. A host that just
// joined empty leaves the others 20-30% above their share and they start
// within seconds; noise of a few percent over the margin takes minutes and
// ends first; a second within the margin starts over.
func (rb RebalanceConfig) decide(st RebalanceState, d RebalanceDecision, conns float64, threshold float64, done bool, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
	var over float64
	if d.Fair > 0 {
		over = d.Excess/d.Fair - threshold
	}
	above := over > 0 && d.Excess >= 1
	switch {
	case st.shedding && done:
		st.shedding, st.evidence, st.carry = false, 0, 0
		st.cooldownUntil = now.Add(rb.Cooldown)
		d.Reason = fmt.Sprintf("back at the fair share (%.0f): cooling down for %v", d.Fair, rb.Cooldown)
		return st, d
	case now.Before(st.cooldownUntil):
		d.Reason = "cooling down"
		return st, d
	case !st.shedding && !above:
		st.evidence = 0
		d.Reason = "within the margin of the fair share"
		return st, d
	case !st.shedding:
		margin := max(rb.Margin, 0.01)
		st.evidence += dt.Seconds() * (over / margin) * (over / margin)
		if st.evidence < rb.Sustain.Seconds() {
			d.Reason = fmt.Sprintf("%.0f above the fair share of %.0f: %.0f%% of the evidence to shed", d.Excess, d.Fair, 100*st.evidence/rb.Sustain.Seconds())
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
	d.Reason = fmt.Sprintf("shedding the excess of %.0f over the fair share of %.0f at %.1f a second", d.Excess, d.Fair, st.rate)
	return st, d
}
