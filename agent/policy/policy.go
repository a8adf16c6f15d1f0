package policy

import (
	"fmt"
	"math"
	"time"
)

// Observation is what one sample tells the policy; PolicyConfig.Observe
// builds it from the sample's readings.
type Observation struct {
	// Connections is the host's established connections, 0 when the count
	// is stale.
	Connections int
	// Utilisation is the host's load relative to its targets: 1 means at
	// target. Only meaningful when Fresh.
	Utilisation float64
	// Bottleneck is the signal that set Utilisation ("" with none).
	Bottleneck string
	// Fresh is false when no load signal is recent enough to count (see
	// policy.stale_after).
	Fresh bool
	// Peers is how many HAProxy instances poll the agent (at least 1); the
	// overload guard splits the host's connection budget between them.
	Peers int
	// Partial is set while a targeted signal has never been read (a CPU
	// rate needs two readings): the utilisation lacks it, and does not
	// count as the host's baseline.
	Partial bool
	// BackendWeight is the mean weight, in percent, of the other servers
	// in rotation in this host's backend, as a runtime endpoint shows it;
	// 0 when unknown. A host without evidence of its own starts there.
	BackendWeight float64
}

// State is what the policy remembers between samples.
type State struct {
	// Start is when the agent started; the estimate is trusted only after
	// the blackout.
	Start time.Time
	// Model is the fitted load model.
	Model LoadModel
	// PriorCost is the per-connection cost assumed without evidence: the
	// reference's (1), or that of the backend's average server when the
	// host started without evidence of its own; 0 until decided.
	PriorCost float64
	// SmoothU and SmoothX are the utilisation and the connections (over
	// the reference capacity), smoothed.
	SmoothU, SmoothX float64
	// SlowX is the connections smoothed settleFactor times slower: where
	// it differs from SmoothX, the host is joining or draining.
	SlowX float64
	// Capacity is the estimate of the connections this host holds at
	// utilisation 1; 0 until the first fresh sample.
	Capacity float64
	// WeightPercent is the weight last reported, 0 if none yet.
	WeightPercent int
	// LastAt and LastFresh are the times of the previous and of the last
	// fresh sample.
	LastAt    time.Time
	LastFresh time.Time
	// Overloaded is true while the overload guard caps maxconn;
	// ReleaseUntil ends the window in which the cap is lifted again.
	Overloaded   bool
	ReleaseUntil time.Time
	// OutOfRangeSince is when the weight went under 20% or to the 256%
	// cap, where reference_capacity no longer fits; zero while in range.
	OutOfRangeSince time.Time
}

// Decision is the policy's verdict on one sample, with its explanation.
type Decision struct {
	Utilisation float64
	Bottleneck  string
	// Capacity is the smoothed capacity estimate in connections.
	Capacity float64
	// Model is the load model's estimate at this sample.
	Model ModelFit
	// WeightPercent is the weight to report; 0 reports none (HAProxy keeps
	// the weight it has).
	WeightPercent int
	// Maxconn is sent when SendMaxconn is set: the overload cap, or the
	// configured maxconn when the cap is lifted (0 means unlimited).
	Maxconn     int
	SendMaxconn bool
	Reason      string
	// SuggestedReference is set when the weight has sat under 20% or at
	// the 256% cap for ReferenceAdviceAfter: a reference_capacity that
	// would bring it back to 100%.
	SuggestedReference int
}

// settleFactor is how much slower SlowX follows the connections than
// SmoothX.
const settleFactor = 6

// SettleTime is how long the weights take to settle after a host joins:
// the blackout, then the slow average of its connections.
func (p PolicyConfig) SettleTime() time.Duration {
	return p.Blackout + settleFactor*p.Smoothing
}

// ReferenceAdviceAfter is how long the weight must sit out of range before
// hafeed suggests another reference_capacity.
const ReferenceAdviceAfter = 3 * time.Minute

// Step is the weight policy, a pure function of the configuration, the
// previous state and one observation.
//
// HAProxy's leastconn sends a new connection to the server with the lowest
// (connections+1)/weight. If a host's weight is proportional to its
// capacity, connections/weight is proportional to its utilisation, so every
// HAProxy, counting only its own connections, sends each new connection to
// the least utilised host. The capacity comes from a load model that
// separates a baseline the connections do not cause from their cost (see
// LoadModel and ModelFit.Capacity), so a host with few connections, or
// sockets that cost nothing measurable, is not mistaken for a small one.
// What the model alone gets wrong:
//
//   - the first Blackout after start reports no weight at all, so HAProxy
//     keeps the one it has while the estimate settles;
//   - a host without evidence of its own starts from the backend's mean
//     weight when a runtime endpoint shows it (else from the reference);
//   - the estimate is smoothed (EWMA over Smoothing), weight changes under
//     DeadBand are not reported and the weight moves at most MaxStep a
//     second;
//   - the weight is 100% x capacity / ReferenceCapacity, within 1..256%:
//     never 0% from load, which is reserved for the admin states;
//   - above HighWater utilisation the host asks for maxconn, its capacity
//     at the high-water mark shared between the polling HAProxies, and
//     lifts it again below 90% of the mark.
func (p PolicyConfig) Step(prev State, obs Observation, now time.Time) (State, Decision) {
	next := prev
	if next.Start.IsZero() {
		next.Start = now
	}
	dt := now.Sub(prev.LastAt)
	if prev.LastAt.IsZero() {
		dt = 0
	}
	next.LastAt = now
	d := Decision{Utilisation: obs.Utilisation, Bottleneck: obs.Bottleneck, Capacity: prev.Capacity, WeightPercent: prev.WeightPercent}
	reference := float64(max(p.ReferenceCapacity, 1))

	if !obs.Fresh {
		d.Reason = "no load signal yet"
		if !prev.LastFresh.IsZero() {
			d.Reason = fmt.Sprintf("no fresh load signal since %s: holding the last weight (fail-static)", prev.LastFresh.Format(time.TimeOnly))
		}
		p.guard(&next, &d, obs, now)
		return next, d
	}
	next.LastFresh = now

	// A sample stands for the time since the previous one, at most a few
	// seconds (a stalled loop does not make one sample count for long).
	span := min(max(dt, 0), 5*time.Second)
	if span == 0 {
		span = time.Second
	}
	empty := obs.Connections < p.MinConnections
	if !obs.Partial {
		next.Model = prev.Model.Observe(obs.Utilisation, empty, span)
	}
	x := float64(obs.Connections) / reference
	if next.PriorCost == 0 {
		switch {
		case obs.BackendWeight > 0 && empty:
			// Start like the backend's average server: the cost that
			// gives the backend's mean weight with this host's headroom.
			headroom := next.Model.Fit(0, obs.Utilisation, 1).Headroom
			next.PriorCost = min(max(headroom*100/obs.BackendWeight, 1.0/2.56), 100)
		case !empty || now.Sub(next.Start) >= p.Blackout:
			next.PriorCost = 1
		}
	}
	prior := next.PriorCost
	if prior == 0 {
		prior = 1
	}
	// The inputs are smoothed (EWMA over Smoothing) before the model
	// reads them: their ratio and the share above the baseline amplify
	// the noise of a single reading.
	alpha := 1.0
	if p.Smoothing > 0 && prev.LastFresh.After(time.Time{}) {
		alpha = 1 - math.Exp(-float64(dt)/float64(p.Smoothing))
	}
	next.SmoothU = prev.SmoothU + alpha*(obs.Utilisation-prev.SmoothU)
	next.SmoothX = prev.SmoothX + alpha*(x-prev.SmoothX)
	slow := 1.0
	if p.Smoothing > 0 && prev.LastFresh.After(time.Time{}) {
		slow = 1 - math.Exp(-float64(dt)/float64(settleFactor*p.Smoothing))
	}
	next.SlowX = prev.SlowX + slow*(x-prev.SlowX)
	u, sx := next.SmoothU, next.SmoothX
	// A host whose connections change fast (joining, draining) is not in
	// the steady state the observed ratio describes.
	settled := 1.0
	if hi := max(next.SmoothX, next.SlowX); hi > 0 {
		settled = math.Pow(min(next.SmoothX, next.SlowX)/hi, 2)
	}
	if empty || u < p.IdleUtilisation {
		sx = 0 // too few connections or too little load to measure their cost
	}
	fit := next.Model.Fit(sx, u, prior)
	d.Model = fit
	next.Capacity = fit.Capacity(sx, u, prior, settled) * reference
	d.Reason = "capacity estimate"
	if prev.Capacity == 0 {
		d.Reason = "first capacity estimate"
	}
	baseline := "assumed"
	if fit.Measured {
		baseline = "measured"
	}
	if sx == 0 || fit.Share < 0.5 {
		d.Reason += fmt.Sprintf(" from headroom %.0f%% (baseline %.2f %s)", 100*fit.Headroom, fit.Baseline, baseline)
	} else {
		d.Reason += fmt.Sprintf(", connections cause %.0f%% of the load (baseline %.2f %s)", 100*fit.Share, fit.Baseline, baseline)
	}
	d.Capacity = next.Capacity

	if now.Sub(next.Start) < p.Blackout {
		d.WeightPercent = 0
		d.Reason = fmt.Sprintf("blackout for %v after start: %s, weight not reported yet", p.Blackout, d.Reason)
		p.guard(&next, &d, obs, now)
		return next, d
	}

	target := weightPercent(next.Capacity, p.ReferenceCapacity)
	w := target
	if old := prev.WeightPercent; old > 0 {
		// max_step is per second: the same speed at any interval.
		stepFactor := math.Pow(1+p.MaxStep, max(dt.Seconds(), 0))
		lo := min(int(math.Floor(float64(old)/stepFactor)), old-1)
		hi := max(int(math.Ceil(float64(old)*stepFactor)), old+1)
		w = min(max(w, lo, 1), hi, 256)
		if target != old && math.Abs(float64(target-old)) < p.DeadBand*float64(old) {
			w = old
			d.Reason += ", within the dead band"
		} else if w != target {
			d.Reason += fmt.Sprintf(", moving toward %d%% by at most %.0f%% a second", target, 100*p.MaxStep)
		}
	} else if next.PriorCost != 1 && next.PriorCost != 0 {
		d.Reason += fmt.Sprintf(", starting from the backend's mean weight %.0f%%", obs.BackendWeight)
	}
	d.WeightPercent = w
	next.WeightPercent = w
	p.adviseReference(&next, &d, now)
	p.guard(&next, &d, obs, now)
	return next, d
}

// adviseReference suggests another reference_capacity when the weight has
// sat out of the range where it can steer: under 20% or at the 256% cap.
func (p PolicyConfig) adviseReference(next *State, d *Decision, now time.Time) {
	if d.WeightPercent >= 20 && d.WeightPercent < 256 {
		next.OutOfRangeSince = time.Time{}
		return
	}
	if next.OutOfRangeSince.IsZero() {
		next.OutOfRangeSince = now
	}
	if now.Sub(next.OutOfRangeSince) >= ReferenceAdviceAfter && d.Capacity > 0 {
		d.SuggestedReference = SuggestReference(d.Capacity)
	}
}

// SuggestReference rounds a capacity to two significant digits, a value an
// operator would write.
func SuggestReference(capacity float64) int {
	if capacity < 1 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(capacity))-1)
	return max(1, int(math.Round(capacity/mag)*mag))
}

// weightPercent maps a capacity to HAProxy's weight percentage, 1..256.
func weightPercent(capacity float64, reference int) int {
	w := math.Round(100 * capacity / float64(reference))
	return int(min(max(w, 1), 256))
}

// maxconnRelease is how long the cap is lifted explicitly after overload,
// so every HAProxy polling hears it.
const maxconnRelease = 30 * time.Second

// guard is the overload guard: it sets maxconn while utilisation is above
// the high-water mark and sends the configured maxconn for a while after.
func (p PolicyConfig) guard(next *State, d *Decision, obs Observation, now time.Time) {
	if p.HighWater <= 0 {
		return
	}
	if obs.Fresh {
		switch {
		case obs.Utilisation > p.HighWater && obs.Connections >= p.MinConnections:
			// With fewer connections than that the load is not theirs, and a
			// cap on connections would not relieve it.
			next.Overloaded = true
		case next.Overloaded && obs.Utilisation < 0.9*p.HighWater:
			next.Overloaded = false
			next.ReleaseUntil = now.Add(maxconnRelease)
		}
	}
	switch {
	case next.Overloaded:
		capacity := next.Capacity
		if capacity == 0 && obs.Utilisation > 0 {
			capacity = float64(obs.Connections) / obs.Utilisation
		}
		peers := max(obs.Peers, 1)
		d.Maxconn = max(1, int(capacity*p.HighWater)/peers)
		d.SendMaxconn = true
		d.Reason += fmt.Sprintf("; overloaded (utilisation %.2f above %.2f): maxconn %d per HAProxy", obs.Utilisation, p.HighWater, d.Maxconn)
	case now.Before(next.ReleaseUntil):
		d.Maxconn, d.SendMaxconn = p.Maxconn, true
	}
}

// Combine turns signal values into one utilisation: each signal over its
// target, then the largest (the bottleneck), or the weighted mean when a
// mix is configured. Signals without a target are ignored; ok is false when
// no signal counts.
func Combine(targets Targets, mix map[string]float64, values map[string]float64) (utilisation float64, bottleneck string, ok bool) {
	var sum, weights, worst float64
	for name, v := range values {
		t := targets.Of(name)
		if t <= 0 || (len(mix) > 0 && mix[name] <= 0) {
			continue
		}
		u := v / t
		if !ok || u > worst || (u == worst && name < bottleneck) {
			worst, bottleneck = u, name
		}
		ok = true
		sum += mix[name] * u
		weights += mix[name]
	}
	if len(mix) > 0 && weights > 0 {
		return sum / weights, bottleneck, ok
	}
	return worst, bottleneck, ok
}
