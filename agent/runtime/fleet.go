package runtime

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
)

// Backend is this host's backend as the HAProxies show it: every server's
// state, weight and connections, for the fleet figures.
type Backend struct {
	Name    string
	Self    string // this host's server in it
	Servers []policy.FleetServer
}

// Backend reads this host's first backend from every endpoint: each
// server's connections summed over the HAProxies, its smallest weight,
// the state that takes it out of rotation if any HAProxy shows one, and
// its most recent change. It waits at most PushTimeout.
func (s *Set) Backend(ctx context.Context) (Backend, error) {
	ctx, cancel := context.WithTimeout(ctx, PushTimeout)
	defer cancel()
	var own Target
	byName := map[string]*policy.FleetServer{}
	var order []string
	for _, e := range s.endpoints {
		targets := e.Targets()
		if len(targets) == 0 {
			continue
		}
		if own.Backend == "" {
			own = targets[0]
		}
		if !containsBackend(targets, own.Backend) {
			continue
		}
		stats, err := e.rt.Stats(ctx, own.Backend)
		if err != nil {
			return Backend{}, err
		}
		for _, row := range hostRows(stats, targets, own) {
			fs := byName[row.Name]
			if fs == nil {
				byName[row.Name] = &row
				order = append(order, row.Name)
				continue
			}
			fs.Conns += row.Conns
			fs.Weight = min(fs.Weight, row.Weight)
			fs.Since = min(fs.Since, row.Since)
			if fs.State == policy.StateReady {
				fs.State = row.State
			}
		}
	}
	if own.Backend == "" {
		return Backend{}, ErrNoTargets
	}
	b := Backend{Name: own.Backend, Self: own.Server}
	for _, n := range order {
		b.Servers = append(b.Servers, *byName[n])
	}
	return b, nil
}

// hostRows are one HAProxy's servers counted by host: this host's lines
// (targets) as own's server, and the lines of another host that share one
// ip:port (a line per source address) as their first line's name. A
// host's lines add up their connections and weights, and it is in
// rotation while one of its lines is.
func hostRows(stats []haproxy.Stat, targets []Target, own Target) []policy.FleetServer {
	byAddr := map[string]int{}
	for _, st := range stats {
		if st.Addr != "" {
			byAddr[st.Addr]++
		}
	}
	var rows []policy.FleetServer
	index := map[string]int{} // host key: its row
	for _, st := range stats {
		if st.Server == "FRONTEND" || st.Server == "BACKEND" {
			continue
		}
		row := fleetServer(st)
		key := st.Server
		switch {
		case slices.Contains(targets, Target{own.Backend, st.Server}):
			key, row.Name = "self", own.Server
		case byAddr[st.Addr] > 1:
			key = "addr " + st.Addr
		}
		i, ok := index[key]
		if !ok {
			index[key] = len(rows)
			rows = append(rows, row)
			continue
		}
		r := &rows[i]
		r.Conns += row.Conns
		r.Weight += row.Weight
		r.Since = min(r.Since, row.Since)
		if row.State == policy.StateReady {
			r.State = policy.StateReady
		}
	}
	return rows
}

func containsBackend(targets []Target, backend string) bool {
	for _, t := range targets {
		if t.Backend == backend {
			return true
		}
	}
	return false
}

// fleetServer is a show stat row as the fleet counts it. Its weight is
// the user weight, the capacity its agent reported: the effective weight
// is throttled by slowstart for a while after the server leaves maint,
// which is no loss of capacity.
func fleetServer(st haproxy.Stat) policy.FleetServer {
	fs := policy.FleetServer{Name: st.Server, Address: st.Addr, Weight: st.UWeight, Conns: st.Scur, State: ServerState(st.Status)}
	if secs, err := strconv.Atoi(st.Fields["lastchg"]); err == nil {
		fs.Since = time.Duration(secs) * time.Second
	}
	return fs
}

// ServerState is the fleet's name for a show stat status: MAINT (and
// "MAINT (via)", "MAINT (resolution)") is maint; DRAIN, "DRAIN (agent)"
// and NOLB drain; DOWN (health check or agent) down; UP, "UP 1/3" and
// "no check" ready.
func ServerState(status string) string {
	switch {
	case strings.HasPrefix(status, "MAINT"):
		return policy.StateMaint
	case strings.HasPrefix(status, "DRAIN"), strings.HasPrefix(status, "NOLB"):
		return policy.StateDrain
	case strings.HasPrefix(status, "DOWN"):
		return policy.StateDown
	}
	return policy.StateReady
}
