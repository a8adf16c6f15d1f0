package policy

import (
	"math"
	"time"
)

// LoadModel explains a host's utilisation as a baseline that its
// connections do not cause (runtime, timers, housekeeping, other
// processes) plus what the connections add:
//
//	u = Baseline + Cost × connections / reference capacity
//
// The baseline is measured, not fitted: it is the utilisation while the
// host holds (almost) no connections, as it does while it starts in maint,
// before it joins, and after a drain. A fit of utilisation against
// connections on a host in service is biased, because the balancer moves
// connections away from a host whose utilisation rises (the regression
// then sees fewer connections where the load is higher). Until the
// baseline has been measured, the utilisation is split between baseline
// and connections by a prior: connections cost what the reference capacity
// implies (Cost 1), and the fewer connections a host holds relative to the
// reference, the more of its load counts as baseline.
type LoadModel struct {
	// Baseline is the measured baseline, valid when Measured > 0.
	Baseline float64
	// Measured is how many seconds of near-empty samples stand behind
	// Baseline, up to baselineMemory.
	Measured float64
}

const (
	// baselineMemory is the time constant of the baseline's average over
	// near-empty samples: a new empty period replaces an old baseline
	// within about that much of it.
	baselineMemory = time.Minute
	// priorSplit is the share of the reference capacity, as connections,
	// at which the prior counts a host's load as half baseline and half
	// connections (a ridge regression at one operating point).
	priorSplit = 0.2
	// costNoise is the share of the reference capacity, as connections,
	// below which the cost they show counts less than the prior: a few
	// connections tell little about what connections cost.
	costNoise = 0.05
	// rampFrom is the share of the load above the baseline below which the
	// headroom alone sets the capacity.
	rampFrom = 0.2
	// minCost bounds the cost below, so that noise does not make a host's
	// capacity unbounded.
	minCost = 0.01
)

// Observe records one sample standing for dt of time; empty says the host
// held (almost) no connections, so that the sample measures the baseline.
func (m LoadModel) Observe(u float64, empty bool, dt time.Duration) LoadModel {
	if !empty {
		return m
	}
	w := max(dt.Seconds(), 0.001)
	if m.Measured == 0 {
		return LoadModel{Baseline: u, Measured: w}
	}
	// An average over the near-empty samples that forgets with
	// baselineMemory; while the host is in service it is kept as it is.
	m.Measured = min(m.Measured+w, baselineMemory.Seconds())
	m.Baseline += w / m.Measured * (u - m.Baseline)
	return m
}

// ModelFit is the model's estimate at one sample.
type ModelFit struct {
	// Baseline is the utilisation with no connections (relative to the
	// target, like Utilisation); Measured says it was measured on this
	// host rather than assumed.
	Baseline float64
	Measured bool
	// Cost is the utilisation that reference_capacity connections add on
	// top of the baseline: 1 for a reference host, 2 for one whose
	// connections cost twice as much.
	Cost float64
	// Headroom is 1 - Baseline: the share of the target left for
	// connections.
	Headroom float64
	// Share is the part of the utilisation above the baseline, the part
	// the connections cause.
	Share float64
}

// Fit estimates the model at x = connections / reference capacity and
// utilisation u; priorCost is the cost assumed without evidence (1 is the
// reference's).
func (m LoadModel) Fit(x, u, priorCost float64) ModelFit {
	f := ModelFit{Cost: priorCost}
	switch {
	case m.Measured > 0:
		f.Baseline, f.Measured = m.Baseline, true
	case x > 0:
		// Ridge regression at one point: minimise
		// (u - b - k·x)² + λb·b² + λk·(k - priorCost)²
		// with λk/λb = priorSplit², so a host at priorSplit of the
		// reference counts half its load as baseline.
		s2 := priorSplit * priorSplit
		k := (x*u + s2*priorCost) / (x*x + s2)
		f.Baseline = u - k*x
	default:
		f.Baseline = u
	}
	f.Baseline = min(max(f.Baseline, 0), 0.99)
	if x > 0 {
		// The cost at this point, by a ridge regression with the baseline
		// known: a few connections tell little about their cost.
		c2 := costNoise * costNoise
		f.Cost = max((x*(u-f.Baseline)+c2*priorCost)/(x*x+c2), minCost)
	}
	f.Headroom = 1 - f.Baseline
	if u > 0 {
		f.Share = min(max(1-f.Baseline/u, 0), 1)
	}
	return f
}

// Capacity is the host's capacity relative to the reference at x =
// connections / reference capacity and utilisation u; settled (0..1) says
// how steady the host's connection count is.
//
// The headroom capacity Headroom / Cost is what the host can hold at the
// target, and does not depend on how many connections it holds now, so a
// host with few connections does not look small. Under leastconn it fills
// every host so that all reach the target together. The observed capacity
// x / u, which hafeed used alone before, fills them to equal utilisation
// instead, whatever their baselines, but is proportional to the count where
// the baseline dominates. The two are blended geometrically by Share: up to
// rampFrom the headroom alone, from rampFrom+0.25 the observed ratio alone
// (the two coincide without a baseline); with an assumed baseline the ramp
// starts 0.3 later. While the count changes fast (joining, draining) the
// observed ratio is not a steady state, and settled hands the weight back
// to the headroom. Where connections cause little of the load their
// measured cost is noise, so the headroom takes at least priorCost: hosts
// whose sockets cost nothing measurable get the same weight for the same
// headroom, not unbounded ones.
func (f ModelFit) Capacity(x, u, priorCost, settled float64) float64 {
	floor := priorCost * min(max(2*(1-f.Share), 0), 1)
	headroom := max(f.Headroom, 0.01) / max(f.Cost, floor)
	if x <= 0 || u <= 0 {
		return headroom
	}
	from := rampFrom
	if !f.Measured {
		from += 0.3
	}
	blend := min(max((f.Share-from)/0.25, 0), 1) * settled
	return math.Pow(headroom, 1-blend) * math.Pow(x/u, blend)
}
