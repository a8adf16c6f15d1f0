package agent

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hafeed/hafeed/metrics"
)

// Sample is one reading of every load source and the policy's verdict.
type Sample struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`

	Connections int      `json:"connections"`
	Ports       []uint16 `json:"ports"`
	ConnMethod  string   `json:"conn_method"`
	// Signals are the load signals by name, with their age and last error.
	Signals map[string]SignalStatus `json:"signals"`
	// Errors lists sources that failed this time; the score uses the rest.
	Errors []string `json:"errors,omitempty"`
	Decision
}

// SignalStatus is one load signal as the last sample saw it.
type SignalStatus struct {
	// Value is the raw reading (a fraction for cpu, memory, pressure and
	// app; a count for connections).
	Value float64 `json:"value"`
	// Target is the value counted as full load; 0 leaves the signal out.
	Target float64   `json:"target"`
	At     time.Time `json:"at"`
	// Stale is set when the value is older than this sample; it still
	// counts until policy.stale_after.
	Stale bool   `json:"stale,omitempty"`
	Error string `json:"error,omitempty"`
	// Duration is how long the last read took.
	Duration time.Duration `json:"duration_ns"`
}

// signalSource reads one load signal. metrics.ErrNoData means "nothing yet"
// (a rate needs two readings) and is not a failure.
type signalSource interface {
	read(ctx context.Context) (float64, error)
}

type signalFunc func(ctx context.Context) (float64, error)

func (f signalFunc) read(ctx context.Context) (float64, error) { return f(ctx) }

// Sampler reads the load sources and runs the policy. It is owned by one
// goroutine.
type Sampler struct {
	conns   *metrics.Conns
	sources map[string]signalSource
	last    map[string]SignalStatus
	state   PolicyState
	now     func() time.Time

	// countBudget is the share of one core counting connections may use:
	// the kernel lists every matching socket, so with very many the count
	// is taken less often than every sample (see sources.count_budget).
	countBudget float64
	lastCount   metrics.ConnCount
	countedAt   time.Time
	countCost   time.Duration
}

// NewSampler builds the samplers the configuration names. agentPort is
// left out of the count when no ports are configured.
func NewSampler(src SourcesConfig, agentPort uint16) (*Sampler, error) {
	s := &Sampler{last: map[string]SignalStatus{}, now: time.Now}
	if err := s.SetSources(src, agentPort); err != nil {
		return nil, err
	}
	return s, nil
}

// SetSources changes what is sampled. Sources whose settings did not change
// keep their history (a CPU rate needs the previous reading).
func (s *Sampler) SetSources(src SourcesConfig, agentPort uint16) error {
	sources, err := buildSources(src, s.sources)
	if err != nil {
		return err
	}
	s.countBudget = src.CountBudget
	c := &metrics.Conns{Ports: src.Ports, ProcRoot: src.ProcRoot}
	if agentPort != 0 {
		c.Exclude = []uint16{agentPort}
	}
	s.conns, s.sources = c, sources
	for name := range s.last {
		if _, ok := sources[name]; !ok && name != SignalConnections {
			delete(s.last, name)
		}
	}
	return nil
}

// Sample reads every source once and applies the policy; peers is the
// number of HAProxy instances polling.
func (s *Sampler) Sample(ctx context.Context, policy PolicyConfig, peers int) Sample {
	start := s.now()
	out := Sample{At: start, Signals: map[string]SignalStatus{}}
	connsFresh := false
	if s.countDue(start) {
		n, err := s.conns.Count(ctx)
		took := s.now().Sub(start)
		if err != nil {
			out.Errors = append(out.Errors, "connections: "+err.Error())
		} else {
			s.lastCount, s.countedAt, s.countCost = n, start, took
		}
		s.record(SignalConnections, float64(n.Established), err, start, took)
	}
	if !s.countedAt.IsZero() && start.Sub(s.countedAt) <= policy.StaleAfter {
		out.Connections, out.Ports, connsFresh = s.lastCount.Established, s.lastCount.Ports, true
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

	values := map[string]float64{}
	for name, st := range s.last {
		st.Target = policy.Targets.of(name)
		st.Stale = !st.At.Equal(start)
		out.Signals[name] = st
		if !st.At.IsZero() && start.Sub(st.At) <= policy.StaleAfter {
			values[name] = st.Value
		}
	}
	obs := Observation{Connections: out.Connections, Peers: peers}
	if s.scored(policy) {
		obs.Utilisation, obs.Bottleneck, obs.Fresh = Combine(policy.Targets, policy.Mix, values)
		obs.Fresh = obs.Fresh && connsFresh
	} else {
		// Nothing is scored: connections alone, which leastconn balances.
		obs.Fresh = connsFresh
	}
	s.state, out.Decision = policy.Step(s.state, obs, start)
	out.Duration = s.now().Sub(start)
	return out
}

// countDue says whether to count connections now, keeping the time spent
// counting under countBudget of one core.
func (s *Sampler) countDue(now time.Time) bool {
	if s.countBudget <= 0 || s.countedAt.IsZero() {
		return true
	}
	return now.Sub(s.countedAt) >= time.Duration(float64(s.countCost)/s.countBudget)
}

// scored says whether any configured signal counts toward utilisation.
func (s *Sampler) scored(policy PolicyConfig) bool {
	if policy.Targets.Connections > 0 {
		return true
	}
	for name := range s.sources {
		if policy.Targets.of(name) > 0 {
			return true
		}
	}
	return false
}

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
