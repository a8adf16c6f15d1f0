package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	hpolicy "github.com/hafeed/hafeed/agent/policy"
)

// policy is one way of balancing that a scenario compares.
type policy struct {
	Name   string
	algo   algorithm
	hafeed bool
	// rebalance runs hafeed's rebalancer in every agent, from the
	// backend view a runtime endpoint gives (rebalance.enabled, defaults).
	rebalance bool
}

var policies = []policy{
	{Name: "roundrobin", algo: roundRobin},
	{Name: "leastconn", algo: leastConn},
	{Name: "leastconn+hafeed", algo: leastConn, hafeed: true},
	{Name: "hafeed+rebalance", algo: leastConn, hafeed: true, rebalance: true},
}

// policies are the ones a scenario compares: the rebalancing agents only
// up to rebalanceMaxHosts.
func (sc Scenario) policies() []policy {
	if sc.Hosts <= rebalanceMaxHosts {
		return policies
	}
	return slices.DeleteFunc(slices.Clone(policies), func(p policy) bool { return p.rebalance })
}

// rebalanceMaxHosts bounds the scenarios the rebalancing agents run in:
// each agent reads the whole backend every second, which is quadratic.
const rebalanceMaxHosts = 100

// epoch is the simulated wall clock at t=0; the policy only sees time.Time.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Result is what one policy achieved in one scenario. Times are seconds
// after the event; nil means never within the event's window.
type Result struct {
	Policy string `json:"policy"`
	// Imbalance is max/mean utilisation over the hosts in rotation,
	// averaged over the steady-state window; MeanUtilisation is the mean
	// CPU demand there.
	Imbalance       float64 `json:"imbalance"`
	ConnImbalance   float64 `json:"conn_imbalance"`
	MeanUtilisation float64 `json:"mean_utilisation"`
	// NewHostSeconds is how long the added host took to reach 90 % of the
	// others' mean utilisation.
	NewHostSeconds *float64 `json:"new_host_s"`
	// NewHostShareSeconds is how long it took to hold 90 % of the
	// connections it settled at (its mean over the last two minutes before
	// the drain): its fair share, whatever the policy thinks fair.
	NewHostShareSeconds *float64 `json:"new_host_share_s"`
	// DrainImbalance is max/mean between the drain and the next event.
	DrainImbalance float64 `json:"drain_imbalance"`
	// NoisyPeak is the slowed host's utilisation over the others' mean at
	// worst; NoisyRecoverSeconds how long until it is back under 1.1.
	NoisyPeak           float64  `json:"noisy_peak"`
	NoisyRecoverSeconds *float64 `json:"noisy_recover_s"`
	// EndImbalance is max/mean over the last two minutes, after all events.
	EndImbalance float64 `json:"end_imbalance"`
	// Weight changes reported by the agents per host per minute in the
	// steady-state window, the share of them that reversed the previous
	// change, and their mean size in weight points.
	WeightChangesPerMinute float64 `json:"weight_changes_per_min"`
	WeightReversalShare    float64 `json:"weight_reversal_share"`
	MeanWeightStep         float64 `json:"mean_weight_step"`
	// ConnectionsMoved is connections closed by the agents to move them
	// (only the rebalancing policy does), SteadyMoved those closed in the
	// steady-state window, before any event; Refused is arrivals no server
	// could take.
	ConnectionsMoved int `json:"connections_moved"`
	SteadyMoved      int `json:"steady_moved"`
	Refused          int `json:"refused"`
	// OverloadSamples counts agent samples that capped maxconn.
	OverloadSamples int `json:"overload_samples"`

	// series is each host's utilisation every second (NaN while out of
	// the cluster), kept only when asked for.
	series [][]float64
}

// hostAgent is one host's hafeed: the policy's state and its last answer.
type hostAgent struct {
	state    hpolicy.State
	decision hpolicy.Decision
	answered bool
	// rebalance is the rebalancer's state; joinedAt when the host entered
	// service, for the hold after a join.
	rebalance hpolicy.RebalanceState
	joinedAt  time.Time
	// weight and lastDelta track the reported weight for the oscillation
	// metrics.
	weight    int
	lastDelta int
}

// simulation runs one policy through one scenario.
type simulation struct {
	sc  Scenario
	pol policy
	cfg hpolicy.PolicyConfig
	rb  hpolicy.RebalanceConfig
	// names are the hosts' server names, for the rebalancer's view.
	names  []string
	fleet  fleet
	life   pareto
	record bool

	lbs []*balancer
	// Per host: speed, live connections (all HAProxies) and hot ones.
	speed   []float64
	total   []int32
	hot     []int32
	joined  []bool
	drained []bool
	// agentOn is true once a host's agent runs: the added host's starts
	// before it joins, while it is in maint with no connections.
	agentOn []bool
	agents  []hostAgent
	// wheel holds the departures of each step, packed by pack; inWheel
	// counts each host's entries in each wheelBucket of slots, so that
	// shed finds a host's connections without reading the whole wheel.
	wheel   [][]uint32
	inWheel [][]int32
	// keepTail keeps connections that outlive the run in the wheel's last
	// slot, which is never reached, so that a drain can shed them: a run
	// that drains hosts until its end needs it.
	keepTail bool

	arrivals, noise *rand.Rand
	rate            float64
	nextArrival     float64
	// samples[phase] are the agents that sample at that step of a second;
	// polls[haproxy][phase] the agents each HAProxy polls at that step of
	// agent-inter.
	samples [][]int32
	polls   [][][]int32
	signals map[string]hpolicy.Reading

	res Result
	acc accumulators
}

// accumulators gather the metrics while the simulation runs.
type accumulators struct {
	steady, steadyConns, drain, end    meanOf
	util                               meanOf
	changes, reversals, weightSteps    int
	weightStepSum                      float64
	newHostAt, noisyRecoverAt, noisyPk float64
	// newHostConns is the added host's connections each second from
	// scale-up to the drain.
	newHostConns []float64
}

type meanOf struct {
	sum float64
	n   int
}

func (m *meanOf) add(v float64) { m.sum += v; m.n++ }
func (m meanOf) mean() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.sum / float64(m.n)
}

func pack(h, lb int, hot bool) uint32 {
	v := uint32(h)<<4 | uint32(lb)<<1
	if hot {
		v |= 1
	}
	return v
}

func unpack(v uint32) (h, lb int, hot bool) {
	return int(v >> 4), int(v>>1) & 7, v&1 == 1
}

func newSimulation(sc Scenario, pol policy, cfg hpolicy.PolicyConfig, seed uint64, record bool) (*simulation, error) {
	if sc.HAProxies < 1 || sc.HAProxies > 8 {
		return nil, fmt.Errorf("scenario %s: %d HAProxies, want 1 to 8", sc.Name, sc.HAProxies)
	}
	if sc.Hosts < 2 || sc.Hosts >= 1<<27 {
		return nil, fmt.Errorf("scenario %s: %d hosts, want 2 or more", sc.Name, sc.Hosts)
	}
	t := sc.Timeline
	if !(0 < t.WarmUp && t.WarmUp < t.ScaleUp && t.ScaleUp < t.Drain && t.Drain < t.Noisy && t.Noisy < t.End-120) {
		return nil, fmt.Errorf("scenario %s: the timeline %+v is out of order", sc.Name, t)
	}
	servers := sc.Hosts + 1
	s := &simulation{
		sc:       sc,
		pol:      pol,
		cfg:      cfg,
		fleet:    newFleet(sc, seed),
		life:     newPareto(meanLifetime, paretoAlpha),
		record:   record,
		total:    make([]int32, servers),
		hot:      make([]int32, servers),
		joined:   make([]bool, servers),
		agentOn:  make([]bool, servers),
		drained:  make([]bool, servers),
		agents:   make([]hostAgent, servers),
		wheel:    make([][]uint32, t.End*stepsPerSecond+1),
		inWheel:  make([][]int32, servers),
		arrivals: rand.New(rand.NewPCG(seed, streamArrivals)),
		noise:    rand.New(rand.NewPCG(seed, streamNoise)),
		rate:     float64(sc.Connections) / meanLifetime,
		samples:  make([][]int32, agentSample),
		signals:  map[string]hpolicy.Reading{},
	}
	s.speed = append([]float64(nil), s.fleet.speeds...)
	for h := range servers {
		s.inWheel[h] = make([]int32, len(s.wheel)>>wheelBucketBits+1)
	}
	s.rb = hpolicy.DefaultRebalance()
	s.rb.Enabled = true
	for h := range servers {
		s.names = append(s.names, fmt.Sprintf("h%d", h))
	}
	s.res.Policy = pol.Name
	if record {
		s.res.series = make([][]float64, servers)
	}
	phases := rand.New(rand.NewPCG(seed, streamPhases))
	for range sc.HAProxies {
		lb := newBalancer(pol.algo, servers)
		lb.next = phases.IntN(sc.Hosts)
		s.lbs = append(s.lbs, lb)
		polls := make([][]int32, agentInter)
		for h := range servers {
			ph := phases.IntN(agentInter)
			polls[ph] = append(polls[ph], int32(h))
		}
		s.polls = append(s.polls, polls)
	}
	for h := range servers {
		ph := phases.IntN(agentSample)
		s.samples[ph] = append(s.samples[ph], int32(h))
	}
	return s, nil
}

// run simulates the whole timeline and returns the metrics.
func (s *simulation) run() Result {
	t := s.sc.Timeline
	// Every host's agent starts before its host takes connections, as on
	// a host that boots or an application that restarts: it measures the
	// baseline, then the host joins.
	for h := range s.sc.Hosts {
		s.startAgent(h, -preJoin*stepsPerSecond)
	}
	for k := -preJoin * stepsPerSecond; k < 0 && s.pol.hafeed; k++ {
		for _, h := range s.samples[(k%agentSample+agentSample)%agentSample] {
			if s.agentOn[h] {
				s.sample(int(h), k)
			}
		}
	}
	for h := range s.sc.Hosts {
		s.join(h, 0)
	}
	for range s.sc.Connections {
		lb := s.arrivals.IntN(len(s.lbs))
		hot := s.arrivals.Float64() < hotFraction
		s.connect(0, lb, hot, s.life.residual(s.arrivals.Float64()))
	}
	s.nextArrival = s.arrivals.ExpFloat64() / s.rate
	s.acc.newHostAt, s.acc.noisyRecoverAt = math.NaN(), math.NaN()

	for k := range t.End * stepsPerSecond {
		switch k {
		case (t.ScaleUp - preJoin) * stepsPerSecond:
			s.startAgent(s.sc.Hosts, k)
		case t.ScaleUp * stepsPerSecond:
			s.join(s.sc.Hosts, k)
		case t.Drain * stepsPerSecond:
			s.drain(s.fleet.drained)
		case t.Noisy * stepsPerSecond:
			s.speed[s.fleet.noisy] *= noisySlowdown
		}
		s.advance(k)
		if (k+1)%stepsPerSecond == 0 {
			s.measure((k + 1) / stepsPerSecond)
		}
	}
	return s.result()
}

// advance runs step k of the farm: departures, arrivals, and, where the
// policy has agents, their sampling and rebalancing and HAProxy's polls.
func (s *simulation) advance(k int) {
	for _, v := range s.wheel[k] {
		h, lb, hot := unpack(v)
		s.lbs[lb].release(h)
		s.total[h]--
		if hot {
			s.hot[h]--
		}
		s.inWheel[h][k>>wheelBucketBits]--
	}
	s.wheel[k] = nil
	end := float64(k+1) / stepsPerSecond
	for s.nextArrival < end {
		lb := s.arrivals.IntN(len(s.lbs))
		hot := s.arrivals.Float64() < hotFraction
		s.connect(s.nextArrival, lb, hot, s.life.lifetime(s.arrivals.Float64()))
		s.nextArrival += s.arrivals.ExpFloat64() / s.rate
	}
	if !s.pol.hafeed {
		return
	}
	var view []hpolicy.ServerLoad
	for _, h := range s.samples[k%agentSample] {
		if s.agentOn[h] {
			s.sample(int(h), k)
		}
		if s.pol.rebalance && s.joined[h] && !s.drained[h] {
			if view == nil {
				view = s.backendView()
			}
			s.rebalanceStep(int(h), k, view)
		}
	}
	for lb, polls := range s.polls {
		for _, h := range polls[k%agentInter] {
			s.poll(lb, int(h))
		}
	}
}

// preJoin is how long the added host's agent runs before the host joins,
// as when an operator starts it in maint and then runs hafeed ready.
const preJoin = 30

// startAgent starts host h's agent.
func (s *simulation) startAgent(h, k int) {
	if !s.agentOn[h] {
		s.agentOn[h] = true
		s.agents[h].state = hpolicy.State{Start: epoch.Add(time.Duration(k) * step)}
	}
}

// join puts host h in rotation on every HAProxy, with the weight its agent
// answers or else 100, and starts its agent if it is not running.
func (s *simulation) join(h, k int) {
	s.startAgent(h, k)
	s.joined[h] = true
	s.agents[h].joinedAt = epoch.Add(time.Duration(k) * step)
	w := int32(100)
	if a := s.agents[h]; a.answered && a.decision.WeightPercent > 0 {
		w = int32(a.decision.WeightPercent)
	}
	for _, lb := range s.lbs {
		lb.set(h, w, 0, true)
	}
}

// drain takes h out of rotation on every HAProxy at once, as an operator
// does through the runtime API; its connections end by themselves.
func (s *simulation) drain(h int) {
	s.drained[h] = true
	for _, lb := range s.lbs {
		lb.set(h, lb.weight[h], lb.maxconn[h], false)
	}
}

// connect places a connection arriving at time at (seconds) through HAProxy
// lb and schedules its end.
func (s *simulation) connect(at float64, lb int, hot bool, lifetime float64) {
	h := s.lbs[lb].pick()
	if h < 0 {
		s.res.Refused++
		return
	}
	s.total[h]++
	if hot {
		s.hot[h]++
	}
	k := int(at * stepsPerSecond)
	end := math.Ceil((at + lifetime) * stepsPerSecond)
	if last := float64(len(s.wheel) - 1); end > last {
		if !s.keepTail {
			return // outlives the run
		}
		end = last
	}
	dep := max(int(end), k+1)
	s.wheel[dep] = append(s.wheel[dep], pack(h, lb, hot))
	s.inWheel[h][dep>>wheelBucketBits]++
}

// wheelBucketBits sizes the buckets of slots that inWheel counts: 1024
// slots, about 100 s.
const wheelBucketBits = 10

// utilisation is host h's CPU demand: the activity of its connections over
// its capacity. Above 1 the host is overloaded.
func (s *simulation) utilisation(h int) float64 {
	activity := float64(s.total[h]-s.hot[h]) + hotActivity*float64(s.hot[h])
	return s.fleet.baselines[h] + activity/(s.speed[h]*s.fleet.unitCapacity)
}

// sample is host h's agent at step k: it reads CPU (noisy, at most 100 %)
// and runs the policy as the daemon does.
func (s *simulation) sample(h, k int) {
	a := &s.agents[h]
	cpu := min(max(min(s.utilisation(h), 1)+cpuNoise*s.noise.NormFloat64(), 0), 1)
	now := epoch.Add(time.Duration(k) * step)
	s.signals[hpolicy.SignalCPU] = hpolicy.Reading{Value: cpu, At: now}
	obs := s.cfg.Observe(hpolicy.Readings{At: now, Connections: int(s.total[h]), ConnectionsAt: now, Signals: s.signals, Peers: len(s.lbs), BackendWeight: s.backendWeight(h)})
	a.state, a.decision = s.cfg.Step(a.state, obs, now)
	a.answered = true
	if a.state.Overloaded {
		s.res.OverloadSamples++
	}

	w := a.decision.WeightPercent
	if w == 0 || w == a.weight {
		return
	}
	if a.weight > 0 {
		delta := w - a.weight
		if sec := k / stepsPerSecond; sec >= s.sc.WarmUp && sec < s.sc.ScaleUp {
			s.acc.changes++
			s.acc.weightStepSum += math.Abs(float64(delta))
			if a.lastDelta != 0 && (delta > 0) != (a.lastDelta > 0) {
				s.acc.reversals++
			}
		}
		a.lastDelta = delta
	}
	a.weight = w
}

// backendWeight is the mean weight of the other servers in rotation as
// the first HAProxy shows it, what a runtime endpoint tells the agent.
func (s *simulation) backendWeight(h int) float64 {
	lb := s.lbs[0]
	var sum float64
	n := 0
	for o := range s.joined {
		if o != h && s.joined[o] && !s.drained[o] && lb.weight[o] > 0 {
			sum += float64(lb.weight[o])
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// backendView is the backend as a runtime endpoint shows it: every
// server's connections over all HAProxies and its weight in the first. A
// host that has not joined is left out: it would have weight 0, which the
// rebalancer skips.
func (s *simulation) backendView() []hpolicy.ServerLoad {
	lb := s.lbs[0]
	view := make([]hpolicy.ServerLoad, 0, len(s.total))
	for h := range s.total {
		if !s.joined[h] {
			continue
		}
		w := 0
		if s.joined[h] && !s.drained[h] {
			w = int(lb.weight[h])
		}
		view = append(view, hpolicy.ServerLoad{Name: s.names[h], Conns: int(s.total[h]), Weight: w})
	}
	return view
}

// rebalanceStep is host h's rebalancer at step k (once a second, at its
// sampling phase): it sheds what the decision says, and each closed
// connection reconnects at once through a random HAProxy.
func (s *simulation) rebalanceStep(h, k int, view []hpolicy.ServerLoad) {
	a := &s.agents[h]
	now := epoch.Add(time.Duration(k) * step)
	var entered time.Time
	if settle := s.cfg.SettleTime(); now.Sub(a.joinedAt) < settle {
		entered = a.joinedAt
	}
	var d hpolicy.RebalanceDecision
	a.rebalance, d = s.rb.Step(a.rebalance, view, s.names[h], entered, now, time.Second)
	if d.Shed <= 0 {
		return
	}
	moved := s.shed(h, k, d.Shed)
	s.res.ConnectionsMoved += moved
	if sec := k / stepsPerSecond; sec >= s.sc.WarmUp && sec < s.sc.ScaleUp {
		s.res.SteadyMoved += moved
	}
}

// shed closes n random live connections of host h at step k and has each
// reconnect through a random HAProxy with the lifetime it had left.
// Connections that outlive the run are not in the wheel and are not shed,
// unless keepTail keeps them there.
func (s *simulation) shed(h, k, n int) int {
	// The choice is a random permutation of the ranks of h's connections
	// in time order, as if they were listed and shuffled; only the slots
	// of the buckets that hold a chosen rank are read.
	m := 0
	for _, c := range s.inWheel[h] {
		m += int(c)
	}
	ranks := make([]int, m)
	for i := range ranks {
		ranks[i] = i
	}
	s.noise.Shuffle(m, func(i, j int) { ranks[i], ranks[j] = ranks[j], ranks[i] })
	ranks = ranks[:min(n, m)]
	slices.Sort(ranks)
	type slot struct{ at, i int }
	live := make([]slot, 0, len(ranks))
	rank := 0
	for b, c := range s.inWheel[h] {
		if len(live) == len(ranks) {
			break
		}
		if rank+int(c) <= ranks[len(live)] {
			rank += int(c)
			continue
		}
		// Slots up to k are empty: their departures have been taken.
		for at := max(b<<wheelBucketBits, k+1); at < min((b+1)<<wheelBucketBits, len(s.wheel)); at++ {
			for i, v := range s.wheel[at] {
				if vh, _, _ := unpack(v); vh == h {
					if len(live) < len(ranks) && rank == ranks[len(live)] {
						live = append(live, slot{at, i})
					}
					rank++
				}
			}
		}
	}
	// Remove from the highest index down so that the others stay valid.
	slices.SortFunc(live, func(x, y slot) int {
		if x.at != y.at {
			return x.at - y.at
		}
		return y.i - x.i
	})
	now := float64(k) / stepsPerSecond
	for _, l := range live {
		v := s.wheel[l.at][l.i]
		last := len(s.wheel[l.at]) - 1
		s.wheel[l.at][l.i] = s.wheel[l.at][last]
		s.wheel[l.at] = s.wheel[l.at][:last]
		s.inWheel[h][l.at>>wheelBucketBits]--
		_, lb, hot := unpack(v)
		s.lbs[lb].release(h)
		s.total[h]--
		if hot {
			s.hot[h]--
		}
		s.connect(now, s.noise.IntN(len(s.lbs)), hot, float64(l.at-k)/stepsPerSecond)
	}
	return len(live)
}

// poll is HAProxy lb's agent-check of host h: it applies the agent's last
// answer; weight 0% is no answer, and HAProxy keeps what it has.
func (s *simulation) poll(lb, h int) {
	a := &s.agents[h]
	if !s.joined[h] || !a.answered {
		return
	}
	b := s.lbs[lb]
	weight, maxconn := b.weight[h], b.maxconn[h]
	if w := a.decision.WeightPercent; w > 0 {
		weight = int32(min(w, 256))
	}
	if a.decision.SendMaxconn {
		maxconn = int32(a.decision.Maxconn)
	}
	b.set(h, weight, maxconn, !s.drained[h])
}

// measure takes the metrics at the end of second sec.
func (s *simulation) measure(sec int) {
	t := s.sc.Timeline
	var sum, mx, connSum, connMax float64
	n := 0
	for h := range s.total {
		if !s.joined[h] || s.drained[h] {
			continue
		}
		u := s.utilisation(h)
		sum += u
		mx = max(mx, u)
		connSum += float64(s.total[h])
		connMax = max(connMax, float64(s.total[h]))
		n++
	}
	mean := sum / float64(n)
	imbalance := mx / mean
	switch {
	case sec > t.WarmUp && sec <= t.ScaleUp:
		s.acc.steady.add(imbalance)
		s.acc.steadyConns.add(connMax / (connSum / float64(n)))
		s.acc.util.add(mean)
	case sec > t.ScaleUp && sec <= t.Drain:
		added := s.sc.Hosts
		u := s.utilisation(added)
		others := (sum - u) / float64(n-1)
		if math.IsNaN(s.acc.newHostAt) && u >= 0.9*others {
			s.acc.newHostAt = float64(sec - t.ScaleUp)
		}
		s.acc.newHostConns = append(s.acc.newHostConns, float64(s.total[added]))
	case sec > t.Drain && sec <= t.Noisy:
		s.acc.drain.add(imbalance)
	case sec > t.Noisy:
		u := s.utilisation(s.fleet.noisy)
		r := u / ((sum - u) / float64(n-1))
		s.acc.noisyPk = max(s.acc.noisyPk, r)
		if math.IsNaN(s.acc.noisyRecoverAt) && r <= 1.1 {
			s.acc.noisyRecoverAt = float64(sec - t.Noisy)
		}
		if sec > t.End-120 {
			s.acc.end.add(imbalance)
		}
	}
	if s.record {
		for h := range s.total {
			u := math.NaN()
			if s.joined[h] {
				u = s.utilisation(h)
			}
			s.res.series[h] = append(s.res.series[h], u)
		}
	}
}

func (s *simulation) result() Result {
	r := s.res
	r.Imbalance = s.acc.steady.mean()
	r.ConnImbalance = s.acc.steadyConns.mean()
	r.MeanUtilisation = s.acc.util.mean()
	r.DrainImbalance = s.acc.drain.mean()
	r.EndImbalance = s.acc.end.mean()
	r.NoisyPeak = s.acc.noisyPk
	r.NewHostSeconds = seconds(s.acc.newHostAt)
	r.NewHostShareSeconds = seconds(reachedShare(s.acc.newHostConns, 0.9))
	r.NoisyRecoverSeconds = seconds(s.acc.noisyRecoverAt)
	minutes := float64(s.sc.ScaleUp-s.sc.WarmUp) / 60
	r.WeightChangesPerMinute = float64(s.acc.changes) / float64(s.sc.Hosts) / minutes
	if s.acc.changes > 0 {
		r.WeightReversalShare = float64(s.acc.reversals) / float64(s.acc.changes)
		r.MeanWeightStep = s.acc.weightStepSum / float64(s.acc.changes)
	}
	return r
}

func seconds(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// reachedShare is the first second at which series reaches frac of its
// mean over its last two minutes; NaN if never.
func reachedShare(series []float64, frac float64) float64 {
	if len(series) < 180 {
		return math.NaN()
	}
	var settled meanOf
	for _, v := range series[len(series)-120:] {
		settled.add(v)
	}
	for i, v := range series {
		if v >= frac*settled.mean() {
			return float64(i + 1)
		}
	}
	return math.NaN()
}
