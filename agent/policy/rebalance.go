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
	// aboveSince is when the host went above its share by the margin.
	aboveSince time.Time
	// shedding is true during a round, which ends at the fair share.
	shedding bool
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

// step decides how many connections this host sheds in a step of length
// dt, from the backend's view. Since weight tracks capacity, a server's
// fair share is its weight's share of the backend's connections; a host
// above it by the margin for the sustain time sheds its excess, at most
// MaxRate of its connections per second and never below the fair share,
// then cools down. No agent talks to another: HAProxy is the shared view.
func (rb RebalanceConfig) Step(st RebalanceState, servers []ServerLoad, self string, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
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
		st.aboveSince, st.shedding, st.carry = time.Time{}, false, 0
		return st, RebalanceDecision{Reason: "this server is not in rotation"}
	}
	fair := float64(me.Weight) * total / weights
	excess := float64(me.Conns) - fair
	d := RebalanceDecision{Fair: fair, Excess: excess}
	return rb.decide(st, d, float64(me.Conns), excess > rb.Margin*fair && excess >= 1, excess < 1, now, dt)
}

// stepLocal is the fallback without a runtime endpoint: shed while the
// host's utilisation stays above the high-water mark.
func (rb RebalanceConfig) StepLocal(st RebalanceState, conns int, utilisation float64, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
	d := RebalanceDecision{}
	if utilisation > 0 {
		target := float64(conns) * rb.HighWater / utilisation
		d.Fair, d.Excess = target, float64(conns)-target
	}
	return rb.decide(st, d, float64(conns), utilisation > rb.HighWater, utilisation <= rb.HighWater, now, dt)
}

func (rb RebalanceConfig) decide(st RebalanceState, d RebalanceDecision, conns float64, above, done bool, now time.Time, dt time.Duration) (RebalanceState, RebalanceDecision) {
	switch {
	case st.shedding && done:
		st.shedding, st.aboveSince, st.carry = false, time.Time{}, 0
		st.cooldownUntil = now.Add(rb.Cooldown)
		d.Reason = fmt.Sprintf("back at the fair share (%.0f): cooling down for %v", d.Fair, rb.Cooldown)
		return st, d
	case now.Before(st.cooldownUntil):
		d.Reason = "cooling down"
		return st, d
	case !st.shedding && !above:
		st.aboveSince = time.Time{}
		d.Reason = "within the margin of the fair share"
		return st, d
	case !st.shedding:
		if st.aboveSince.IsZero() {
			st.aboveSince = now
		}
		if now.Sub(st.aboveSince) < rb.Sustain {
			d.Reason = fmt.Sprintf("%.0f above the fair share of %.0f for %v of %v", d.Excess, d.Fair, now.Sub(st.aboveSince).Round(time.Second), rb.Sustain)
			return st, d
		}
		st.shedding = true
	}
	st.carry += rb.MaxRate * conns * dt.Seconds()
	n := math.Floor(st.carry)
	n = min(n, math.Floor(d.Excess))
	if n < 0 {
		n = 0
	}
	st.carry = min(st.carry-n, rb.MaxRate*conns+1) // no backlog beyond a second's worth
	d.Shed = int(n)
	d.Reason = fmt.Sprintf("shedding the excess of %.0f over the fair share of %.0f at %.2f%%/s", d.Excess, d.Fair, 100*rb.MaxRate)
	return st, d
}
