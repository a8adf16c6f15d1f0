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

// ErrFleetBusy says that another read of the backend held the fleet cache
// until the caller's deadline.
var ErrFleetBusy = errors.New("another read of the backend from HAProxy is in progress")

// fleetTTL is how long a read of the backend answers for: scrapes,
// autoscalers polling /fleet and `hafeed fleet` share it, so that however
// many ask, HAProxy's show stat is read at most once in that time, and one
// read at a time.
const fleetTTL = 2 * time.Second

// fleetCache is the last read of the backend's figures.
type fleetCache struct {
	// turn is held by the one read running; the fields below are its
	// holder's.
	turn chan struct{}
	at   time.Time // when the last read ended; zero: none yet
	last control.Fleet
	err  error
}

func newFleetCache() *fleetCache { return &fleetCache{turn: make(chan struct{}, 1)} }

// Fleet is the backend's figures for autoscalers, read through the runtime
// endpoints at most once every fleetTTL. Every agent of the backend
// computes the same, since weights are capacities relative to the one
// reference_capacity.
func (a *Agent) Fleet(ctx context.Context) (control.Fleet, error) {
	set := a.rt.set()
	if set == nil || len(set.Endpoints()) == 0 {
		return control.Fleet{}, ErrNoRuntime
	}
	c := a.fleet
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return control.Fleet{}, ErrFleetBusy
	}
	defer func() { <-c.turn }()
	if !c.at.IsZero() && time.Since(c.at) < fleetTTL {
		return c.last, c.err
	}
	f, err := a.readFleet(ctx)
	if ctx.Err() != nil {
		// Cut short by this caller's deadline: not an answer for others.
		return f, err
	}
	c.last, c.err, c.at = f, err, time.Now()
	return f, err
}

func (a *Agent) readFleet(ctx context.Context) (control.Fleet, error) {
	set := a.rt.set()
	if set == nil {
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
