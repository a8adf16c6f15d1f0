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
}

// State is what the policy remembers between samples.
type State struct {
	// Start is when the agent started; the estimate is trusted only after
	// the blackout.
	Start time.Time
	// Capacity is the smoothed estimate of the connections this host holds
	// at utilisation 1; 0 until the first trusted sample.
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
}

// Decision is the policy's verdict on one sample, with its explanation.
type Decision struct {
	Utilisation float64 `json:"utilisation"`
	Bottleneck  string  `json:"bottleneck"`
	// Capacity is the smoothed capacity estimate in connections.
	Capacity float64 `json:"capacity"`
	// WeightPercent is the weight to report; 0 reports none (HAProxy keeps
	// the weight it has).
	WeightPercent int `json:"weight_percent"`
	// Maxconn is sent when SendMaxconn is set: the overload cap, or the
	// configured maxconn when the cap is lifted (0 means unlimited).
	Maxconn     int    `json:"maxconn"`
	SendMaxconn bool   `json:"send_maxconn"`
	Reason      string `json:"reason"`
}

// Step is the weight policy, a pure function of the configuration, the
// previous state and one observation.
//
// HAProxy's leastconn sends a new connection to the server with the lowest
// (connections+1)/weight. If a host's weight is proportional to its capacity
// (connections / utilisation, the estimate gRPC's weighted round robin makes
// from qps / utilisation), connections/weight is proportional to its
// utilisation, so every HAProxy, counting only its own connections, sends
// each new connection to the least utilised host. The estimate does not
// depend on how many connections a host has, so stale weights in several
// HAProxies do not feed back into it. What the formula alone gets wrong:
//
//   - near idle (few connections or utilisation under IdleUtilisation) the
//     ratio is noise: the previous estimate stands, or the reference
//     capacity (weight 100%) before there is one;
//   - the first Blackout after start reports no weight at all, so HAProxy
//     keeps the one it has while the estimate settles;
//   - the estimate is smoothed (EWMA over Smoothing), weight changes under
//     DeadBand are not reported and each step moves at most MaxStep;
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

	if !obs.Fresh {
		d.Reason = "no load signal yet"
		if !prev.LastFresh.IsZero() {
			d.Reason = fmt.Sprintf("no fresh load signal since %s: holding the last weight (fail-static)", prev.LastFresh.Format(time.TimeOnly))
		}
		p.guard(&next, &d, obs, now)
		return next, d
	}
	next.LastFresh = now

	trusted := obs.Connections >= p.MinConnections && obs.Utilisation >= p.IdleUtilisation
	switch {
	case trusted && prev.Capacity == 0:
		next.Capacity = float64(obs.Connections) / obs.Utilisation
		d.Reason = "first capacity estimate"
	case trusted:
		raw := float64(obs.Connections) / obs.Utilisation
		alpha := 1.0
		if p.Smoothing > 0 {
			alpha = 1 - math.Exp(-float64(dt)/float64(p.Smoothing))
		}
		next.Capacity = prev.Capacity + alpha*(raw-prev.Capacity)
		d.Reason = "capacity estimate"
	case prev.Capacity == 0:
		d.Reason = "near idle, no estimate yet: reference capacity"
	default:
		d.Reason = "near idle: keeping the last estimate"
	}
	d.Capacity = next.Capacity

	if now.Sub(next.Start) < p.Blackout {
		d.WeightPercent = 0
		d.Reason = fmt.Sprintf("blackout for %v after start: %s, weight not reported yet", p.Blackout, d.Reason)
		p.guard(&next, &d, obs, now)
		return next, d
	}

	capacity := next.Capacity
	if capacity == 0 {
		capacity = float64(p.ReferenceCapacity)
	}
	target := weightPercent(capacity, p.ReferenceCapacity)
	w := target
	if old := prev.WeightPercent; old > 0 {
		lo := min(int(math.Floor(float64(old)*(1-p.MaxStep))), old-1)
		hi := max(int(math.Ceil(float64(old)*(1+p.MaxStep))), old+1)
		w = min(max(w, lo, 1), hi, 256)
		if target != old && math.Abs(float64(target-old)) < p.DeadBand*float64(old) {
			w = old
			d.Reason += ", within the dead band"
		} else if w != target {
			d.Reason += fmt.Sprintf(", moving toward %d%% by at most %.0f%% a step", target, 100*p.MaxStep)
		}
	}
	d.WeightPercent = w
	next.WeightPercent = w
	p.guard(&next, &d, obs, now)
	return next, d
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
