package main

import (
	"math"
	"time"

	hpolicy "github.com/hafeed/hafeed/agent/policy"
)

// ScalerConfig is the mechanics both autoscalers of the daily farm share:
// those of Kubernetes' HPA by default, with a host that boots for a while
// and a drain that sheds, as hafeed drain --wait --shed-rate does.
type ScalerConfig struct {
	// TargetUtilisation, Tolerance and Settle are hafeed's fleet
	// settings; the CPU autoscaler's target is TargetUtilisation of the
	// agents' CPU target, with the same tolerance.
	TargetUtilisation float64 `json:"target_utilisation"`
	Tolerance         float64 `json:"tolerance"`
	SettleSeconds     int     `json:"settle_s"`
	// SyncSeconds is how often the autoscaler decides (HPA's sync
	// period); DownWindowSeconds how far back it looks for the highest
	// recommendation before it scales in (HPA's scale-down stabilisation
	// window); CooldownSeconds how long it waits after an action.
	SyncSeconds       int `json:"sync_s"`
	DownWindowSeconds int `json:"scale_down_window_s"`
	CooldownSeconds   int `json:"cooldown_s"`
	// BootSeconds is how long a launched host takes to join: its agent
	// starts preJoin before, while the host is in maint.
	BootSeconds int `json:"boot_s"`
	// ShedRate is the drains' --shed-rate, connections a second.
	ShedRate int `json:"shed_rate"`
	MinHosts int `json:"min_hosts"`
	MaxHosts int `json:"max_hosts"`
}

// defaultScaler is HPA's defaults (a 15 s sync, a 5-minute scale-down
// window, tolerance 0.1, scale-out by at most max(4 hosts, 100 %) a sync),
// hafeed's fleet defaults (target 0.75, settle 2 min), a one-minute boot,
// a one-minute cooldown, so that each decision sees the last one's hosts
// in rotation, and drains at 50 connections a second.
func defaultScaler() ScalerConfig {
	fc := hpolicy.DefaultFleet()
	return ScalerConfig{
		TargetUtilisation: fc.TargetUtilisation,
		Tolerance:         fc.Tolerance,
		SettleSeconds:     int(fc.Settle / time.Second),
		SyncSeconds:       15,
		DownWindowSeconds: 300,
		CooldownSeconds:   60,
		BootSeconds:       60,
		ShedRate:          50,
		MinHosts:          3,
		MaxHosts:          120,
	}
}

// fleet is the configuration of hafeed's fleet figures.
func (c ScalerConfig) fleet() hpolicy.FleetConfig {
	return hpolicy.FleetConfig{TargetUtilisation: c.TargetUtilisation, Tolerance: c.Tolerance, Settle: time.Duration(c.SettleSeconds) * time.Second}
}

// autoscaler is one way of sizing the daily farm.
type autoscaler struct {
	Name string
	// fleet drives it by hafeed's desired_servers and removes
	// scale_in_candidate; otherwise it is HPA's CPU formula over the
	// hosts in rotation, and it removes the newest host, as a Kubernetes
	// ReplicaSet does when nothing else tells the pods apart.
	fleet bool
	// plain balances the farm with leastconn alone, without hafeed's
	// agents: the farm a CPU autoscaler sizes where hafeed is not used.
	plain bool
}

var autoscalers = []autoscaler{
	{Name: "desired_servers", fleet: true},
	{Name: "mean CPU"},
	{Name: "mean CPU, leastconn", plain: true},
}

// controller is the autoscaler's memory: its recent recommendations and
// the end of its cooldown.
type controller struct {
	recent        []recommendation
	cooldownUntil int
}

type recommendation struct{ at, hosts int }

// recommend stabilises raw, the hosts the signal asks for at second sec,
// as HPA does: a scale-out at once, a scale-in only to the highest
// recommendation of the window, within the host bounds.
func (c *controller) recommend(sc ScalerConfig, sec, raw, current int) int {
	c.recent = append(c.recent, recommendation{sec, raw})
	for len(c.recent) > 0 && sec-c.recent[0].at >= sc.DownWindowSeconds {
		c.recent = c.recent[1:]
	}
	desired := raw
	if raw < current {
		for _, r := range c.recent {
			desired = max(desired, r.hosts)
		}
		desired = min(desired, current)
	}
	return min(max(desired, sc.MinHosts), sc.MaxHosts)
}

// hostCounts counts the hosts booting and in rotation.
func (d *dailyRun) hostCounts() (booting, ready int) {
	for _, sl := range d.slots {
		switch sl.state {
		case hostBooting:
			booting++
		case hostReady:
			ready++
		}
	}
	return booting, ready
}

// decide is the autoscaler's sync at second sec.
func (d *dailyRun) decide(sec int, measured bool) {
	var raw int
	if d.scaler.fleet {
		raw = d.fleetFigures(sec).Desired
	} else {
		raw = d.cpuDesired()
	}
	booting, ready := d.hostCounts()
	current := booting + ready
	desired := d.ctl.recommend(d.scaling, sec, raw, current)
	if sec < d.ctl.cooldownUntil || desired == current {
		return
	}
	d.ctl.cooldownUntil = sec + d.scaling.CooldownSeconds
	if desired > current {
		n := min(desired-current, max(4, current))
		for range n {
			if !d.launch(sec) {
				break
			}
			if measured {
				d.out.Launched++
			}
		}
		if measured {
			d.out.ScaleOuts++
		}
		return
	}
	removed := d.scaleIn(sec, current-desired, measured)
	if measured && removed > 0 {
		d.out.ScaleIns++
	}
}

// scaleIn removes n hosts at second sec: booting ones first, the newest
// first (as a ReplicaSet deletes pods not yet ready first), then hosts
// in rotation, drained one after another as the autoscaler chooses. It
// returns how many it removed.
func (d *dailyRun) scaleIn(sec, n int, measured bool) int {
	removed := 0
	for ; removed < n; removed++ {
		h := d.newest(hostBooting)
		if h < 0 {
			break
		}
		d.remove(h)
		d.lastChange = sec
	}
	for ; removed < n; removed++ {
		h := -1
		if d.scaler.fleet {
			name := d.fleetFigures(sec).ScaleIn
			for i := range d.slots {
				if name != "" && d.slots[i].state == hostReady && d.names[i] == name {
					h = i
				}
			}
			if h < 0 && measured {
				d.out.Fallbacks++
			}
		}
		if h < 0 {
			h = d.newest(hostReady)
		}
		if h < 0 {
			break
		}
		d.startDrain(h, sec)
		if measured {
			d.out.Drained++
		}
	}
	return removed
}

// newest is the most recently launched host in state, -1 if none.
func (d *dailyRun) newest(state int) int {
	h := -1
	for i, sl := range d.slots {
		if sl.state == state && (h < 0 || sl.serial > d.slots[h].serial) {
			h = i
		}
	}
	return h
}

// fleetFigures are hafeed's fleet figures at second sec from the backend
// as the HAProxies show it, as an agent computes them for hafeed fleet:
// each server's connections summed over the HAProxies, its smallest
// weight, its state (a booting host is in maint) and its lastchg.
func (d *dailyRun) fleetFigures(sec int) hpolicy.Fleet {
	servers := make([]hpolicy.FleetServer, 0, len(d.slots))
	for h, sl := range d.slots {
		fs := hpolicy.FleetServer{Name: d.names[h], Conns: int(d.total[h]), Since: time.Duration(sec-sl.changed) * time.Second}
		switch sl.state {
		case hostFree:
			continue
		case hostBooting:
			fs.State = hpolicy.StateMaint
		case hostReady:
			fs.State = hpolicy.StateReady
		case hostDraining:
			fs.State = hpolicy.StateDrain
		}
		if sl.state == hostReady {
			w := int32(math.MaxInt32)
			for _, lb := range d.lbs {
				w = min(w, lb.weight[h])
			}
			fs.Weight = int(w)
		}
		servers = append(servers, fs)
	}
	return d.scaling.fleet().ComputeFleet(servers, d.simulation.cfg.ReferenceCapacity)
}

// cpuDesired is HPA's CPU formula: the hosts in rotation times their mean
// CPU over the target (TargetUtilisation of the agents' CPU target), or
// as many as now within the tolerance. The CPU is what each host's agent
// reads: its demand, at most 100 %, with the same noise.
func (d *dailyRun) cpuDesired() int {
	var sum float64
	n := 0
	for h, sl := range d.slots {
		if sl.state != hostReady {
			continue
		}
		sum += min(max(min(d.utilisation(h), 1)+cpuNoise*d.cpuNoise.NormFloat64(), 0), 1)
		n++
	}
	if n == 0 {
		return d.scaling.MinHosts
	}
	ratio := sum / float64(n) / (d.scaling.TargetUtilisation * d.cpuTarget())
	if math.Abs(ratio-1) <= d.scaling.Tolerance {
		return n
	}
	return max(int(math.Ceil(float64(n)*ratio-1e-9)), 1)
}
