package control

import (
	"time"

	"github.com/hafeed/hafeed/agent/policy"
)

// Fleet is the backend as this agent sees it through HAProxy, for
// autoscalers: `hafeed fleet --json` and GET /fleet. Its field names are a
// contract (docs/AUTOSCALING.md reads them).
type Fleet struct {
	Backend string        `json:"backend"`
	Servers []FleetServer `json:"servers"`
	// Connections and CapacityConnections are the totals of the servers in
	// rotation; Utilisation is the one over the other (1.0: every host at
	// its targets).
	Connections         int     `json:"connections"`
	CapacityConnections int     `json:"capacity_connections"`
	Utilisation         float64 `json:"utilisation"`
	InRotation          int     `json:"in_rotation"`
	// DesiredServers is HPA's ceil(in_rotation × utilisation / target).
	DesiredServers    int     `json:"desired_servers"`
	TargetUtilisation float64 `json:"target_utilisation"`
	Tolerance         float64 `json:"tolerance"`
	// ScaleInCandidate is the ready server whose drain moves the fewest
	// connections, "" when none may go; Skipped says why others were not.
	ScaleInCandidate string      `json:"scale_in_candidate"`
	Skipped          []FleetSkip `json:"skipped"`
	// Self is this agent's server; At when the figures were read.
	Self string    `json:"self"`
	At   time.Time `json:"at"`
}

// FleetServer is one server's row.
type FleetServer struct {
	Name string `json:"name"`
	// Address is its ip:port in HAProxy: what maps it to a pod or an
	// instance.
	Address             string `json:"address"`
	State               string `json:"state"`
	WeightPercent       int    `json:"weight_percent"`
	Connections         int    `json:"connections"`
	CapacityConnections int    `json:"capacity_connections"`
	// SinceChangeSeconds is how long ago HAProxy saw its state change.
	SinceChangeSeconds int `json:"since_change_seconds"`
}

// FleetSkip is a ready server left out of the scale-in choice, and why.
type FleetSkip struct {
	Name string `json:"name"`
	Why  string `json:"why"`
}

// FleetOf is the wire form of the fleet figures of backend.
func FleetOf(backend, self string, cfg policy.FleetConfig, f policy.Fleet, at time.Time) Fleet {
	out := Fleet{
		Backend: backend, Self: self, At: at,
		Servers:     []FleetServer{},
		Connections: f.Connections, CapacityConnections: f.Capacity, Utilisation: f.Utilisation,
		InRotation: f.InRotation, DesiredServers: f.Desired,
		TargetUtilisation: cfg.TargetUtilisation, Tolerance: cfg.Tolerance,
		ScaleInCandidate: f.ScaleIn, Skipped: []FleetSkip{},
	}
	for _, s := range f.Servers {
		out.Servers = append(out.Servers, FleetServer{
			Name: s.Name, Address: s.Address, State: s.State, WeightPercent: s.Weight, Connections: s.Conns,
			CapacityConnections: s.Capacity, SinceChangeSeconds: int(s.Since / time.Second),
		})
	}
	for _, s := range f.Skipped {
		out.Skipped = append(out.Skipped, FleetSkip{s.Name, s.Why})
	}
	return out
}
