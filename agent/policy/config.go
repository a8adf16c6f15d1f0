package policy

import (
	"slices"
	"time"
)

// PolicyConfig turns load into a weight; see PolicyConfig.Step. The yaml
// tags are the keys under policy: in the agent's configuration.
type PolicyConfig struct {
	// ReferenceCapacity is the capacity, in connections at target
	// utilisation, that weight 100% stands for; the same on every host.
	ReferenceCapacity int `yaml:"reference_capacity"`
	// Targets are the values at which each signal counts as full load.
	Targets Targets `yaml:"targets"`
	// Mix, when set, averages the signals with these weights instead of
	// taking the largest (see Combine).
	Mix map[string]float64 `yaml:"mix"`
	// Smoothing is the time constant of the EWMAs of utilisation and
	// connections that the capacity estimate reads.
	Smoothing time.Duration `yaml:"smoothing"`
	// DeadBand is the relative weight change not worth reporting.
	DeadBand float64 `yaml:"dead_band"`
	// MaxStep is the largest relative weight change per second.
	MaxStep float64 `yaml:"max_step"`
	// Blackout is how long after start no weight is reported.
	Blackout time.Duration `yaml:"blackout"`
	// IdleUtilisation and MinConnections are the load under which what
	// connections cost cannot be measured: the headroom alone counts, and
	// under MinConnections the host counts as empty (its utilisation is
	// its baseline).
	IdleUtilisation float64 `yaml:"idle_utilisation"`
	MinConnections  int     `yaml:"min_connections"`
	// HighWater is the utilisation above which the overload guard sends
	// maxconn; 0 turns the guard off.
	HighWater float64 `yaml:"high_water"`
	// Maxconn is the maxconn sent when the guard lifts its cap (0: unlimited).
	Maxconn int `yaml:"maxconn"`
	// StaleAfter is how old a reading may be and still count (see Observe).
	StaleAfter time.Duration `yaml:"stale_after"`
}

// Targets are the values at which each signal counts as full load; 0
// leaves a signal out.
type Targets struct {
	CPU         float64 `yaml:"cpu"`
	Memory      float64 `yaml:"memory"`
	Pressure    float64 `yaml:"pressure"`
	App         float64 `yaml:"app"`
	Connections int     `yaml:"connections"`
}

// Signal names, as used in targets, mix, status and logs.
const (
	SignalCPU         = "cpu"
	SignalMemory      = "memory"
	SignalPressure    = "pressure"
	SignalApp         = "app"
	SignalConnections = "connections"
)

// Signals lists every signal name.
var Signals = []string{SignalCPU, SignalMemory, SignalPressure, SignalApp, SignalConnections}

// IsSignal says whether name is one of Signals.
func IsSignal(name string) bool { return slices.Contains(Signals, name) }

// Of is the target of one signal, 0 for an unknown one.
func (t Targets) Of(signal string) float64 {
	switch signal {
	case SignalCPU:
		return t.CPU
	case SignalMemory:
		return t.Memory
	case SignalPressure:
		return t.Pressure
	case SignalApp:
		return t.App
	case SignalConnections:
		return float64(t.Connections)
	}
	return 0
}

// DefaultConfig is the policy used where the configuration says nothing.
func DefaultConfig() PolicyConfig {
	return PolicyConfig{
		ReferenceCapacity: 10000,
		Targets:           Targets{CPU: 0.8, Memory: 0.9, Pressure: 0.5, App: 0.8},
		Smoothing:         10 * time.Second,
		DeadBand:          0.02,
		MaxStep:           0.25,
		Blackout:          10 * time.Second,
		IdleUtilisation:   0.05,
		MinConnections:    10,
		HighWater:         1.2,
		StaleAfter:        10 * time.Second,
	}
}

// RebalanceConfig moves connections off a host that holds more than its
// share, after scale-up; see RebalanceConfig.Step.
type RebalanceConfig struct {
	Enabled bool `yaml:"enabled"`
	// Margin is how far above its fair share (a fraction) the host must be.
	Margin float64 `yaml:"margin"`
	// Sustain is how long a host at twice the margin above its share
	// waits before shedding; further above it waits less, closer more
	// (see RebalanceConfig.decide).
	Sustain time.Duration `yaml:"sustain"`
	// MaxRate bounds shedding, as a fraction of the host's connections per second.
	MaxRate float64 `yaml:"max_rate"`
	// Cooldown is the pause after a round of shedding.
	Cooldown time.Duration `yaml:"cooldown"`
	// HighWater is the utilisation that triggers shedding when no runtime
	// endpoint shows the backend.
	HighWater float64 `yaml:"high_water"`
}

// DefaultRebalance is the rebalancer's configuration where the
// configuration says nothing: off, with these settings once enabled.
func DefaultRebalance() RebalanceConfig {
	return RebalanceConfig{
		Margin:    0.1,
		Sustain:   30 * time.Second,
		MaxRate:   0.05,
		Cooldown:  time.Minute,
		HighWater: 1.0,
	}
}
