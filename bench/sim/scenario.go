package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// The model's constants: the same in every scenario.
const (
	stepsPerSecond = 10
	step           = time.Second / stepsPerSecond

	// meanLifetime and paretoAlpha shape connection lifetimes.
	meanLifetime = 300.0 // seconds
	paretoAlpha  = 1.5

	// A hot client is hotActivity times as active as a cold one.
	hotFraction = 0.2
	hotActivity = 10
	// meanActivity is the expected activity of one connection.
	meanActivity = (1-hotFraction)*1 + hotFraction*hotActivity

	// meanCPU is the cluster's CPU utilisation the load is sized for.
	meanCPU = 0.6
	// cpuNoise is the standard deviation of the agent's CPU reading.
	cpuNoise = 0.01

	// agentInter is how often each HAProxy polls each agent; agentSample
	// how often each agent samples and runs the policy.
	agentInter  = 2 * stepsPerSecond
	agentSample = 1 * stepsPerSecond

	// addedSpeed is the speed of the host added at scale-up; noisySlowdown
	// what the noisy neighbour leaves of a host's speed.
	addedSpeed    = 1.0
	noisySlowdown = 0.5
)

// speedMix is the fleet: host speeds and the share of hosts with each.
var speedMix = []struct{ speed, share float64 }{
	{0.7, 0.2},
	{1.0, 0.6},
	{1.5, 0.2},
}

// Scenario is one cluster size run through the same timeline of events.
type Scenario struct {
	Name        string `json:"name"`
	Hosts       int    `json:"hosts"`
	Connections int    `json:"connections"`
	HAProxies   int    `json:"haproxies"`
	// Baseline is the range of each host's CPU baseline, the part its
	// connections do not cause (runtime, timers, housekeeping), as a
	// fraction of its CPU; hosts draw from it uniformly.
	Baseline [2]float64 `json:"baseline"`
	// ConnectionCPU is the cluster's mean CPU caused by connections; 0
	// means meanCPU less the mean baseline. An idle-socket farm has it
	// near 0.
	ConnectionCPU float64 `json:"connection_cpu,omitempty"`
	// EqualHosts gives every host speed 1, as in a farm of one machine
	// type.
	EqualHosts bool `json:"equal_hosts,omitempty"`
	// Reference, when set, is the reference capacity the agents use
	// instead of the one the fleet implies (an idle-socket farm keeps the
	// shipped default).
	Reference int `json:"reference,omitempty"`
	Timeline  `json:"timeline"`
}

// Timeline is when things happen, in whole seconds from the start: the
// steady-state window [WarmUp, ScaleUp), a host added at ScaleUp, a host
// drained at Drain, a host slowed down at Noisy, the end at End.
type Timeline struct {
	WarmUp  int `json:"warm_up_s"`
	ScaleUp int `json:"scale_up_s"`
	Drain   int `json:"drain_s"`
	Noisy   int `json:"noisy_s"`
	End     int `json:"end_s"`
}

// defaultTimeline leaves each event five minutes (the mean lifetime) to
// settle before the next one.
var defaultTimeline = Timeline{WarmUp: 240, ScaleUp: 540, Drain: 840, Noisy: 1020, End: 1320}

// steadyTimeline has ten minutes of steady state before the events, the
// window in which a rebalancing farm must shed nothing.
var steadyTimeline = Timeline{WarmUp: 240, ScaleUp: 840, Drain: 1140, Noisy: 1320, End: 1620}

// scenarios are the sizes the issues ask for, and the load shapes of real
// WebSocket farms: a CPU baseline per host that connections do not cause,
// and sockets that are mostly idle.
var scenarios = []Scenario{
	{Name: "small", Hosts: 10, Connections: 10_000, HAProxies: 3, Timeline: defaultTimeline},
	{Name: "medium", Hosts: 100, Connections: 1_000_000, HAProxies: 3, Timeline: defaultTimeline},
	{Name: "large", Hosts: 1000, Connections: 10_000_000, HAProxies: 3, Timeline: defaultTimeline},
	{Name: "small-baseline", Hosts: 10, Connections: 10_000, HAProxies: 3, Baseline: [2]float64{0, 0.25}, Timeline: steadyTimeline},
	{Name: "medium-baseline", Hosts: 100, Connections: 1_000_000, HAProxies: 3, Baseline: [2]float64{0, 0.25}, Timeline: steadyTimeline},
	{Name: "small-idle", Hosts: 10, Connections: 10_000, HAProxies: 3, Baseline: [2]float64{0.07, 0.08}, ConnectionCPU: 0.005, EqualHosts: true, Reference: 10_000, Timeline: steadyTimeline},
	{Name: "medium-idle", Hosts: 100, Connections: 1_000_000, HAProxies: 3, Baseline: [2]float64{0.07, 0.08}, ConnectionCPU: 0.005, EqualHosts: true, Reference: 100_000, Timeline: steadyTimeline},
}

// quick shrinks a scenario for smoke runs: a hundredth of the connections.
func (s Scenario) quick() Scenario {
	s.Connections = max(s.Connections/100, 100*s.Hosts)
	return s
}

// fleet is the hosts' speeds and the roles they play in the events, drawn
// the same way for every policy.
type fleet struct {
	// speeds has Hosts+1 entries: the last host is the one added.
	speeds []float64
	// drained and noisy are the hosts the events hit.
	drained, noisy int
	// baselines has Hosts+1 entries: each host's CPU baseline.
	baselines []float64
	// unitCapacity is the activity a host of speed 1 serves at 100 % CPU.
	unitCapacity float64
}

// newFleet assigns speeds in the mix's proportions, shuffled by seed.
func newFleet(sc Scenario, seed uint64) fleet {
	rng := rand.New(rand.NewPCG(seed, streamFleet))
	speeds := make([]float64, 0, sc.Hosts+1)
	for i, m := range speedMix {
		n := int(math.Round(m.share * float64(sc.Hosts)))
		if i == len(speedMix)-1 {
			n = sc.Hosts - len(speeds)
		}
		for range n {
			if sc.EqualHosts {
				speeds = append(speeds, 1)
			} else {
				speeds = append(speeds, m.speed)
			}
		}
	}
	rng.Shuffle(len(speeds), func(i, j int) { speeds[i], speeds[j] = speeds[j], speeds[i] })
	var total float64
	for _, s := range speeds {
		total += s
	}
	f := fleet{speeds: append(speeds, addedSpeed), drained: -1, noisy: -1}
	// Drain the first fast host (the largest loss of capacity) and slow
	// down the first ordinary one.
	for h, s := range speeds {
		if s == speedMix[len(speedMix)-1].speed && f.drained < 0 {
			f.drained = h
		}
		if s == 1.0 && f.noisy < 0 && h != f.drained {
			f.noisy = h
		}
	}
	if f.drained < 0 { // one machine type: drain the first host
		f.drained = 0
		f.noisy = 1
	}
	f.baselines = make([]float64, len(f.speeds))
	var baseSum float64
	for h := range f.baselines {
		f.baselines[h] = sc.Baseline[0] + (sc.Baseline[1]-sc.Baseline[0])*rng.Float64()
		if h < sc.Hosts {
			baseSum += f.baselines[h]
		}
	}
	connCPU := sc.ConnectionCPU
	if connCPU == 0 {
		connCPU = meanCPU - baseSum/float64(sc.Hosts)
	}
	f.unitCapacity = float64(sc.Connections) * meanActivity / (connCPU * total)
	return f
}

// referenceCapacity is the capacity, in connections at the CPU target, of
// a host of speed 1 with the average client mix: what weight 100 % means.
func (f fleet) referenceCapacity(cpuTarget float64) int {
	return int(math.Round(cpuTarget * f.unitCapacity / meanActivity))
}

// Random streams: each concern draws from its own, so that the arrivals
// are the same whatever the policy does.
const (
	streamFleet = iota + 1
	streamArrivals
	streamNoise
	streamPhases
	streamEvents
	// The daily farm's: its hosts' draws, its load's noise, the CPU
	// readings its CPU autoscaler averages.
	streamHosts
	streamLoad
	streamCPU
)

func (s Scenario) String() string {
	return fmt.Sprintf("%s (%d hosts, %d connections, %d HAProxies)", s.Name, s.Hosts, s.Connections, s.HAProxies)
}
