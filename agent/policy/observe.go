package policy

import "time"

// Reading is the last good value of one signal and when it was read; a
// zero At means there is none yet.
type Reading struct {
	Value float64
	At    time.Time
}

// Readings is what one sample read, as the agent's sampler (or the
// simulator) hands it to Observe.
type Readings struct {
	// At is when the sample was taken.
	At time.Time
	// Connections is the last connection count, read at ConnectionsAt.
	Connections   int
	ConnectionsAt time.Time
	// CountSpacing is how far apart connection counts are taken when a
	// count budget spaces slow ones out: a count stands that much longer
	// than StaleAfter, so that spacing them never reads as no count.
	CountSpacing time.Duration
	// Signals are the configured signals' last good readings by name,
	// the connection count included under SignalConnections; a signal
	// configured but never read has a zero Reading.
	Signals map[string]Reading
	// Peers is how many HAProxy instances poll the agent.
	Peers int
	// BackendWeight is the mean weight of the other servers in rotation
	// in this host's backend, 0 when unknown (see Observation).
	BackendWeight float64
}

// Fresh says whether a reading taken at at still counts at now.
func (p PolicyConfig) Fresh(at, now time.Time) bool {
	return !at.IsZero() && now.Sub(at) <= p.StaleAfter
}

// CountFresh is Fresh for a connection count taken at at, when counts are
// taken spacing apart.
func (p PolicyConfig) CountFresh(at, now time.Time, spacing time.Duration) bool {
	return !at.IsZero() && now.Sub(at) <= p.StaleAfter+spacing
}

// Observe turns one sample's readings into what the policy sees. A reading
// older than StaleAfter does not count. When no configured signal has a
// target, utilisation is not scored and the observation is fresh as long
// as the connection count is: connections alone, which leastconn balances.
// Otherwise it is fresh when the connection count and at least one
// targeted signal are.
func (p PolicyConfig) Observe(r Readings) Observation {
	obs := Observation{Peers: r.Peers, BackendWeight: r.BackendWeight}
	connsFresh := p.CountFresh(r.ConnectionsAt, r.At, r.CountSpacing)
	if connsFresh {
		obs.Connections = r.Connections
	}
	scored := p.Targets.Connections > 0
	values := map[string]float64{}
	for name, rd := range r.Signals {
		if name != SignalConnections && p.Targets.Of(name) > 0 {
			scored = true
		}
		if name != SignalConnections && p.Targets.Of(name) > 0 && rd.At.IsZero() {
			obs.Partial = true // configured, never read yet
		}
		fresh := p.Fresh(rd.At, r.At)
		if name == SignalConnections {
			fresh = p.CountFresh(rd.At, r.At, r.CountSpacing)
		}
		if fresh {
			values[name] = rd.Value
		}
	}
	if !scored {
		obs.Fresh = connsFresh
		return obs
	}
	var ok bool
	obs.Utilisation, obs.Bottleneck, ok = Combine(p.Targets, p.Mix, values)
	obs.Fresh = ok && connsFresh
	return obs
}
