package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
)

// Set is the runtime endpoints one configuration names. A reload that
// changes haproxy[] replaces the whole set: Start the new one, Stop the old.
type Set struct {
	// Set once by NewSet.
	endpoints []*Endpoint
	closer    *SessionCloser

	// Set by Start, used by Stop.
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSet builds the endpoints of cfgs, not running yet.
func NewSet(cfgs []config.HAProxyConfig, opts EndpointOptions, log zerolog.Logger) (*Set, error) {
	s := &Set{}
	for _, hc := range cfgs {
		e, err := NewEndpoint(hc, opts, log)
		if err != nil {
			return nil, err
		}
		s.endpoints = append(s.endpoints, e)
	}
	if len(s.endpoints) > 0 {
		s.closer = &SessionCloser{endpoints: s.endpoints, turn: make(chan struct{}, 1)}
	}
	return s, nil
}

// Start runs every endpoint until ctx ends or Stop is called.
func (s *Set) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	for _, e := range s.endpoints {
		s.wg.Go(func() { e.Run(ctx) })
	}
}

// Stop stops the endpoints Start started and waits until they have.
func (s *Set) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// Endpoints are the set's endpoints.
func (s *Set) Endpoints() []*Endpoint { return s.endpoints }

// Closer sheds through the set's endpoints; nil when it has none.
func (s *Set) Closer() *SessionCloser { return s.closer }

// Snapshots are the endpoints' statuses; they never wait.
func (s *Set) Snapshots() []EndpointStatus {
	var out []EndpointStatus
	for _, e := range s.endpoints {
		out = append(out, e.Snapshot())
	}
	return out
}

// PushAll applies the wanted admin state through every endpoint at once,
// waiting at most PushTimeout and not past ctx's deadline; endpoints that
// fail, or are still busy then, keep retrying in the background. It
// returns a warning for each endpoint not pushed yet.
func (s *Set) PushAll(ctx context.Context) []string {
	if len(s.endpoints) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, PushTimeout)
	defer cancel()
	errs := make(chan error, len(s.endpoints))
	for _, e := range s.endpoints {
		// Each ends within PushTimeout of taking the endpoint's lock,
		// which its own Run holds at most as long; errs has room for all,
		// so none outlives that.
		go func() { errs <- e.PushNow(ctx) }()
	}
	var warnings []string
	for range s.endpoints {
		var err error
		select {
		case err = <-errs:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("not pushed yet, retrying in the background (the agent-check reply carries it too): %v", err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return warnings
}

// ErrNoTargets says that no endpoint has found this host yet.
var ErrNoTargets = errors.New("this host was not found in any HAProxy yet")

// BackendView sums every endpoint's view of this host's first backend: each
// server's connections over the HAProxies, and its smallest effective
// weight, the one HAProxy balances on now. self is this host's server in
// it. It waits at most PushTimeout.
func (s *Set) BackendView(ctx context.Context) (servers []policy.ServerLoad, self string, err error) {
	return s.view(ctx, effectiveWeight)
}

// view is BackendView with the weight weightOf reads.
func (s *Set) view(ctx context.Context, weightOf func(haproxy.Stat) int) (servers []policy.ServerLoad, self string, err error) {
	ctx, cancel := context.WithTimeout(ctx, PushTimeout)
	defer cancel()
	var own Target
	byName := map[string]*policy.ServerLoad{}
	var order []string
	for _, e := range s.endpoints {
		targets := e.Targets()
		if len(targets) == 0 {
			continue
		}
		if own.Backend == "" {
			own = targets[0]
		}
		load, err := e.backendLoad(ctx, weightOf)
		if err != nil {
			return nil, "", err
		}
		// This host's lines in this HAProxy count as one server, own's:
		// their connections and weights add up.
		mine, lines := policy.ServerLoad{Name: own.Server}, 0
		for t, l := range load {
			if t.Backend != own.Backend {
				continue
			}
			if slices.Contains(targets, t) {
				mine.Conns += l.Conns
				mine.Weight += l.Weight
				lines++
				continue
			}
			addLoad(byName, &order, l)
		}
		if lines > 0 {
			addLoad(byName, &order, mine)
		}
	}
	if own.Backend == "" {
		return nil, "", ErrNoTargets
	}
	out := make([]policy.ServerLoad, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out, own.Server, nil
}

// addLoad adds one HAProxy's view of a server to the sum over HAProxies:
// connections add up, the smallest weight stands.
func addLoad(byName map[string]*policy.ServerLoad, order *[]string, l policy.ServerLoad) {
	sl := byName[l.Name]
	if sl == nil {
		sl = &policy.ServerLoad{Name: l.Name, Weight: l.Weight}
		byName[l.Name] = sl
		*order = append(*order, l.Name)
	}
	sl.Conns += l.Conns
	sl.Weight = min(sl.Weight, l.Weight)
}

// Lines is how many server lines point at this host in the HAProxy that
// has the most (with discovery, every line with this host's address and
// port, one per source address; several app ports make several), in this
// host's first backend; 0 while no endpoint has found it.
func (s *Set) Lines() int {
	n := 0
	for _, e := range s.endpoints {
		targets := e.Targets()
		if len(targets) == 0 {
			continue
		}
		k := 0
		for _, t := range targets {
			if t.Backend == targets[0].Backend {
				k++
			}
		}
		n = max(n, k)
	}
	return n
}

// MeanWeight is the mean user weight of the other servers in rotation in
// this host's backend, their capacity as their agents report it, which
// slowstart does not throttle; 0 when no endpoint shows it.
func (s *Set) MeanWeight(ctx context.Context) (float64, error) {
	servers, self, err := s.view(ctx, userWeight)
	if err != nil {
		return 0, err
	}
	var sum float64
	n := 0
	for _, sv := range servers {
		if sv.Name != self && sv.Weight > 0 {
			sum += float64(sv.Weight)
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	return sum / float64(n), nil
}
