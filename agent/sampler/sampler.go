package sampler

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/metrics"
)

// Sample is one reading of every load source and the policy's verdict.
type Sample struct {
	At       time.Time
	Duration time.Duration

	Connections int
	Ports       []uint16
	// Paths counts the connections by the address they came from and the
	// address and port of this host they reached.
	Paths      map[metrics.Path]int
	ConnMethod string
	// Signals are the load signals by name, with their age and last error.
	Signals map[string]SignalStatus
	// Errors lists sources that failed this time; the score uses the rest.
	Errors []string
	policy.Decision
}

// SignalStatus is one load signal as the last sample saw it.
type SignalStatus struct {
	// Value is the raw reading (a fraction for cpu, memory, pressure and
	// app; a count for connections).
	Value float64
	// Target is the value counted as full load; 0 leaves the signal out.
	Target float64
	At     time.Time
	// Stale is set when the value is older than this sample; it still
	// counts until policy.stale_after.
	Stale bool
	Error string
	// Duration is how long the last read took.
	Duration time.Duration
}

// Sampler reads the load sources and runs the policy. It is owned by one
// goroutine.
type Sampler struct {
	conns   *metrics.Conns
	sources map[string]*builtSource
	last    map[string]SignalStatus
	state   policy.State
	now     func() time.Time

	// counts spaces the connection counts: the kernel lists every
	// matching socket, so with very many the count is taken less often
	// than every sample (see sources.count_budget). lastCount is the last
	// good count, taken at counts.at.
	counts    metrics.CountPacer
	lastCount metrics.ConnCount
}

// New builds the sources a validated configuration names. The agent's own
// ports are left out of the count when no ports are configured.
func New(src config.SourcesConfig, ownPorts ...uint16) *Sampler {
	s := &Sampler{last: map[string]SignalStatus{}, now: time.Now}
	s.SetSources(src, ownPorts...)
	return s
}

// SetSources changes what is sampled, from a validated configuration. A
// source whose keys did not change keeps its history (a CPU rate needs the
// previous reading).
func (s *Sampler) SetSources(src config.SourcesConfig, ownPorts ...uint16) {
	sources := buildSources(src, s.sources)
	s.counts.Budget = src.CountBudget
	c := &metrics.Conns{Ports: src.Ports, ProcRoot: src.ProcRoot, Exclude: ownPorts}
	s.conns, s.sources = c, sources
	for name := range s.last {
		if _, ok := sources[name]; !ok && name != policy.SignalConnections {
			delete(s.last, name)
		}
	}
}

// Sample reads every source once and applies the policy; peers is the
// number of HAProxy instances polling, backendWeight the mean weight of the
// backend's other servers (0 when unknown; see NeedsBackendWeight).
func (s *Sampler) Sample(ctx context.Context, pc policy.PolicyConfig, peers int, backendWeight float64) Sample {
	start := s.now()
	out := Sample{At: start, Signals: map[string]SignalStatus{}}
	if s.counts.Due(start) {
		n, err := s.conns.Count(ctx)
		took := s.now().Sub(start)
		if err != nil {
			out.Errors = append(out.Errors, "connections: "+err.Error())
		} else {
			s.lastCount = n
			s.counts.Counted(start, took)
		}
		s.record(policy.SignalConnections, float64(n.Established), err, start, took)
	}
	if pc.CountFresh(s.counts.At(), start, s.counts.Spacing()) {
		out.Connections, out.Ports, out.Paths = s.lastCount.Established, s.lastCount.Ports, s.lastCount.Paths
	}
	out.ConnMethod = s.conns.Method()
	for name, src := range s.sources {
		readStart := s.now()
		v, err := src.read(ctx)
		if err != nil && !errors.Is(err, metrics.ErrNoData) {
			out.Errors = append(out.Errors, name+": "+err.Error())
		}
		s.record(name, v, err, start, s.now().Sub(readStart))
	}
	slices.Sort(out.Errors)

	readings := policy.Readings{At: start, Connections: s.lastCount.Established, ConnectionsAt: s.counts.At(),
		CountSpacing: s.counts.Spacing(), Signals: map[string]policy.Reading{}, Peers: peers, BackendWeight: backendWeight}
	for name, st := range s.last {
		st.Target = pc.Targets.Of(name)
		st.Stale = !st.At.Equal(start)
		out.Signals[name] = st
		readings.Signals[name] = policy.Reading{Value: st.Value, At: st.At}
	}
	for name := range s.sources {
		if _, ok := readings.Signals[name]; !ok {
			readings.Signals[name] = policy.Reading{} // configured, not read yet
		}
	}
	s.state, out.Decision = pc.Step(s.state, pc.Observe(readings), start)
	out.Duration = s.now().Sub(start)
	return out
}

// CountSoon makes the next sample count the connections, whatever
// sources.count_budget says (see metrics.CountPacer.Soon).
func (s *Sampler) CountSoon() { s.counts.Soon() }

// Baseline is the load model's measured baseline, nil before one.
func (s *Sampler) Baseline() *policy.LoadModel {
	if s.state.Model.Measured == 0 {
		return nil
	}
	m := s.state.Model
	return &m
}

// SetBaseline starts the load model from a baseline measured before a
// restart.
func (s *Sampler) SetBaseline(m *policy.LoadModel) {
	if m != nil {
		s.state.Model = *m
	}
}

// NeedsBackendWeight says whether the policy still decides where a host
// without evidence starts, from the backend's mean weight.
func (s *Sampler) NeedsBackendWeight() bool { return s.state.PriorCost == 0 }

// record keeps a signal's last good value, or notes why it failed.
func (s *Sampler) record(name string, v float64, err error, at time.Time, took time.Duration) {
	st := s.last[name]
	st.Duration = took
	switch {
	case err == nil:
		st = SignalStatus{Value: v, At: at, Duration: took}
	case errors.Is(err, metrics.ErrNoData):
		st.Error = ""
	default:
		st.Error = err.Error()
	}
	s.last[name] = st
}
