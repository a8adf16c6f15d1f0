package main

import (
	"context"
	"sync"
	"time"

	"github.com/hafeed/hafeed/bench/internal/procstat"
	"github.com/hafeed/hafeed/internal/supervise"
)

// sample is the farm at one tick of the timeline.
type sample struct {
	T float64 `json:"t"`
	// Hosts is each host's connections, as its application counts them.
	Hosts []int `json:"hosts"`
	// HAProxies is each HAProxy's CurrConns (show info).
	HAProxies  []int   `json:"haproxies"`
	Connected  int     `json:"clients_connected"`
	Reconnects int     `json:"reconnects"`
	HostBusy   float64 `json:"host_busy_pct"`
	Load1      float64 `json:"load1"`
	// AgentRSSKiB is each agent's VmRSS.
	AgentRSSKiB []int64 `json:"agent_rss_kib"`
}

// cpuSnap is the CPU time of every process of the farm at one moment.
type cpuSnap struct {
	at      time.Time
	host    procstat.HostCPU
	agents  [][2]uint64 // user, system ticks per agent
	byGroup map[string]uint64
	// rssGroup is each kind of process's VmRSS, in KiB.
	rssGroup map[string]int64
}

// recorder samples the farm every second from start until stopped.
type recorder struct {
	f     *farm
	start time.Time

	mu      sync.Mutex // guards samples
	samples []sample
}

// run samples until ctx ends.
func (r *recorder) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := procstat.ReadHostCPU()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := r.f.take(ctx)
		now := procstat.ReadHostCPU()
		s.HostBusy = prev.BusyTo(now)
		prev = now
		s.T = time.Since(r.start).Seconds()
		r.mu.Lock()
		r.samples = append(r.samples, s)
		r.mu.Unlock()
	}
}

// all is a copy of the samples so far.
func (r *recorder) all() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sample(nil), r.samples...)
}

// between are the samples from t0 to t1 seconds.
func (r *recorder) between(t0, t1 float64) []sample {
	var out []sample
	for _, s := range r.all() {
		if s.T >= t0 && s.T <= t1 {
			out = append(out, s)
		}
	}
	return out
}

// take reads the farm's figures now.
func (f *farm) take(ctx context.Context) sample {
	var s sample
	for _, h := range f.hosts {
		s.Hosts = append(s.Hosts, h.conns())
		rss := int64(-1)
		if h.agent != nil {
			if v, err := procstat.StatusKB(h.agent.PID(), "VmRSS"); err == nil {
				rss = v
			}
		}
		s.AgentRSSKiB = append(s.AgentRSSKiB, rss)
	}
	var wg sync.WaitGroup
	s.HAProxies = make([]int, len(f.haproxies))
	for i, hp := range f.haproxies {
		wg.Go(func() {
			s.HAProxies[i] = -1
			if in, err := hp.info(ctx); err == nil {
				s.HAProxies[i] = in["CurrConns"]
			}
		})
	}
	wg.Wait()
	c := f.clientTotals()
	s.Connected, s.Reconnects = c.Connected, c.Reconnects
	s.Load1 = procstat.ReadLoadAvg().One
	return s
}

// clientTotals adds up the client processes' latest reports.
func (f *farm) clientTotals() clientsReport {
	var t clientsReport
	for _, r := range f.clientReports {
		t = t.add(r.Latest())
	}
	return t
}

// snapCPU reads the CPU time of every process of the farm.
func (f *farm) snapCPU() cpuSnap {
	s := cpuSnap{at: time.Now(), host: procstat.ReadHostCPU(), byGroup: map[string]uint64{}, rssGroup: map[string]int64{}}
	for _, h := range f.hosts {
		var u, sy uint64
		if h.agent != nil {
			u, sy, _ = procstat.CPUTicks(h.agent.PID())
		}
		s.agents = append(s.agents, [2]uint64{u, sy})
		for _, a := range h.apps {
			s.add("applications", a)
		}
		if h.agent != nil {
			s.add("agents", h.agent)
		}
	}
	for _, hp := range f.haproxies {
		s.add("haproxy", hp.proc)
	}
	for _, c := range f.clients {
		s.add("clients", c)
	}
	return s
}

// add counts a child's CPU and memory in its group.
func (s *cpuSnap) add(group string, c *supervise.Child) {
	s.byGroup[group] += ticks(c)
	if rss, err := procstat.StatusKB(c.PID(), "VmRSS"); err == nil {
		s.rssGroup[group] += rss
	}
}

// ticks is a child's user and system CPU ticks, 0 when gone.
func ticks(c *supervise.Child) uint64 {
	u, s, err := procstat.CPUTicks(c.PID())
	if err != nil {
		return 0
	}
	return u + s
}
