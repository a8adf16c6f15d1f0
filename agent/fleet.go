package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hafeed/hafeed/agent/control"
)

// ErrNoRuntime says that the fleet figures need a runtime endpoint: they
// are HAProxy's view of the backend.
var ErrNoRuntime = errors.New("the fleet figures are HAProxy's view of the backend, read through its runtime API, and this agent has no haproxy[].runtime endpoint: " +
	"add one (haproxy: [{runtime: unix:///run/haproxy/admin.sock}]) and reload")

// Fleet reads the backend through the runtime endpoints and computes its
// figures for autoscalers. Every agent of the backend computes the same,
// since weights are capacities relative to the one reference_capacity.
func (a *Agent) Fleet(ctx context.Context) (control.Fleet, error) {
	set := a.rt.set()
	if set == nil || len(set.Endpoints()) == 0 {
		return control.Fleet{}, ErrNoRuntime
	}
	b, err := set.Backend(ctx)
	if err != nil {
		return control.Fleet{}, fmt.Errorf("reading the backend from HAProxy: %w", err)
	}
	cfg := a.conf()
	f := cfg.Fleet.ComputeFleet(b.Servers, cfg.Policy.ReferenceCapacity)
	return control.FleetOf(b.Name, b.Self, cfg.Fleet, f, time.Now()), nil
}
