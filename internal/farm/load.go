package farm

import (
	"math"
	"runtime"
	"time"
)

// Backend is one backend of a farm.
type Backend struct {
	Name string
	// Speed is the host's relative speed: a message costs it 1/Speed times
	// the work of a speed-1 host.
	Speed float64
	// Spare backends start out of service (hafeed maint).
	Spare bool
}

// DefaultBackends are the benchmark's and the demo's backends: ws1 is a
// half-speed host, ws2..ws4 speed 1; ws4 is a spare when spare is set.
func DefaultBackends(spare bool) []Backend {
	return []Backend{
		{Name: "ws1", Speed: 0.5},
		{Name: "ws2", Speed: 1},
		{Name: "ws3", Speed: 1},
		{Name: "ws4", Speed: 1, Spare: spare},
	}
}

// Policy is how HAProxy balances.
type Policy struct {
	Name      string
	Balance   string // roundrobin or leastconn
	Agent     bool   // agent-check to hafeed
	Rebalance bool   // hafeed's rebalance.enabled
}

// Load is the client load and the agents' settings, shared by every run.
type Load struct {
	HotClients   int
	HotInterval  time.Duration
	LazyClients  int
	LazyInterval time.Duration
	// HotRamp spreads the hot clients' arrivals from t=0; the lazy ones
	// arrive from LazyStart, spread over LazyRamp.
	HotRamp, LazyStart, LazyRamp time.Duration
	// Churn is the fraction of clients replaced per second.
	Churn float64
	// WorkMicros is the CPU one message costs a speed-1 backend.
	WorkMicros float64
	// HashNanos is the measured cost of one SHA-256 of a message.
	HashNanos float64
	// BudgetCores is each backend's CPU budget: utilisation 1.
	BudgetCores float64
	Smoothing   time.Duration
	Rebalancing RebalanceSettings
	// ShedRate is the drain's --shed-rate.
	ShedRate float64
	// HardStop is HAProxy's hard-stop-after.
	HardStop time.Duration
	// PayloadSize is the size of a message.
	PayloadSize int
}

// RebalanceSettings are the rebalance keys the farm sets.
type RebalanceSettings struct {
	Margin   float64
	Sustain  time.Duration
	MaxRate  float64
	Cooldown time.Duration
}

// DefaultLoad is the full benchmark's load: 40 hot clients at 10 messages a
// second and 800 lazy ones at one every 2 s (half the messages each), 0.6
// cores of work at speed 1, a budget of 0.4 cores per backend.
func DefaultLoad() Load {
	return Load{
		HotClients: 40, HotInterval: 100 * time.Millisecond,
		LazyClients: 800, LazyInterval: 2 * time.Second,
		HotRamp: 2 * time.Second, LazyStart: 2 * time.Second, LazyRamp: 4 * time.Second,
		Churn:       0.05,
		WorkMicros:  750,
		BudgetCores: 0.4,
		Smoothing:   5 * time.Second,
		Rebalancing: RebalanceSettings{Margin: 0.1, Sustain: 5 * time.Second, MaxRate: 0.03, Cooldown: 10 * time.Second},
		ShedRate:    50,
		HardStop:    5 * time.Second,
		PayloadSize: 32,
	}
}

// MessagesPerSecond is the client load in messages per second.
func (l Load) MessagesPerSecond() float64 {
	return float64(l.HotClients)/l.HotInterval.Seconds() + float64(l.LazyClients)/l.LazyInterval.Seconds()
}

// DemandCores is the CPU the load costs at speed 1.
func (l Load) DemandCores() float64 { return l.MessagesPerSecond() * l.WorkMicros / 1e6 }

// ReferenceCapacity is the connections a speed-1 backend holds at its
// budget with the average client mix.
func (l Load) ReferenceCapacity() int {
	perConn := l.DemandCores() / float64(l.HotClients+l.LazyClients)
	return int(math.Round(l.BudgetCores / perConn))
}

// Work is the hash count per message of a backend of the given speed.
func (l Load) Work(speed float64) int {
	return max(1, int(math.Round(l.WorkMicros*1000/l.HashNanos/speed)))
}

// CPUTarget is targets.cpu: the budget as a fraction of the machine.
func (l Load) CPUTarget() float64 {
	return math.Round(l.BudgetCores/float64(runtime.NumCPU())*1000) / 1000
}
