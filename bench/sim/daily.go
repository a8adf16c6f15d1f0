package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/errgroup"

	hpolicy "github.com/hafeed/hafeed/agent/policy"
)

// The daily farm (issue 18): the connection population follows a daily
// curve with a 3x swing, and an autoscaler sizes the farm, once driven by
// hafeed's desired_servers and scale_in_candidate (policy.ComputeFleet over
// the HAProxy view, as `hafeed fleet` computes them) and once by the mean
// host CPU, as Kubernetes' HPA does with a CPU target. Both have the same
// mechanics (see scaler.go); the hosts are balanced by hafeed with
// rebalance.enabled in both. A third run sizes the farm by mean CPU where
// HAProxy balances with leastconn alone, without hafeed.

// DailyConfig is the daily farm's shape.
type DailyConfig struct {
	// Day is one simulated day: 24 h, or less to compress the curve (the
	// connection lifetimes, boots and the autoscaler's windows are not
	// compressed). Days are run; the last one is measured.
	Day  time.Duration `json:"-"`
	Days int           `json:"days"`
	// Trough and Peak are the mean connection population at the night's
	// minimum (04:00) and the afternoon's maximum (16:00).
	Trough int `json:"trough_connections"`
	Peak   int `json:"peak_connections"`
	// Reference is the connections a speed-1 host without baseline holds
	// at the CPU target with the average client mix: the agents'
	// reference_capacity.
	Reference int `json:"reference_capacity"`
	// EqualHosts makes every host the same: speed 1, baseline 12.5 %.
	// Otherwise hosts draw their speed from the mix and their baseline
	// from 0-25 %.
	EqualHosts bool `json:"equal_hosts"`
}

// dailyConfig is the scenario make sim runs: two days of 24 h, 8,000 to
// 24,000 connections, some 10 to 45 hosts as the autoscalers size it.
var dailyConfig = DailyConfig{Day: 24 * time.Hour, Days: 2, Trough: 8000, Peak: 24000, Reference: 1000}

// quick is a smoke run: a 4-hour day and a quarter of the connections
// per host, so the same number of hosts.
func (c DailyConfig) quick() DailyConfig {
	c.Day = 4 * time.Hour
	c.Trough, c.Peak, c.Reference = c.Trough/4, c.Peak/4, c.Reference/4
	return c
}

// seconds is the length of the run in seconds.
func (c DailyConfig) seconds() int { return c.Days * c.daySeconds() }

func (c DailyConfig) daySeconds() int { return int(c.Day / time.Second) }

func (c DailyConfig) validate() error {
	switch {
	case c.daySeconds() < 3600 || c.Days < 1:
		return fmt.Errorf("daily farm: %d days of %v, want at least one day of at least an hour", c.Days, c.Day)
	case c.Trough <= 0 || c.Peak < c.Trough:
		return fmt.Errorf("daily farm: %d to %d connections, want 0 < trough <= peak", c.Trough, c.Peak)
	case c.Reference <= 0:
		return fmt.Errorf("daily farm: reference capacity %d, want more than 0", c.Reference)
	}
	return nil
}

// The daily load: the curve's lowest and highest hours, and its noise, a
// multiplicative Ornstein-Uhlenbeck process on the arrival rate.
const (
	troughHour    = 4.0
	loadNoiseSD   = 0.05
	loadNoiseTime = 10 * 60 // seconds
)

// load is the mean connection population at second sec of the run, the
// smooth part of the curve: a cosine from Trough at 04:00 to Peak at
// 16:00. slope is its derivative per second.
func (c DailyConfig) load(sec float64) (population, slope float64) {
	mean := float64(c.Trough+c.Peak) / 2
	amp := float64(c.Peak-c.Trough) / 2
	day := float64(c.daySeconds())
	phase := 2 * math.Pi * (sec/day - troughHour/24)
	return mean - amp*math.Cos(phase), amp * 2 * math.Pi / day * math.Sin(phase)
}

// hourOfDay is the time of day, in hours, at second sec of the run.
func (c DailyConfig) hourOfDay(sec int) float64 {
	return 24 * float64(sec%c.daySeconds()) / float64(c.daySeconds())
}

// unitCapacity is the activity a speed-1 host serves at 100 % CPU.
func (c DailyConfig) unitCapacity(cpuTarget float64) float64 {
	return float64(c.Reference) * meanActivity / cpuTarget
}

// targetBand is the band both autoscalers aim the hosts' utilisation at
// (CPU over the CPU target, hafeed's utilisation: 1.0 = a host at its
// target): fleet.target_utilisation within fleet.tolerance of it.
func targetBand(sc ScalerConfig) (lo, hi float64) {
	return sc.TargetUtilisation * (1 - sc.Tolerance), sc.TargetUtilisation * (1 + sc.Tolerance)
}

// DailyResult is the daily farm's run, for every autoscaler.
type DailyResult struct {
	DailyConfig
	DaySeconds int    `json:"day_s"`
	Seed       uint64 `json:"seed"`
	// Band is the target band of the hosts' utilisation.
	Band        [2]float64          `json:"band"`
	Scalers     ScalerConfig        `json:"scaler"`
	Results     []DailyScalerResult `json:"results"`
	WallSeconds float64             `json:"wall_s"`
}

// DailyScalerResult is what one autoscaler did over the measured day.
// Shares are fractions of the day's seconds.
type DailyScalerResult struct {
	Autoscaler string `json:"autoscaler"`
	// MeanOutside is the share of seconds at which the mean utilisation of
	// the hosts in rotation was outside the band; MeanBelow the part of it
	// below. MaxAbove is the share at which the busiest host was above the
	// band, OverTarget above 1.0 (its CPU target).
	MeanOutside float64 `json:"mean_outside_band"`
	MeanBelow   float64 `json:"mean_below_band"`
	MaxAbove    float64 `json:"max_above_band"`
	OverTarget  float64 `json:"max_over_target"`
	// MeanUtilisation is the mean over the day of the hosts' mean
	// utilisation.
	MeanUtilisation float64 `json:"mean_utilisation"`
	// HostHours counts every host from its launch to its removal, booting
	// and draining included; MinHosts and MaxHosts are the fewest and most
	// running at once.
	HostHours float64 `json:"host_hours"`
	MinHosts  int     `json:"min_hosts"`
	MaxHosts  int     `json:"max_hosts"`
	// Moved is connections closed to move them: DrainMoved by the drains'
	// shedding, RebalanceMoved by the agents' rebalancers.
	Moved            int     `json:"moved"`
	DrainMoved       int     `json:"drain_moved"`
	RebalanceMoved   int     `json:"rebalance_moved"`
	MovedPerHostHour float64 `json:"moved_per_host_hour"`
	// Imbalance is max/mean utilisation over the hosts in rotation,
	// averaged over the steady seconds (SteadyShare of the day): those at
	// least steadyAfter after the last launch, join, drain or removal.
	Imbalance   float64 `json:"imbalance"`
	SteadyShare float64 `json:"steady_share"`
	// ScaleOuts and ScaleIns count the actions, Launched and Drained the
	// hosts; Fallbacks counts the hosts drained as the newest because
	// scale_in_candidate named none.
	ScaleOuts int `json:"scale_outs"`
	ScaleIns  int `json:"scale_ins"`
	Launched  int `json:"launched"`
	Drained   int `json:"drained"`
	Fallbacks int `json:"fallbacks"`
	Refused   int `json:"refused"`
	// MeanSpeed is the hosts' mean speed over the day, weighted by time.
	MeanSpeed float64 `json:"mean_speed"`
	// FewestConnections and MostConnections are the population's range
	// over the day, taken each minute.
	FewestConnections int `json:"fewest_connections"`
	MostConnections   int `json:"most_connections"`

	// series is the farm every minute of the measured day, for the plot.
	series []minuteOfDay
}

// minuteOfDay is the farm at one minute of the measured day.
type minuteOfDay struct {
	hour        float64
	connections int
	curve       float64
	running     int
	mean, max   float64
}

// steadyAfter is how long after the last change of the farm a second
// counts as steady for the imbalance: the mean connection lifetime.
const steadyAfter = 300

// dailyMaxSlots bounds the hosts a run may have at once, booting and
// draining included.
const dailyMaxSlots = 160

// runDaily runs every autoscaler through the daily farm c with seed, at
// most parallel at once.
func runDaily(c DailyConfig, seed uint64, parallel int) (DailyResult, error) {
	if err := c.validate(); err != nil {
		return DailyResult{}, err
	}
	start := time.Now()
	sc := defaultScaler()
	lo, hi := targetBand(sc)
	res := DailyResult{DailyConfig: c, DaySeconds: c.daySeconds(), Seed: seed, Band: [2]float64{lo, hi}, Scalers: sc,
		Results: make([]DailyScalerResult, len(autoscalers))}
	var g errgroup.Group
	g.SetLimit(parallel)
	for i, a := range autoscalers {
		g.Go(func() error {
			d, err := newDailyRun(c, sc, a, seed)
			if err != nil {
				return err
			}
			res.Results[i] = d.run()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.WallSeconds = time.Since(start).Seconds()
	return res, nil
}

// Host states in the daily farm.
const (
	hostFree = iota
	hostBooting
	hostReady
	hostDraining
)

// hostSlot is one of the farm's host slots; a removed host's slot is
// reused by a later launch, with a new name.
type hostSlot struct {
	state int
	// serial is the launch order; launched and changed the seconds of the
	// launch and of the last change of state (HAProxy's lastchg).
	serial   int
	launched int
	changed  int
}

// dailyRun is one autoscaler through the daily farm.
type dailyRun struct {
	*simulation
	farm    DailyConfig
	scaling ScalerConfig
	scaler  autoscaler
	// hostDraws gives each launched host its speed and baseline, in
	// launch order, so that every autoscaler's n-th host is the same;
	// loadNoise the load's noise; cpuNoise the CPU readings the CPU
	// autoscaler averages; loadLevel is the load noise's state.
	hostDraws, loadNoise, cpuNoise *rand.Rand
	loadLevel                      float64
	slots                          []hostSlot
	launches                       int

	ctl controller
	// lastChange is the second of the farm's last launch, join, drain or
	// removal.
	lastChange int
	tally      dailyAccumulators
	out        DailyScalerResult
}

// dailyAccumulators gather the measured day's figures.
type dailyAccumulators struct {
	seconds, meanOut, meanBelow, maxAbove, overTarget int
	hostSeconds, speedSeconds                         float64
	util, imbalance                                   meanOf
	drainMoved, rebalanceMoved                        int
	minHosts, maxHosts                                int
}

func newDailyRun(c DailyConfig, sc ScalerConfig, a autoscaler, seed uint64) (*dailyRun, error) {
	end := c.seconds()
	scen := Scenario{Name: "daily", Hosts: dailyMaxSlots - 1, Connections: c.Trough, HAProxies: 3,
		Timeline: Timeline{WarmUp: 1, ScaleUp: 2, Drain: 3, Noisy: 4, End: end}}
	pcfg := hpolicy.DefaultConfig()
	pcfg.ReferenceCapacity = c.Reference
	pol := policies[3] // hafeed+rebalance
	if a.plain {
		pol = policies[1] // leastconn
	}
	s, err := newSimulation(scen, pol, pcfg, seed, false)
	if err != nil {
		return nil, err
	}
	s.keepTail = true
	s.fleet.unitCapacity = c.unitCapacity(pcfg.Targets.CPU)
	d := &dailyRun{
		simulation: s,
		farm:       c,
		scaling:    sc,
		scaler:     a,
		hostDraws:  rand.New(rand.NewPCG(seed, streamHosts)),
		loadNoise:  rand.New(rand.NewPCG(seed, streamLoad)),
		cpuNoise:   rand.New(rand.NewPCG(seed, streamCPU)),
		slots:      make([]hostSlot, dailyMaxSlots),
	}
	d.out.Autoscaler = a.Name
	d.tally.minHosts = math.MaxInt
	return d, nil
}

// drawHost gives slot h the next host's speed and baseline.
func (d *dailyRun) drawHost(h int) {
	speed, baseline := 1.0, 0.125
	u := d.hostDraws.Float64()
	b := d.hostDraws.Float64()
	if !d.farm.EqualHosts {
		speed = speedMix[len(speedMix)-1].speed
		for _, m := range speedMix {
			if u < m.share {
				speed = m.speed
				break
			}
			u -= m.share
		}
		baseline = 0.25 * b
	}
	d.speed[h] = speed
	d.fleet.baselines[h] = baseline
}

// hostCapacity is the connections slot h holds at utilisation u with the
// average client mix.
func (d *dailyRun) hostCapacity(h int, u float64) float64 {
	return max(u*d.cpuTarget()-d.fleet.baselines[h], 0) * d.speed[h] * d.fleet.unitCapacity / meanActivity
}

// cpuTarget is the agents' CPU target: utilisation 1.0.
func (d *dailyRun) cpuTarget() float64 { return d.simulation.cfg.Targets.CPU }

// launch starts a host in a free slot at second sec, if there is one: it
// boots, its agent starts preJoin before it joins, and it joins
// BootSeconds after the launch.
func (d *dailyRun) launch(sec int) bool {
	for h := range d.slots {
		if d.slots[h].state != hostFree {
			continue
		}
		d.launches++
		d.slots[h] = hostSlot{state: hostBooting, serial: d.launches, launched: sec, changed: sec}
		d.names[h] = fmt.Sprintf("h%d", d.launches)
		d.drawHost(h)
		d.lastChange = sec
		return true
	}
	return false
}

// boot moves the booting hosts on at second sec (step k).
func (d *dailyRun) boot(sec, k int) {
	boot := d.scaling.BootSeconds
	for h := range d.slots {
		sl := &d.slots[h]
		if sl.state != hostBooting {
			continue
		}
		switch sec - sl.launched {
		case boot - preJoin:
			d.startAgent(h, k)
		case boot:
			d.join(h, k)
			sl.state, sl.changed = hostReady, sec
			d.lastChange = sec
		}
	}
}

// startDrain takes host h out of rotation at second sec; the drain sheds
// it until it is empty, and then it is removed.
func (d *dailyRun) startDrain(h, sec int) {
	d.drain(h)
	d.slots[h].state, d.slots[h].changed = hostDraining, sec
	d.lastChange = sec
}

// shedDrains is each drain's shedding at step k: at most ShedRate a
// second, as hafeed drain --wait --shed-rate does; an empty host is
// removed.
func (d *dailyRun) shedDrains(sec, k int, measured bool) {
	for h := range d.slots {
		if d.slots[h].state != hostDraining {
			continue
		}
		if n := min(d.scaling.ShedRate, int(d.total[h])); n > 0 {
			moved := d.shed(h, k, n)
			if measured {
				d.tally.drainMoved += moved
			}
			continue
		}
		d.remove(h)
		d.lastChange = sec
	}
}

// remove takes an empty host out of HAProxy and frees its slot.
func (d *dailyRun) remove(h int) {
	d.slots[h] = hostSlot{}
	d.joined[h], d.drained[h], d.agentOn[h] = false, false, false
	d.agents[h] = hostAgent{}
	for _, lb := range d.lbs {
		lb.set(h, 100, 0, false)
	}
}

// run simulates the days and returns the measured day's figures.
func (d *dailyRun) run() DailyScalerResult {
	// The farm starts with the first hosts drawn that hold the first
	// second's load at the target.
	population, _ := d.farm.load(0)
	n := 0
	for capacity := 0.0; n < d.scaling.MaxHosts && (n < d.scaling.MinHosts || capacity < population); n++ {
		d.drawHost(n)
		capacity += d.hostCapacity(n, d.scaling.TargetUtilisation)
		d.launches++
		d.slots[n] = hostSlot{state: hostReady, serial: d.launches, launched: -3600, changed: -3600}
		d.names[n] = fmt.Sprintf("h%d", d.launches)
		d.startAgent(n, -preJoin*stepsPerSecond)
	}
	for k := -preJoin * stepsPerSecond; k < 0 && d.pol.hafeed; k++ {
		for _, h := range d.samples[(k%agentSample+agentSample)%agentSample] {
			if d.agentOn[h] {
				d.sample(int(h), k)
			}
		}
	}
	for h := range n {
		d.join(h, 0)
	}
	for range int(math.Round(population)) {
		lb := d.arrivals.IntN(len(d.lbs))
		d.connect(0, lb, d.arrivals.Float64() < hotFraction, d.life.residual(d.arrivals.Float64()))
	}
	d.updateRate(0)
	d.nextArrival = d.arrivals.ExpFloat64() / d.rate

	end := d.farm.seconds()
	from := end - d.farm.daySeconds()
	sync := d.scaling.SyncSeconds
	for k := range end * stepsPerSecond {
		sec := k / stepsPerSecond
		measured := sec >= from
		if k%stepsPerSecond == 0 {
			if sec > 0 {
				d.updateRate(sec)
			}
			d.boot(sec, k)
			if sec%sync == 0 {
				d.decide(sec, measured)
			}
		}
		d.advance(k)
		if k%stepsPerSecond == 0 {
			d.shedDrains(sec, k, measured)
		}
		// What the rebalancers closed in this step.
		if measured {
			d.tally.rebalanceMoved += d.simulation.res.ConnectionsMoved
		}
		d.simulation.res.ConnectionsMoved = 0
		if (k+1)%stepsPerSecond == 0 && measured {
			d.measure(sec)
		}
	}
	return d.result()
}

// updateRate sets the arrival rate for second sec: what keeps the
// population on the curve (its level over the mean lifetime plus its
// slope), times the load's noise.
func (d *dailyRun) updateRate(sec int) {
	decay := math.Exp(-1.0 / loadNoiseTime)
	d.loadLevel = d.loadLevel*decay + loadNoiseSD*math.Sqrt(1-decay*decay)*d.loadNoise.NormFloat64()
	population, slope := d.farm.load(float64(sec))
	d.rate = max(population/meanLifetime+slope, 0) * math.Exp(d.loadLevel)
}

// measure takes the figures of second sec of the measured day.
func (d *dailyRun) measure(sec int) {
	lo, hi := targetBand(d.scaling)
	a := &d.tally
	var sum, mx float64
	n, running := 0, 0
	for h, sl := range d.slots {
		if sl.state == hostFree {
			continue
		}
		running++
		a.speedSeconds += d.speed[h]
		if sl.state != hostReady {
			continue
		}
		u := d.utilisation(h) / d.cpuTarget()
		sum += u
		mx = max(mx, u)
		n++
	}
	a.seconds++
	a.hostSeconds += float64(running)
	a.minHosts, a.maxHosts = min(a.minHosts, running), max(a.maxHosts, running)
	if n == 0 {
		a.meanOut++
		a.meanBelow++
		return
	}
	mean := sum / float64(n)
	a.util.add(mean)
	switch {
	case mean < lo:
		a.meanOut++
		a.meanBelow++
	case mean > hi:
		a.meanOut++
	}
	if mx > hi {
		a.maxAbove++
	}
	if mx > 1 {
		a.overTarget++
	}
	if sec-d.lastChange >= steadyAfter {
		a.imbalance.add(mx / mean)
	}
	if sec%60 == 0 {
		conns := 0
		for _, c := range d.total {
			conns += int(c)
		}
		curve, _ := d.farm.load(float64(sec))
		d.out.series = append(d.out.series, minuteOfDay{hour: d.farm.hourOfDay(sec), connections: conns, curve: curve,
			running: running, mean: mean, max: mx})
	}
}

func (d *dailyRun) result() DailyScalerResult {
	a, r := d.tally, d.out
	secs := float64(a.seconds)
	r.MeanOutside = float64(a.meanOut) / secs
	r.MeanBelow = float64(a.meanBelow) / secs
	r.MaxAbove = float64(a.maxAbove) / secs
	r.OverTarget = float64(a.overTarget) / secs
	r.MeanUtilisation = a.util.mean()
	r.HostHours = a.hostSeconds / 3600
	r.MinHosts, r.MaxHosts = a.minHosts, a.maxHosts
	r.DrainMoved, r.RebalanceMoved = a.drainMoved, a.rebalanceMoved
	r.Moved = a.drainMoved + a.rebalanceMoved
	r.MovedPerHostHour = float64(r.Moved) / r.HostHours
	r.Imbalance = a.imbalance.mean()
	r.SteadyShare = float64(a.imbalance.n) / secs
	r.MeanSpeed = a.speedSeconds / a.hostSeconds
	r.Refused = d.simulation.res.Refused
	r.FewestConnections = math.MaxInt
	for _, m := range r.series {
		r.FewestConnections, r.MostConnections = min(r.FewestConnections, m.connections), max(r.MostConnections, m.connections)
	}
	return r
}
