package policy

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// FleetConfig is what the fleet figures for autoscalers are computed
// against (the fleet: keys).
type FleetConfig struct {
	// TargetUtilisation is the backend utilisation (connections over
	// capacity, 1.0 = every host at its targets) the farm is sized for.
	TargetUtilisation float64 `yaml:"target_utilisation"`
	// Tolerance is how far from the target (a fraction of it) the
	// utilisation may be before desired_servers moves, as HPA's.
	Tolerance float64 `yaml:"tolerance"`
	// Settle is how long after its last change of state a server is left
	// out of the scale-in choice: it is still filling up.
	Settle time.Duration `yaml:"settle"`
}

// DefaultFleet is the fleet configuration by default.
func DefaultFleet() FleetConfig {
	return FleetConfig{TargetUtilisation: 0.75, Tolerance: 0.1, Settle: 2 * time.Minute}
}

// Server states in the fleet view.
const (
	StateReady = "ready"
	StateDrain = "drain"
	StateMaint = "maint"
	StateDown  = "down"
)

// FleetServer is one server of the backend as the HAProxies show it.
type FleetServer struct {
	Name string
	// Address is the server's ip:port, as HAProxy has it.
	Address string
	State   string // StateReady, StateDrain, StateMaint or StateDown
	// Weight is the server's effective weight: its percentage, with the
	// weight 100 of the recommended haproxy.cfg.
	Weight int
	Conns  int
	// Since is how long ago the server last changed state, as HAProxy
	// counts it (lastchg).
	Since time.Duration
}

// Fleet is the backend's figures for autoscalers: what it holds, what it
// can hold at its hosts' targets, and how many hosts it needs.
type Fleet struct {
	Servers []FleetServerFigures
	// Connections and Capacity are the in-rotation servers' totals.
	Connections int
	Capacity    int
	// Utilisation is Connections over Capacity; 0 with no capacity.
	Utilisation float64
	InRotation  int
	// Desired is ceil(InRotation × Utilisation / target), or InRotation
	// within the tolerance; at least 1.
	Desired int
	// ScaleIn is the ready server whose drain moves the fewest
	// connections; "" when none may go. Skipped says why others were not.
	ScaleIn string
	Skipped []FleetSkip
}

// FleetServerFigures is one server's row.
type FleetServerFigures struct {
	FleetServer
	// Capacity is Weight × reference_capacity / 100: the connections it
	// holds at its targets.
	Capacity int
}

// FleetSkip says why a ready server is not the scale-in candidate.
type FleetSkip struct {
	Name, Why string
}

// ComputeFleet computes the fleet figures of servers, whose weights are
// capacities relative to reference (reference_capacity, the same on every
// host, so that every agent computes the same figures).
func (fc FleetConfig) ComputeFleet(servers []FleetServer, reference int) Fleet {
	var f Fleet
	for _, s := range servers {
		row := FleetServerFigures{FleetServer: s, Capacity: s.Weight * reference / 100}
		f.Servers = append(f.Servers, row)
		if s.State == StateReady && s.Weight > 0 {
			f.InRotation++
			f.Connections += s.Conns
			f.Capacity += row.Capacity
		}
	}
	if f.Capacity > 0 {
		f.Utilisation = float64(f.Connections) / float64(f.Capacity)
	}
	f.Desired = max(f.InRotation, 1)
	if target := fc.TargetUtilisation; target > 0 && f.InRotation > 0 {
		ratio := f.Utilisation / target
		if math.Abs(ratio-1) > fc.Tolerance {
			f.Desired = max(int(math.Ceil(float64(f.InRotation)*ratio-1e-9)), 1)
		}
	}
	f.ScaleIn, f.Skipped = fc.scaleIn(f.Servers, f.InRotation)
	return f
}

// scaleIn picks the ready server with the fewest connections, leaving out
// those that changed state within Settle (a joiner holds few because it is
// filling up, not because it is cheap to drain).
func (fc FleetConfig) scaleIn(servers []FleetServerFigures, inRotation int) (string, []FleetSkip) {
	var skipped []FleetSkip
	var candidates []FleetServerFigures
	for _, s := range servers {
		switch {
		case s.State != StateReady || s.Weight <= 0:
			continue
		case s.Since < fc.Settle:
			skipped = append(skipped, FleetSkip{s.Name, fmt.Sprintf("changed state %s ago, under fleet.settle (%s): still filling up", s.Since.Round(time.Second), fc.Settle)})
			continue
		}
		candidates = append(candidates, s)
	}
	if inRotation <= 1 {
		for _, s := range candidates {
			skipped = append(skipped, FleetSkip{s.Name, "the only server in rotation"})
		}
		return "", skipped
	}
	if len(candidates) == 0 {
		return "", skipped
	}
	best := slices.MinFunc(candidates, func(a, b FleetServerFigures) int {
		return cmp.Or(cmp.Compare(a.Conns, b.Conns), cmp.Compare(a.Name, b.Name))
	})
	return best.Name, skipped
}
